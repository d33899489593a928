"""Moving people between rooms while breakouts are open: a facilitator entering one of
their groups' rooms, a host entering any room or moving someone."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app import audit
from app.db import utcnow
from app.live.access import access_changed
from app.live.breakouts import require_host, require_open, tell_person
from app.live.channels import Seat
from app.live.models import RoomAssignment
from app.models import Group, Membership, Role, User
from app.refusals import NotAllowed, NotFound
from realtime.publish import Live


async def set_room(
    db: AsyncSession,
    live: Live,
    *,
    seat: Seat,
    user_id: int,
    group_id: int | None,
    text: str,
    action: str,
) -> None:
    """Put someone in a group's room (None: the plenary) until the breakout closes."""
    assignment = await db.get(RoomAssignment, (seat.session.id, user_id))
    if assignment is None:
        db.add(
            RoomAssignment(
                session_id=seat.session.id,
                user_id=user_id,
                group_id=group_id,
                assigned_by_id=seat.user_id,
            )
        )
    else:
        assignment.group_id = group_id
        assignment.assigned_by_id = seat.user_id
        assignment.assigned_at = utcnow()
    audit.record(
        db,
        actor=seat.ctx.user,
        action=action,
        programme_id=seat.ctx.programme.id,
        target=f"user:{user_id}",
        session_id=seat.session.id,
        group_id=group_id,
    )
    outbox = live.outbox(db)
    await tell_person(outbox, user_id, text, actor_id=seat.user_id, moved=True)
    await outbox.commit()
    # Their open connections leave the old room and follow the new one, even if silent.
    await access_changed(live, user_ids=[user_id], reason=action)


async def find_group(db: AsyncSession, *, seat: Seat, group_id: int | None) -> Group | None:
    if group_id is None:
        return None
    group = await db.get(Group, group_id)
    if group is None or group.programme_id != seat.ctx.programme.id:
        raise NotFound("We could not find that room.")
    return group


def room_name(group: Group | None) -> str:
    return f"{group.name}'s room" if group is not None else "the plenary"


def require_may_enter(seat: Seat) -> None:
    if not (seat.is_host or seat.ctx.role is Role.FACILITATOR):
        raise NotAllowed("Only facilitators and hosts can enter breakout rooms.")


async def enter(db: AsyncSession, live: Live, *, seat: Seat, group_id: int | None) -> None:
    """A facilitator enters one of their groups' rooms; a host enters any room."""
    require_may_enter(seat)
    require_open(seat)
    group = await find_group(db, seat=seat, group_id=group_id)
    if group is not None and not seat.is_host and group.id not in seat.facilitated:
        raise NotAllowed("You can only enter the rooms of groups you facilitate.")
    await set_room(
        db,
        live,
        seat=seat,
        user_id=seat.user_id,
        group_id=group.id if group else None,
        text=f"You are now in {room_name(group)}.",
        action="breakout.enter",
    )


async def move(
    db: AsyncSession, live: Live, *, seat: Seat, user_id: int, group_id: int | None
) -> User:
    """The host moves someone to another room (or back to the plenary) for this breakout."""
    require_host(seat)
    require_open(seat)
    member = await db.scalar(
        select(Membership).where(
            Membership.user_id == user_id, Membership.programme_id == seat.ctx.programme.id
        )
    )
    person = await db.get(User, user_id) if member is not None else None
    if person is None:
        raise NotFound("We could not find that person in this programme.")
    group = await find_group(db, seat=seat, group_id=group_id)
    await set_room(
        db,
        live,
        seat=seat,
        user_id=user_id,
        group_id=group.id if group else None,
        text=f"A host has moved you to {room_name(group)}.",
        action="breakout.move",
    )
    return person
