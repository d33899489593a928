"""Personal invitation links: signed, expiring, single-use, for one person in one programme.

A link signs someone in without a password, so whoever issues it could use it themselves.
That is why a link can only ever sign in an account that a password would not protect
better, and that belongs to nothing beyond the programme whose host issued it: no password,
not an administrator, not a host anywhere, no other programme. Everyone else signs in with
their password."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import utcnow
from app.models import Invitation, Membership, MembershipStatus, Role, User
from app.security import Signer, new_nonce, sha256_hex


@dataclass(frozen=True)
class IssuedInvite:
    user_id: int
    link: str
    expires_at_iso: str


class LinkRefusal(enum.StrEnum):
    """Why an invitation link may not sign in an account."""

    ADMIN = "admin"
    PASSWORD = "password"  # noqa: S105 - a reason, not a secret
    HOST = "host"
    ELSEWHERE = "elsewhere"
    INVITED = "invited"
    NOT_MEMBER = "not_member"

    def for_host(self, name: str) -> str:
        """The reason, told to the host who asked for a link."""
        return {
            LinkRefusal.ADMIN: f"{name} is an administrator and signs in with a password; "
            "a link cannot sign in as them.",
            LinkRefusal.PASSWORD: f"{name} has a password and signs in with it; "
            "a link cannot sign in as them.",
            LinkRefusal.HOST: f"{name} hosts a programme and signs in with a password; "
            "a link cannot sign in as them.",
            LinkRefusal.ELSEWHERE: f"{name} also takes part in another programme, so a link "
            "from this one cannot sign in as them; they sign in as they usually do.",
            LinkRefusal.INVITED: f"{name} already has an account and has been asked to join "
            "this programme; they will see the invitation when they next sign in.",
            LinkRefusal.NOT_MEMBER: f"{name} is not a member of this programme.",
        }[self]

    def for_person(self) -> str:
        """The reason, told to the person who opened the link."""
        if self in (LinkRefusal.ADMIN, LinkRefusal.PASSWORD, LinkRefusal.HOST):
            return (
                "Your account has a password, so please sign in with your e-mail address "
                "and password instead."
            )
        if self is LinkRefusal.ELSEWHERE:
            return (
                "Your account takes part in more than one programme, so a link cannot sign "
                "you in. Please sign in with your e-mail address and password."
            )
        return "You are not a member of this programme any more. Please ask its host."


class InvitationRefused(Exception):
    def __init__(self, reason: LinkRefusal, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


async def link_refusal(db: AsyncSession, *, user: User, programme_id: int) -> LinkRefusal | None:
    """Why a link for `programme_id` may not sign in as `user`, or None when it may."""
    if user.is_admin:
        return LinkRefusal.ADMIN
    if user.password_hash:
        return LinkRefusal.PASSWORD
    memberships = (await db.scalars(select(Membership).where(Membership.user_id == user.id))).all()
    active = [m for m in memberships if m.status == MembershipStatus.ACTIVE.value]
    if any(m.role == Role.HOST.value for m in active):
        return LinkRefusal.HOST
    if any(m.programme_id != programme_id for m in active):
        return LinkRefusal.ELSEWHERE
    if any(m.programme_id == programme_id for m in active):
        return None
    if any(m.programme_id == programme_id for m in memberships):
        return LinkRefusal.INVITED
    return LinkRefusal.NOT_MEMBER


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
    (and so do the sessions they signed in), so that only the latest link sent to a person is
    live. Raises InvitationRefused for an account a link may not sign in."""
    refusal = await link_refusal(db, user=user, programme_id=programme_id)
    if refusal is not None:
        raise InvitationRefused(refusal, refusal.for_host(user.display_name))
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


class LinkState(enum.StrEnum):
    VALID = "valid"
    USED = "used"
    INVALID = "invalid"  # forged, expired, replaced or cut short


@dataclass(frozen=True)
class LinkCheck:
    state: LinkState
    invitation: Invitation | None = None


async def check_invitation(
    db: AsyncSession, *, signer: Signer, token: str, max_age_days: int
) -> LinkCheck:
    """What a link is worth, without using it up."""
    if len(token) > 500:
        return LinkCheck(LinkState.INVALID)
    parsed = signer.read_invite_token(token, max_age_days * 86400)
    if parsed is None:
        return LinkCheck(LinkState.INVALID)
    invitation_id, nonce = parsed
    invitation = await db.scalar(select(Invitation).where(Invitation.id == invitation_id))
    if invitation is None or invitation.nonce_hash != sha256_hex(nonce):
        return LinkCheck(LinkState.INVALID)
    if invitation.revoked_at is not None or invitation.expires_at <= utcnow():
        return LinkCheck(LinkState.INVALID)
    if invitation.used_at is not None:
        return LinkCheck(LinkState.USED, invitation)
    return LinkCheck(LinkState.VALID, invitation)


async def use_invitation(db: AsyncSession, *, invitation: Invitation) -> bool:
    """Mark a valid link used; False when another request used it first (the caller commits).

    A conditional update, so that two requests racing with the same link cannot both win."""
    result = await db.execute(
        update(Invitation)
        .where(Invitation.id == invitation.id, Invitation.used_at.is_(None))
        .values(used_at=utcnow())
    )
    return bool(getattr(result, "rowcount", 0) == 1)
