"""Errors a person can understand: HTML pages for the browser, JSON for the API."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

log = logging.getLogger(__name__)

STATUS_TITLES = {
    400: "Something in the request was not right",
    401: "Please sign in",
    403: "You do not have access to this",
    404: "We could not find that page",
    405: "That action is not available here",
    409: "That conflicts with something already there",
    413: "That is too large",
    415: "That type of file or content is not accepted",
    422: "Please check what you entered",
    429: "Too many requests; please wait a moment",
    500: "Something went wrong on our side",
}


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


def _page(
    request: Request, status: int, message: str, extra: dict[str, Any] | None = None
) -> Response:
    templates = getattr(request.state, "templates", None)
    title = STATUS_TITLES.get(status, "Something went wrong")
    if templates is None:
        return Response(f"{title}: {message}", status_code=status, media_type="text/plain")
    ctx = {
        "request": request,
        "title": title,
        "message": message,
        "status": status,
        "user": getattr(request.state, "user", None),
        "csrf_token": getattr(request.state, "csrf_token", ""),
        **(extra or {}),
    }
    return templates.TemplateResponse(request, "error.html", ctx, status_code=status)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(NotSignedIn)
    async def _not_signed_in(request: Request, exc: NotSignedIn) -> Response:
        if wants_json(request):
            return JSONResponse({"detail": "Sign in first."}, status_code=401)
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/signin?next={quote(target)}", status_code=303)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        errors = field_errors(exc)
        if wants_json(request):
            return JSONResponse({"detail": "Invalid input.", "errors": errors}, status_code=422)
        text = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
        return _page(request, 422, text, {"errors": errors})

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        detail = (
            exc.detail if isinstance(exc.detail, str) else STATUS_TITLES.get(exc.status_code, "")
        )
        if wants_json(request):
            return JSONResponse(
                {"detail": detail}, status_code=exc.status_code, headers=exc.headers
            )
        response = _page(request, exc.status_code, detail)
        if exc.headers:
            response.headers.update(exc.headers)
        return response

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        message = "The problem has been logged. Please try again in a moment."
        if wants_json(request):
            return JSONResponse({"detail": message}, status_code=500)
        return _page(request, 500, message)
