"""Personal invitation links: signed, expiring, for one person in one programme."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import utcnow
from app.models import Invitation, User
from app.security import Signer, new_nonce, sha256_hex


@dataclass(frozen=True)
class IssuedInvite:
    user_id: int
    link: str
    expires_at_iso: str


async def issue_invitation(
    db: AsyncSession,
    *,
    signer: Signer,
    base_url: str,
    user: User,
    programme_id: int,
    created_by: User | None,
    valid_days: int,
    revoke_previous: bool = True,
) -> IssuedInvite:
    """Make a new link for `user`; earlier unrevoked links for the same programme stop working
    so that only the latest link sent to a person is live."""
    now = utcnow()
    if revoke_previous:
        await db.execute(
            update(Invitation)
            .where(
                Invitation.user_id == user.id,
                Invitation.programme_id == programme_id,
                Invitation.revoked_at.is_(None),
            )
            .values(revoked_at=now)
        )
    nonce = new_nonce()
    invitation = Invitation(
        user_id=user.id,
        programme_id=programme_id,
        nonce_hash=sha256_hex(nonce),
        expires_at=now + timedelta(days=valid_days),
        created_by_id=created_by.id if created_by else None,
    )
    db.add(invitation)
    await db.flush()
    token = signer.invite_token(invitation.id, nonce)
    return IssuedInvite(
        user_id=user.id,
        link=f"{base_url.rstrip('/')}/invite/{token}",
        expires_at_iso=invitation.expires_at.isoformat(),
    )


async def redeem_invitation(
    db: AsyncSession, *, signer: Signer, token: str, max_age_days: int
) -> Invitation | None:
    """The invitation behind a link, if it is genuine, current and not revoked."""
    if len(token) > 500:
        return None
    parsed = signer.read_invite_token(token, max_age_days * 86400)
    if parsed is None:
        return None
    invitation_id, nonce = parsed
    invitation = await db.scalar(select(Invitation).where(Invitation.id == invitation_id))
    if invitation is None or invitation.nonce_hash != sha256_hex(nonce):
        return None
    now = utcnow()
    if invitation.revoked_at is not None or invitation.expires_at <= now:
        return None
    invitation.last_used_at = now
    return invitation
