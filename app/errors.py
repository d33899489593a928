"""Errors a person can understand: HTML pages for the browser, JSON for the API, a line of
text for the page's own requests (htmx); and "too busy right now" as 503 with Retry-After,
never as a failure."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any, cast
from urllib.parse import quote

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from app.db import RETRY_AFTER_SECONDS, is_overloaded
from app.refusals import Refused
from app.security import PasswordWorkerBusy
from app.state import find_app_state

log = logging.getLogger(__name__)

STATUS_TITLES = {
    400: "Something in the request was not right",
    401: "Please sign in",
    403: "You do not have access to this",
    404: "We could not find that page",
    405: "That action is not available here",
    408: "That took too long to arrive",
    409: "That conflicts with something already there",
    413: "That is too large",
    415: "That type of file or content is not accepted",
    422: "Please check what you entered",
    429: "Too many requests; please wait a moment",
    500: "Something went wrong on our side",
    503: "Very busy right now",
}
BUSY_MESSAGE = (
    "So many people are doing something at this moment that this was not done yet. "
    "Please try again in a few seconds."
)
# WebSocket close code "try again later" (RFC 6455 registry).
CLOSE_TRY_AGAIN_LATER = 1013


class NotSignedIn(Exception):
    """Raised by dependencies when a page or API call needs a signed-in person."""


def wants_json(request: Request) -> bool:
    return request.url.path.startswith("/api/") or request.url.path in ("/healthz",)


def field_errors(exc: RequestValidationError) -> list[dict[str, str]]:
    out = []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path", "form")]
        message = str(err.get("msg", "is not valid"))
        message = message.removeprefix("Value error, ")
        out.append({"field": ".".join(loc) or "request", "message": message})
    return out


def _loaded_user(request: Request) -> Any:
    """The signed-in person for the page's layout, unless the failure rolled their session
    back: reading an expired attribute would query the database again (which may be what
    failed) and fail on the error page itself. The page is then drawn as for a visitor."""
    user = getattr(request.state, "user", None)
    if user is None:
        return None
    state = sa_inspect(user, raiseerr=False)
    if state is not None and (state.expired_attributes or state.detached):
        return None
    return user


def _page(
    request: Request, status: int, message: str, extra: dict[str, Any] | None = None
) -> Response:
    app_state = find_app_state(request)
    templates = app_state.templates if app_state is not None else None
    title = STATUS_TITLES.get(status, "Something went wrong")
    if templates is None:
        return Response(f"{title}: {message}", status_code=status, media_type="text/plain")
    ctx = {
        "request": request,
        "title": title,
        "message": message,
        "status": status,
        "user": _loaded_user(request),
        "csrf_token": getattr(request.state, "csrf_token", ""),
        **(extra or {}),
    }
    return templates.TemplateResponse(request, "error.html", ctx, status_code=status)


async def busy_response(conn: HTTPConnection) -> Response | None:
    """503 with Retry-After, in the form the asker reads: JSON for the API, a line of text
    for the page's scripts (which show it and try again by themselves), a page otherwise.
    A WebSocket is closed with 1013, "try again later"."""
    if isinstance(conn, WebSocket):
        # Accepted first: refused in the handshake, a browser could not tell "busy" from
        # "blocked", and the page would give up on WebSockets for the rest of the visit.
        with contextlib.suppress(WebSocketDisconnect, RuntimeError, OSError):
            if conn.application_state == WebSocketState.CONNECTING:
                await conn.accept()
            if conn.application_state == WebSocketState.CONNECTED:
                await conn.close(CLOSE_TRY_AGAIN_LATER, "busy: reconnect in a few seconds")
        return None
    headers = {"Retry-After": str(RETRY_AFTER_SECONDS)}
    request = conn if isinstance(conn, Request) else Request(conn.scope)
    if wants_json(request):
        return JSONResponse({"detail": BUSY_MESSAGE}, status_code=503, headers=headers)
    if request.headers.get("hx-request") == "true":
        return PlainTextResponse(BUSY_MESSAGE, status_code=503, headers=headers)
    response = _page(request, 503, BUSY_MESSAGE)
    response.headers.update(headers)
    return response


class ClientFaultsAsWarnings(logging.Filter):
    """uvicorn logs a client's text frame that is not UTF-8 as an exception, traceback and
    all, though it closes only that connection (1007) and nothing on the server failed: the
    record becomes a warning without the traceback. (Compatibility: remove when uvicorn's
    websockets-sansio protocol logs it as a warning itself.)"""

    MESSAGES = frozenset({"Invalid UTF-8 sequence received from client."})

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg in self.MESSAGES:
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            record.exc_info, record.exc_text = None, None
        return True


# One instance, so that adding it again (an app per test) adds nothing.
CLIENT_FAULTS_AS_WARNINGS = ClientFaultsAsWarnings()


def install_error_handlers(app: FastAPI) -> None:
    """Each kind of failure to its handler below: too busy (503), not signed in, refused,
    invalid input, the HTTP errors, and the last resort (500, logged)."""
    logging.getLogger("uvicorn.error").addFilter(CLIENT_FAULTS_AS_WARNINGS)
    # One handler for requests and WebSockets, which Starlette's types keep apart.
    database_busy = cast(Callable[[Request, Exception], Awaitable[Response]], _database_busy)
    app.add_exception_handler(PoolTimeout, database_busy)
    app.add_exception_handler(OperationalError, database_busy)
    handlers: dict[type[Exception], Callable[[Request, Any], Awaitable[Response]]] = {
        PasswordWorkerBusy: _passwords_busy,
        NotSignedIn: _not_signed_in,
        Refused: _refused,
        RequestValidationError: _invalid,
        StarletteHTTPException: _http,
        Exception: _unexpected,
    }
    for exc_class, handler in handlers.items():
        app.add_exception_handler(exc_class, handler)


async def _database_busy(conn: HTTPConnection, exc: Exception) -> Response | None:
    if not is_overloaded(exc):
        raise exc  # a real fault: the handler of last resort logs it (500)
    log.warning("refused %s: the database is too busy (%s)", conn.url.path, type(exc).__name__)
    return await busy_response(conn)


async def _passwords_busy(request: Request, exc: PasswordWorkerBusy) -> Response:
    log.warning("refused %s: too many password checks waiting", request.url.path)
    response = await busy_response(request)
    assert response is not None  # requests, not WebSockets, check passwords
    return response


async def _not_signed_in(request: Request, exc: NotSignedIn) -> Response:
    if wants_json(request):
        return JSONResponse({"detail": "Sign in first."}, status_code=401)
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/signin?next={quote(target)}", status_code=303)


async def _refused(request: Request, exc: Refused) -> Response:
    # The page's own requests (htmx) show the line of text where the action was; the
    # API reads JSON; a browser without scripts gets a page. Retry-After on a refusal
    # that passes (429, 503): the page waits, says so, and tries again.
    if request.headers.get("hx-request") == "true":
        return PlainTextResponse(exc.message, status_code=exc.status, headers=exc.headers)
    if wants_json(request):
        return JSONResponse({"detail": exc.message}, status_code=exc.status, headers=exc.headers)
    response = _page(request, exc.status, exc.message)
    if exc.headers:
        response.headers.update(exc.headers)
    return response


async def _invalid(request: Request, exc: RequestValidationError) -> Response:
    errors = field_errors(exc)
    if wants_json(request):
        return JSONResponse({"detail": "Invalid input.", "errors": errors}, status_code=422)
    text = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
    return _page(request, 422, text, {"errors": errors})


async def _http(request: Request, exc: StarletteHTTPException) -> Response:
    detail = exc.detail if isinstance(exc.detail, str) else STATUS_TITLES.get(exc.status_code, "")
    if wants_json(request):
        return JSONResponse({"detail": detail}, status_code=exc.status_code, headers=exc.headers)
    response = _page(request, exc.status_code, detail)
    if exc.headers:
        response.headers.update(exc.headers)
    return response


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    message = "The problem has been logged. Please try again in a moment."
    if wants_json(request):
        return JSONResponse({"detail": message}, status_code=500)
    return _page(request, 500, message)
