"""Request bodies must keep arriving, and one person may send only a few uploads at once.

A hostile client once opened 15 uploads that sent 10 bytes a second: each held a database
connection while its body trickled in, the pool ran dry, `/healthz` answered 503 and every
other upload 500. Three rules prevent that:

- Routes hold no database connection while a body streams in: they check who is asking,
  `release_connection`, read the body, and only then query again (evidence uploads); or
  the body is parsed before any dependency opens a session (FastAPI's `File()` forms).
- `BodyLimitsMiddleware` ends a body that stalls (nothing for `idle_timeout` seconds) or
  trickles (less than `min_bytes_per_second` on average over a `rate_window`) with 408.
  Only the time spent waiting for the client counts, not the time the app spends writing
  to disk or querying between reads, so a busy server never ends a good upload.
- At most `uploads_per_person` uploads (multipart bodies) at once per person (their
  signed session cookie, or their address when not signed in); more is 429 with
  Retry-After. The count is per process.

Both refusals are raised from `receive` as an HTTPException, like the size limit in
app/middleware.py: the body parser or route that is reading stops there, removes what it
had stored (evidence uploads discard their batch; form parsing closes its spooled files),
and the app's error handling shows the message. A response sent before its request's body
has ended closes the connection, so a client that goes on trickling is not kept."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass

import anyio
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.exceptions import HTTPException
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.config import Settings
from app.security import SESSION_COOKIE, Signer

# A person over their limit is told to try again after this long: about the time a
# small upload on a weak connection takes.
BUSY_RETRY_AFTER_SECONDS = 10
UPLOAD_METHODS = frozenset({"POST", "PUT", "PATCH"})
COOKIE_MAX_LENGTH = 1000


@dataclass(frozen=True)
class BodyLimits:
    idle_timeout: float
    min_bytes_per_second: int  # 0: no minimum rate
    rate_window: float
    uploads_per_person: int

    @classmethod
    def from_settings(cls, settings: Settings) -> BodyLimits:
        return cls(
            idle_timeout=settings.upload_idle_timeout_seconds,
            min_bytes_per_second=settings.upload_min_bytes_per_second,
            rate_window=settings.upload_rate_window_seconds,
            uploads_per_person=settings.max_uploads_per_person,
        )


class BodyRefused(HTTPException):
    """Ends the reading of a request body. An HTTPException, so that body parsers pass it
    on and the person sees its message."""


def _rate(bytes_per_second: int) -> str:
    if bytes_per_second >= 1024:
        return f"{bytes_per_second / 1024:.3g} KB a second"
    return f"{bytes_per_second:,} bytes a second"


def body_stalled(limits: BodyLimits) -> BodyRefused:
    return BodyRefused(
        408,
        f"Your upload stopped arriving: nothing came for {limits.idle_timeout:g} seconds, so "
        "we ended it, and nothing was kept. Check your connection and send the file again.",
    )


def body_too_slow(limits: BodyLimits) -> BodyRefused:
    return BodyRefused(
        408,
        f"Your upload was arriving too slowly (less than {_rate(limits.min_bytes_per_second)}"
        "), so we ended it, and nothing was kept. On a weak connection, try a smaller file "
        "(for sound, a shorter recording), or send it again when the connection is better.",
    )


def too_many_uploads(limits: BodyLimits) -> BodyRefused:
    count = limits.uploads_per_person
    return BodyRefused(
        429,
        f"You are already sending {count} file{'s' if count != 1 else ''}. Wait until one of "
        "them has finished, then send this one again.",
        headers={"Retry-After": str(BUSY_RETRY_AFTER_SECONDS)},
    )


async def release_connection(db: AsyncSession) -> None:
    """Before a route reads a request body: end the session's transaction (it has only
    read), so its connection goes back to the pool while the body arrives. What it loaded
    stays usable (sessions are made with expire_on_commit=False); the next query takes a
    connection again."""
    await db.commit()


class PacedBody:
    """The request's `receive`, ending the body when it stalls or trickles.

    Time is counted only while waiting for the client (`waited`). The body must bring
    something at least every `idle_timeout` of that time, and at least
    `min_bytes_per_second` on average over each `rate_window` of it."""

    def __init__(
        self,
        receive: Receive,
        limits: BodyLimits,
        *,
        has_body: bool,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._receive = receive
        self._limits = limits
        self._clock = clock
        self.complete = not has_body
        self.refusal: BodyRefused | None = None
        self._waited = 0.0
        self._last_arrival = 0.0
        self._window_start = 0.0
        self._window_bytes = 0

    def refuse(self, refusal: BodyRefused) -> None:
        """Refuse the body before it is read (the route's first read raises this)."""
        self.refusal = refusal

    async def receive(self) -> Message:
        if self.refusal is not None:
            raise self.refusal
        if self.complete:
            return await self._receive()  # after the body: waiting for a disconnect
        limits = self._limits
        while True:
            deadline = min(self._last_arrival + limits.idle_timeout, self._next_window())
            started = self._clock()
            try:
                with anyio.fail_after(max(deadline - self._waited, 0.0)):
                    message = await self._receive()
            except TimeoutError:
                self._waited += self._clock() - started
                self._check()
                continue
            self._waited += self._clock() - started
            if message["type"] == "http.request":
                self._window_bytes += len(message.get("body", b""))
                self._last_arrival = self._waited
                if not message.get("more_body", False):
                    self.complete = True
                    return message
                self._check()
            return message

    def _next_window(self) -> float:
        return self._window_start + self._limits.rate_window

    def _check(self) -> None:
        limits = self._limits
        if self._waited - self._last_arrival >= limits.idle_timeout:
            self._stop(body_stalled(limits))
        if self._waited >= self._next_window():
            needed = limits.min_bytes_per_second * (self._waited - self._window_start)
            if self._window_bytes < needed:
                self._stop(body_too_slow(limits))
            self._window_start, self._window_bytes = self._waited, 0

    def _stop(self, refusal: BodyRefused) -> None:
        """End the body now."""
        self.refusal = refusal
        raise refusal


class UploadSlots:
    """How many uploads each person has under way (in this process)."""

    def __init__(self, per_person: int) -> None:
        self.per_person = per_person
        self._active: dict[str, int] = {}

    def take(self, person: str) -> bool:
        count = self._active.get(person, 0)
        if count >= self.per_person:
            return False
        self._active[person] = count + 1
        return True

    def give_back(self, person: str) -> None:
        count = self._active.pop(person, 0) - 1
        if count > 0:
            self._active[person] = count


def has_body(scope: Scope) -> bool:
    headers = HTTPConnection(scope).headers
    return "transfer-encoding" in headers or headers.get("content-length", "0") not in ("", "0")


def is_upload(scope: Scope) -> bool:
    if scope["method"] not in UPLOAD_METHODS:
        return False
    content_type = HTTPConnection(scope).headers.get("content-type", "")
    return content_type.lower().startswith("multipart/form-data")


class BodyLimitsMiddleware:
    """Paces every request body (`PacedBody`) and counts uploads per person."""

    def __init__(
        self, app: ASGIApp, *, limits: BodyLimits, signer: Signer, session_max_age_seconds: int
    ) -> None:
        self.app = app
        self.limits = limits
        self.signer = signer
        self.session_max_age_seconds = session_max_age_seconds
        self.slots = UploadSlots(limits.uploads_per_person)

    def person(self, scope: Scope) -> str:
        """Who is uploading: the account their session cookie names (its signature is
        checked; whether the session still lasts is the route's business), otherwise
        their address."""
        connection = HTTPConnection(scope)
        cookie = connection.cookies.get(SESSION_COOKIE)
        if cookie and len(cookie) <= COOKIE_MAX_LENGTH:
            claims = self.signer.read_session_cookie(cookie, self.session_max_age_seconds)
            if claims is not None:
                return f"user:{claims.user_id}"
        return f"address:{connection.client.host if connection.client else ''}"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        body = PacedBody(receive, self.limits, has_body=has_body(scope))
        uploader: str | None = None
        if is_upload(scope):
            person = self.person(scope)
            if self.slots.take(person):
                uploader = person
            else:
                body.refuse(too_many_uploads(self.limits))
        response_started = False

        async def send_closing_early(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
                if not body.complete:
                    # The client is still sending: end the connection after this answer.
                    message = {
                        **message,
                        "headers": [*message.get("headers", []), (b"connection", b"close")],
                    }
            await send(message)

        try:
            await self.app(scope, body.receive, send_closing_early)
        except BodyRefused as refusal:
            # Raised outside any route (nothing else turned it into a page).
            if not response_started:
                await _refusal_response(send_closing_early, refusal)
        finally:
            if uploader is not None:
                self.slots.give_back(uploader)


async def _refusal_response(send: Send, refusal: BodyRefused) -> None:
    body = json.dumps({"detail": refusal.detail}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    headers += [(k.lower().encode(), v.encode()) for k, v in (refusal.headers or {}).items()]
    await send({"type": "http.response.start", "status": refusal.status_code, "headers": headers})
    await send({"type": "http.response.body", "body": body})
