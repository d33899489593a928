"""ASGI middleware: the browser's CSRF cookie, security headers and request size limits."""

from __future__ import annotations

import json
import secrets
from typing import Any

from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.numbers import is_digits
from app.security import CSRF_COOKIE, Signer

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; "
    "style-src 'self'; script-src 'self'; connect-src 'self'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'"
)


class BrowserSecurityMiddleware:
    """Gives every browser a random CSRF cookie, exposes the matching form token to
    templates as `request.state.csrf_token`, and sets protective response headers."""

    def __init__(self, app: ASGIApp, *, signer: Signer, secure_cookies: bool) -> None:
        self.app = app
        self.signer = signer
        self.secure_cookies = secure_cookies

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        # Each request gets its own copy of the lifespan state, whichever server runs us,
        # so per-request values never leak between requests.
        scope = {**scope, "state": dict(scope.get("state") or {})}
        if scope["type"] == "websocket":
            await self.app(scope, receive, send)
            return
        cookie = HTTPConnection(scope).cookies.get(CSRF_COOKIE)
        new_cookie = None
        if not cookie or len(cookie) > 100:
            cookie = new_cookie = secrets.token_urlsafe(24)
            # Later middleware and the route read the new value as if the browser had sent it.
            headers = [(k, v) for k, v in scope["headers"] if k != b"cookie"]
            headers.append((b"cookie", f"{CSRF_COOKIE}={cookie}".encode()))
            original_cookie = HTTPConnection(scope).headers.get("cookie")
            if original_cookie:
                headers[-1] = (b"cookie", f"{original_cookie}; {CSRF_COOKIE}={cookie}".encode())
            scope = {**scope, "headers": headers}
        scope["state"]["csrf_token"] = self.signer.csrf_token(cookie)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.setdefault("X-Content-Type-Options", "nosniff")
                headers.setdefault("Referrer-Policy", "same-origin")
                headers.setdefault("X-Frame-Options", "DENY")
                headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
                headers.setdefault("Permissions-Policy", "microphone=(self), camera=(self)")
                if new_cookie is not None:
                    secure = "; Secure" if self.secure_cookies else ""
                    headers.append(
                        "Set-Cookie",
                        f"{CSRF_COOKIE}={new_cookie}; Path=/; HttpOnly; SameSite=Lax{secure}",
                    )
            await send(message)

        await self.app(scope, receive, send_with_headers)


class BodySizeLimitMiddleware:
    """Refuses request bodies over a limit, counting bytes as they stream in."""

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = HTTPConnection(scope).headers.get("content-length")
        if declared is not None:
            if not is_digits(declared):
                await _plain_error(scope, send, 400, "The Content-Length header is not a number.")
                return
            if int(declared) > self.max_bytes:
                await _too_large(scope, send, self.max_bytes)
                return
        received = 0
        response_started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _BodyTooLarge(self.max_bytes)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _BodyTooLarge:
            if not response_started:
                await _too_large(scope, send, self.max_bytes)


class _BodyTooLarge(HTTPException):
    """An HTTPException, so that body parsers re-raise it and the person sees a 413 page."""

    def __init__(self, max_bytes: int) -> None:
        mb = max_bytes // (1024 * 1024)
        super().__init__(status_code=413, detail=f"That upload is larger than the {mb} MB limit.")


async def _too_large(scope: Scope, send: Send, max_bytes: int) -> None:
    mb = max_bytes // (1024 * 1024)
    await _plain_error(scope, send, 413, f"That upload is larger than the {mb} MB limit.")


async def _plain_error(scope: Scope, send: Send, status: int, message: str) -> None:
    body: Any
    if scope["path"].startswith("/api/"):
        body = json.dumps({"detail": message}).encode()
        content_type = b"application/json"
    else:
        body = message.encode()
        content_type = b"text/plain; charset=utf-8"
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
