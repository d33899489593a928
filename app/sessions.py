"""Starting and ending a signed-in browser session."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete, exists, select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response

from app.config import Settings
from app.db import utcnow
from app.models import EndedSession, Invitation, User
from app.security import SESSION_COOKIE, SessionClaims, Signer, sha256_hex


def sign_in(
    response: Response,
    *,
    user: User,
    signer: Signer,
    settings: Settings,
    invitation_id: int | None = None,
) -> None:
    """Give the browser a new session cookie (with a new session id) for `user`."""
    claims = SessionClaims(user_id=user.id, epoch=user.auth_epoch, invitation_id=invitation_id)
    response.set_cookie(
        SESSION_COOKIE,
        signer.session_cookie(claims),
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


def read_claims(cookie: str | None, *, signer: Signer, settings: Settings) -> SessionClaims | None:
    """What a session cookie says, if it is genuine and not expired (not yet checked against
    the database: see `session_user`)."""
    if not cookie or len(cookie) > 1000:
        return None
    return signer.read_session_cookie(cookie, settings.session_max_age_days * 86400)


async def session_user(db: AsyncSession, claims: SessionClaims) -> User | None:
    """The account a session belongs to, unless the session has ended: signed out, signed out
    everywhere (the epoch moved on), or made with an invitation link that was replaced."""
    query = select(User).where(
        User.id == claims.user_id,
        User.auth_epoch == claims.epoch,
        ~exists().where(EndedSession.sid_hash == sha256_hex(claims.session_id)),
    )
    if claims.invitation_id is not None:
        query = query.where(
            exists().where(
                Invitation.id == claims.invitation_id,
                Invitation.user_id == claims.user_id,
                Invitation.revoked_at.is_(None),
            )
        )
    user: User | None = await db.scalar(query)
    return user


async def end_session(db: AsyncSession, *, claims: SessionClaims, settings: Settings) -> None:
    """Stop this session's cookie from working anywhere (the caller commits)."""
    now = utcnow()
    sid_hash = sha256_hex(claims.session_id)
    if await db.get(EndedSession, sid_hash) is None:
        db.add(
            EndedSession(
                sid_hash=sid_hash,
                user_id=claims.user_id,
                ended_at=now,
                forget_after=now + timedelta(days=settings.session_max_age_days, minutes=5),
            )
        )
    # Rows whose cookies have expired by themselves are no longer needed.
    await db.execute(delete(EndedSession).where(EndedSession.forget_after < now))


def safe_next(target: str | None) -> str:
    """Only same-site paths: never let a sign-in link bounce someone to another site."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    if len(target) > 500 or any(ord(c) < 32 for c in target):
        return "/"
    return target


async def user_from_cookie(
    db: AsyncSession, *, signer: Signer, settings: Settings, cookie: str | None
) -> User | None:
    """The person a session cookie signs in, while that session lasts."""
    claims = read_claims(cookie, signer=signer, settings=settings)
    if claims is None:
        return None
    return await session_user(db, claims)
