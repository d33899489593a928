"""Tokens for the vosk-server-compatible speech recognition endpoint (/asr/vosk).

Programme hosts and administrators issue them for tools that speak the vosk-server
protocol (a phone bridge, a transcription script). A token is shown once; we keep only its
SHA-256, so a copy of the database does not give access.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app import audit
from app.captions.asr_models import AsrToken
from app.db import utcnow
from app.models import Membership, MembershipStatus, Role, User
from app.security import sha256_hex

TOKEN_PREFIX = "rtasr_"
MAX_TOKEN_LENGTH = 200  # ours are 49 characters; anything much longer is not one of ours
MAX_LABEL_LENGTH = 100
MIN_DAYS, MAX_DAYS, DEFAULT_DAYS = 1, 365, 30


class AsrTokenError(ValueError):
    """Field-level problems with a token request, with messages for the person."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(errors.values()))
        self.errors = errors


@dataclass(frozen=True)
class IssuedToken:
    token: AsrToken
    secret: str  # shown once, never stored


@dataclass(frozen=True)
class TokenCheck:
    """Whether a connection may use the endpoint; `reason` says why not (for the client)."""

    ok: bool
    reason: str = ""
    token_id: int | None = None


def check_token_fields(*, label: str, days: str | int) -> tuple[str, int]:
    errors: dict[str, str] = {}
    label = label.strip()
    if not label:
        errors["label"] = "Give the token a name, such as the tool that will use it."
    elif len(label) > MAX_LABEL_LENGTH:
        errors["label"] = f"The name must be at most {MAX_LABEL_LENGTH} characters."
    try:
        valid_days = int(str(days).strip())
    except ValueError:
        valid_days = 0
    if not MIN_DAYS <= valid_days <= MAX_DAYS:
        errors["days"] = f"The number of days must be a whole number from {MIN_DAYS} to {MAX_DAYS}."
    if errors:
        raise AsrTokenError(errors)
    return label, valid_days


async def may_issue_tokens(db: AsyncSession, *, user: User) -> bool:
    """Administrators, and anyone who hosts at least one programme."""
    if user.is_admin:
        return True
    hosting = await db.scalar(
        select(Membership.id)
        .where(
            Membership.user_id == user.id,
            Membership.role == Role.HOST.value,
            Membership.status == MembershipStatus.ACTIVE.value,
        )
        .limit(1)
    )
    return hosting is not None


async def issue_token(
    db: AsyncSession,
    *,
    label: str,
    days: str | int,
    created_by: User | None,
    via: str = "web",
) -> IssuedToken:
    """Create a token valid for `days` days and commit; raises AsrTokenError for bad input."""
    label, valid_days = check_token_fields(label=label, days=days)
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    now = utcnow()
    token = AsrToken(
        label=label,
        token_hash=sha256_hex(secret),
        created_by_id=created_by.id if created_by else None,
        created_at=now,
        expires_at=now + timedelta(days=valid_days),
    )
    db.add(token)
    await db.flush()
    audit.record(
        db,
        actor=created_by,
        action="asr_token.issued",
        target=f"asr_token:{token.id}",
        label=label,
        days=valid_days,
        via=via,
    )
    await db.commit()
    return IssuedToken(token=token, secret=secret)


@dataclass(frozen=True)
class TokenRow:
    token: AsrToken
    state: str  # see token_state
    issued_by: str  # a name, or "command line"


async def list_tokens(db: AsyncSession, *, user: User) -> list[TokenRow]:
    """The tokens `user` may see and revoke, newest first: their own, or for
    administrators every token (including those issued from the command line)."""
    query = (
        select(AsrToken, User.display_name)
        .outerjoin(User, User.id == AsrToken.created_by_id)
        .order_by(AsrToken.created_at.desc(), AsrToken.id.desc())
    )
    if not user.is_admin:
        query = query.where(AsrToken.created_by_id == user.id)
    now = utcnow()
    return [
        TokenRow(token=token, state=token_state(token, now), issued_by=name or "command line")
        for token, name in (await db.execute(query)).tuples()
    ]


async def revoke_token(db: AsyncSession, *, user: User, token_id: int) -> AsrToken | None:
    """Revoke a token and commit: one's own, or any for administrators. None if there is
    no such token for `user` (others' tokens are not revealed)."""
    token = await db.get(AsrToken, token_id)
    if token is None or not (user.is_admin or token.created_by_id == user.id):
        return None
    if token.revoked_at is None:
        token.revoked_at = utcnow()
        audit.record(db, actor=user, action="asr_token.revoked", target=f"asr_token:{token.id}")
        await db.commit()
    return token


def token_state(token: AsrToken, now: datetime | None = None) -> str:
    """ "active", "expired" or "revoked", for pages and checks."""
    if token.revoked_at is not None:
        return "revoked"
    if token.expires_at <= (now or utcnow()):
        return "expired"
    return "active"


async def check_token(db: AsyncSession, *, secret: str | None) -> TokenCheck:
    """May a connection with this token use the endpoint? Notes the use when it may."""
    if not secret:
        return TokenCheck(False, "a token is required: add ?token=... to the address")
    if len(secret) > MAX_TOKEN_LENGTH or not secret.startswith(TOKEN_PREFIX):
        return TokenCheck(False, "this token is not valid")
    token = await db.scalar(select(AsrToken).where(AsrToken.token_hash == sha256_hex(secret)))
    if token is None:
        return TokenCheck(False, "this token is not valid")
    now = utcnow()
    state = token_state(token, now)
    if state == "revoked":
        return TokenCheck(False, "this token has been revoked")
    if state == "expired":
        return TokenCheck(False, "this token has expired")
    token.last_used_at = now
    token_id = token.id
    await db.commit()
    return TokenCheck(True, token_id=token_id)
