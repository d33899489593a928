"""Presenters and sign-language interpreters named for a session (StageRole).

A host names them among the programme's members. The role gives no access of its own: the
person sees what their membership already lets them see (the session's plenary, like every
member). A named presenter may be pinned as the presenter's video tile (and present slides,
app/stage/access.py); a named interpreter may be pinned as the interpreter's tile. Taking a
role back takes down the tile it allowed (app/stage/tiles.py: remove_role)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app import audit
from app.access import load_programme_context
from app.live.access import access_changed
from app.live.channels import Seat
from app.models import Membership, User
from app.refusals import NotAllowed, NotFound, Refused
from app.stage.models import StageRole, StageRoleKind
from realtime.publish import Live

ROLE_LABELS = {
    StageRoleKind.PRESENTER: "presenter",
    StageRoleKind.INTERPRETER: "sign-language interpreter",
}

PERSON_NOT_FOUND = "We could not find that person among the programme's members."


@dataclass
class NamedRole:
    id: int
    user_id: int
    name: str
    role: str

    @property
    def label(self) -> str:
        return ROLE_LABELS[StageRoleKind(self.role)]


def require_host(seat: Seat) -> None:
    if not seat.is_host:
        raise NotAllowed("Only the programme's hosts can name presenters and interpreters.")


def parse_role(value: str) -> StageRoleKind:
    try:
        return StageRoleKind(value.strip())
    except ValueError:
        raise Refused("Choose presenter or sign-language interpreter.") from None


async def roles_in_session(db: AsyncSession, *, session_id: int) -> list[NamedRole]:
    rows = await db.execute(
        select(StageRole.id, StageRole.user_id, User.display_name, StageRole.role)
        .join(User, User.id == StageRole.user_id)
        .where(StageRole.session_id == session_id)
        .order_by(StageRole.role, User.display_name)
    )
    return [NamedRole(*row) for row in rows.tuples()]


async def has_role(db: AsyncSession, *, session_id: int, user_id: int, role: StageRoleKind) -> bool:
    found = await db.scalar(
        select(StageRole.id).where(
            StageRole.session_id == session_id,
            StageRole.user_id == user_id,
            StageRole.role == role.value,
        )
    )
    return found is not None


async def programme_member(db: AsyncSession, *, seat: Seat, user_id: int) -> User:
    """An active member of the seat's programme; NotFound for anyone else."""
    person = await db.get(User, user_id)
    if person is None:
        raise NotFound(PERSON_NOT_FOUND)
    try:
        ctx = await load_programme_context(db, person, seat.ctx.programme.id)
    except NotFound:
        raise NotFound(PERSON_NOT_FOUND) from None
    if ctx.membership is None and not ctx.is_host:
        raise NotFound(PERSON_NOT_FOUND)
    return person


async def members_to_name(db: AsyncSession, *, programme_id: int) -> list[tuple[int, str]]:
    """The programme's active members (id, name), for the host's choice."""
    rows = await db.execute(
        select(User.id, User.display_name)
        .join(Membership, Membership.user_id == User.id)
        .where(Membership.programme_id == programme_id, Membership.status == "active")
        .order_by(User.display_name)
    )
    return list(rows.tuples())


async def name_role(
    db: AsyncSession, live: Live, *, seat: Seat, user_id: int, role: StageRoleKind
) -> str:
    """Name a member as this session's presenter or interpreter; returns the answer to show."""
    require_host(seat)
    person = await programme_member(db, seat=seat, user_id=user_id)
    label = ROLE_LABELS[role]
    if await has_role(db, session_id=seat.session.id, user_id=user_id, role=role):
        return f"{person.display_name} is already named as {label}."
    db.add(
        StageRole(
            session_id=seat.session.id,
            user_id=user_id,
            role=role.value,
            assigned_by_id=seat.user_id,
        )
    )
    audit.record(
        db,
        actor=seat.ctx.user,
        action="stage.role_named",
        programme_id=seat.ctx.programme.id,
        target=f"user:{user_id}",
        session_id=seat.session.id,
        role=role.value,
    )
    await db.commit()
    await access_changed(live, user_ids=[user_id], reason="stage role named")
    return f"{person.display_name} is named as {label} for this session."
