"""What the controls of a live room need to draw themselves: who is here, the people a
moderator may act on, the rooms a facilitator or host may enter, and (for hosts) how many
people are in each room."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.live import channels
from app.live.channels import Seat
from app.live.events import PresencePayload
from app.live.models import RoomAssignment
from app.live.presence import Presence
from app.live.rooms import programme_groups
from app.models import Group, Membership, Role, User
from app.refusals import NotAllowed


@dataclass
class Person:
    id: int
    name: str


async def people(db: AsyncSession, *, seat: Seat, channel: str | None = None) -> list[Person]:
    """Members of the programme other than the person asking; with a room's `channel`,
    only the participants and observers in that room now."""
    rows = (
        await db.execute(
            select(User, Membership.group_id, Membership.role)
            .join(Membership, Membership.user_id == User.id)
            .where(Membership.programme_id == seat.ctx.programme.id, User.id != seat.user_id)
            .order_by(User.display_name, User.id)
        )
    ).all()
    group_id = channels.room_group_id(channel) if channel else None
    if group_id is None:
        return [Person(user.id, user.name_with_pronouns) for user, _g, _r in rows]
    moved = dict(
        (
            await db.execute(
                select(RoomAssignment.user_id, RoomAssignment.group_id).where(
                    RoomAssignment.session_id == seat.session.id
                )
            )
        )
        .tuples()
        .all()
    )
    guests = (Role.PARTICIPANT.value, Role.OBSERVER.value)
    return [
        Person(user.id, user.name_with_pronouns)
        for user, home, role in rows
        if role in guests and moved.get(user.id, home) == group_id
    ]


async def occupancy(
    *, seat: Seat, presence: Presence, groups: list[Group]
) -> list[tuple[str, PresencePayload]]:
    rows = [("Plenary", await presence.payload(channels.plenary(seat.session.id)))]
    if seat.breakout is not None:
        for group in groups:
            channel = channels.room(seat.session.id, group.id)
            rows.append((group.name, await presence.payload(channel)))
    return rows


async def staff_occupancy(
    db: AsyncSession, *, seat: Seat, presence: Presence
) -> list[tuple[str, PresencePayload]]:
    """How many people are in each room, for the staff's table of rooms."""
    if not seat.is_staff:
        raise NotAllowed("Only the session's staff can see who is where.")
    groups = await programme_groups(db, seat.ctx.programme.id)
    return await occupancy(seat=seat, presence=presence, groups=groups)


async def controls_context(db: AsyncSession, *, seat: Seat, presence: Presence) -> dict[str, Any]:
    context: dict[str, Any] = {
        "presence_view": await presence.payload(
            seat.current, also=seat.ctx.user.name_with_pronouns
        ),
        "moderates_here": seat.may_moderate_current,
    }
    if seat.may_moderate_current:
        in_room = None if seat.current_group is None else seat.current
        context["mute_people"] = await people(db, seat=seat, channel=in_room)
    groups = await programme_groups(db, seat.ctx.programme.id)
    may_enter = seat.is_host or (seat.ctx.role is Role.FACILITATOR and bool(seat.facilitated))
    if seat.breakout is not None and may_enter:
        context["enter_groups"] = [g for g in groups if seat.is_host or g.id in seat.facilitated]
    if seat.is_host:
        context["groups"] = groups
        context["people"] = await people(db, seat=seat)
        context["occupancy"] = await occupancy(seat=seat, presence=presence, groups=groups)
    return context
