"""Starting and ending a signed-in browser session."""

from __future__ import annotations

from starlette.responses import Response

from app.config import Settings
from app.models import User
from app.security import SESSION_COOKIE, SessionClaims, Signer


def sign_in(response: Response, *, user: User, signer: Signer, settings: Settings) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        signer.session_cookie(SessionClaims(user_id=user.id, epoch=user.auth_epoch)),
        max_age=settings.session_max_age_days * 86400,
        httponly=True,
        samesite="lax",
        secure=settings.cookies_secure,
        path="/",
    )


def sign_out(response: Response, *, settings: Settings) -> None:
    response.delete_cookie(
        SESSION_COOKIE, path="/", httponly=True, samesite="lax", secure=settings.cookies_secure
    )


def safe_next(target: str | None) -> str:
    """Only same-site paths: never let a sign-in link bounce someone to another site."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    if len(target) > 500 or any(ord(c) < 32 for c in target):
        return "/"
    return target
