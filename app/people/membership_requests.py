"""Invitations to join a programme for people who already have an account.

A roster import does not make such a person a member (see app.programmes.roster): it leaves a
membership with status "invited", which gives no access. The person sees it on their home
page and accepts or declines it, signed in as themselves."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app import audit
from app.models import Membership, MembershipStatus, Programme, Role, User
from app.refusals import Refused
from app.security import MIN_PASSWORD_LENGTH, PasswordWorker


@dataclass(frozen=True)
class PendingInvitation:
    membership_id: int
    programme: Programme
    role: Role
    # Accepting would put a person without a password in a second programme, where links no
    # longer sign them in: they choose a password as they accept.
    needs_password: bool


class RequestError(Refused):
    """Accepting or declining a request that cannot be done: `status` says why (404, 409 …)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message, status=status)


async def pending_for(db: AsyncSession, *, user: User) -> list[PendingInvitation]:
    rows = await db.execute(
        select(Membership, Programme)
        .join(Programme, Programme.id == Membership.programme_id)
        .where(Membership.user_id == user.id)
        .order_by(Membership.created_at, Membership.id)
    )
    memberships = rows.tuples().all()
    active_elsewhere = any(m.is_active for m, _ in memberships)
    return [
        PendingInvitation(
            membership_id=m.id,
            programme=p,
            role=Role(m.role),
            needs_password=not user.password_hash and active_elsewhere,
        )
        for m, p in memberships
        if not m.is_active
    ]


async def _own_pending(db: AsyncSession, *, user: User, membership_id: int) -> Membership:
    membership = await db.get(Membership, membership_id)
    if membership is None or membership.user_id != user.id or membership.is_active:
        raise RequestError(404, "We could not find that invitation. It may have been answered.")
    return membership


async def accept(
    db: AsyncSession,
    *,
    user: User,
    membership_id: int,
    passwords: PasswordWorker,
    new_password: str = "",
    confirm_password: str = "",
) -> Membership:
    membership = await _own_pending(db, user=user, membership_id=membership_id)
    pending = {p.membership_id: p for p in await pending_for(db, user=user)}
    if pending[membership.id].needs_password:
        if len(new_password) < MIN_PASSWORD_LENGTH:
            raise RequestError(
                422,
                f"Choose a password of at least {MIN_PASSWORD_LENGTH} characters: in more than "
                "one programme you sign in with it, as links only work within one programme.",
            )
        if len(new_password) > 200:
            raise RequestError(422, "Choose a password of at most 200 characters.")
        if new_password != confirm_password:
            raise RequestError(422, "The two passwords are not the same.")
        user.password_hash = await passwords.hash(new_password)
    membership.status = MembershipStatus.ACTIVE.value
    audit.record(
        db,
        actor=user,
        action="membership.accept",
        programme_id=membership.programme_id,
        target=f"membership:{membership.id}",
        role=membership.role,
    )
    await db.commit()
    return membership


async def decline(db: AsyncSession, *, user: User, membership_id: int) -> None:
    membership = await _own_pending(db, user=user, membership_id=membership_id)
    audit.record(
        db,
        actor=user,
        action="membership.decline",
        programme_id=membership.programme_id,
        target=f"membership:{membership.id}",
    )
    await db.delete(membership)
    await db.commit()
