"""Channel names, and who may follow and post in each: checked on the server for every
connection, subscription and action.

  s{session}:plenary       everyone in the programme
  s{session}:g{group}      a group's breakout room
  s{session}:staff         the facilitators' backchannel (facilitators and hosts)
  s{session}:help          the help desk: every hand and request (IT support and hosts)
  s{session}:help:u{user}  a facilitator's own help desk: those of the groups they facilitate
  u{user}                  one person's own channel"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.access import ProgrammeContext, load_programme_context
from app.live.models import Breakout, RoomAssignment
from app.models import Group, GroupFacilitator, ProgrammeSession, Role, User
from app.refusals import NotFound

# Groups: 1 session, 2 kind, 3 a room's group, 4 a facilitator's desk, 5 a person's own.
CHANNEL_PATTERN = re.compile(
    r"^(?:s(\d{1,10}):(plenary|staff|help|g(\d{1,10})|help:u(\d{1,10}))|u(\d{1,10}))$"
)


def plenary(session_id: int) -> str:
    return f"s{session_id}:plenary"


def room(session_id: int, group_id: int) -> str:
    return f"s{session_id}:g{group_id}"


def staff(session_id: int) -> str:
    return f"s{session_id}:staff"


def helpdesk(session_id: int) -> str:
    return f"s{session_id}:help"


def facilitator_desk(session_id: int, user_id: int) -> str:
    return f"s{session_id}:help:u{user_id}"


def personal(user_id: int) -> str:
    return f"u{user_id}"


def room_group_id(channel: str) -> int | None:
    match = CHANNEL_PATTERN.match(channel)
    return int(match.group(3)) if match and match.group(3) else None


def is_room(channel: str) -> bool:
    """The plenary or a breakout room: where people are, talk and are captioned."""
    match = CHANNEL_PATTERN.match(channel)
    return bool(match and (match.group(2) == "plenary" or match.group(3)))


@dataclass
class Seat:
    """Where one person is in a live session and what they may see and do there."""

    ctx: ProgrammeContext
    session: ProgrammeSession
    breakout: Breakout | None
    # The room channel the person is in now (plenary when no breakout is open).
    current: str
    current_group: Group | None
    # Groups whose rooms the person may enter.
    room_groups: dict[int, Group] = field(default_factory=dict)
    facilitated: set[int] = field(default_factory=set)

    @property
    def user_id(self) -> int:
        return self.ctx.user.id

    @property
    def is_host(self) -> bool:
        return self.ctx.is_host

    @property
    def is_staff(self) -> bool:
        return self.ctx.role in (Role.HOST, Role.FACILITATOR, Role.IT_SUPPORT)

    @property
    def help_desk(self) -> str | None:
        """Where this person's hands and help requests arrive: IT support and hosts see every
        one, a facilitator those of the groups they facilitate (on a desk of their own, so
        that no other group's requests reach them), anyone else none."""
        if self.is_host or self.ctx.role is Role.IT_SUPPORT:
            return helpdesk(self.session.id)
        if self.ctx.role is Role.FACILITATOR:
            return facilitator_desk(self.session.id, self.user_id)
        return None

    @property
    def may_moderate_current(self) -> bool:
        return self.may_moderate(self.current)

    def may_moderate(self, channel: str) -> bool:
        if self.is_host:
            return True
        group_id = room_group_id(channel)
        return group_id is not None and group_id in self.facilitated

    def followable(self) -> set[str]:
        sid = self.session.id
        channels = {plenary(sid), personal(self.user_id)}
        if self.breakout is not None:
            channels.update(room(sid, gid) for gid in self.room_groups)
        if self.is_host or self.ctx.role is Role.FACILITATOR:
            channels.add(staff(sid))
        if self.help_desk is not None:
            channels.add(self.help_desk)
        return channels

    def may_post(self, channel: str) -> bool:
        if self.ctx.role is Role.OBSERVER:
            return False
        sid = self.session.id
        if channel == plenary(sid):
            return True
        if channel == self.current or (self.is_host and channel in self.followable()):
            return True
        return channel in (staff(sid), helpdesk(sid)) and channel in self.followable()


async def open_breakout(db: AsyncSession, *, session_id: int) -> Breakout | None:
    return await db.scalar(
        select(Breakout)
        .where(Breakout.session_id == session_id, Breakout.closed_at.is_(None))
        .order_by(Breakout.id.desc())
        .limit(1)
    )


async def seat_for(db: AsyncSession, *, ctx: ProgrammeContext, session: ProgrammeSession) -> Seat:
    breakout = await open_breakout(db, session_id=session.id)
    user = ctx.user
    facilitated = set(
        (
            await db.scalars(
                select(GroupFacilitator.group_id)
                .join(Group, Group.id == GroupFacilitator.group_id)
                .where(GroupFacilitator.user_id == user.id, Group.programme_id == ctx.programme.id)
            )
        ).all()
    )
    seat = Seat(
        ctx=ctx,
        session=session,
        breakout=breakout,
        current=plenary(session.id),
        current_group=None,
        facilitated=facilitated,
    )
    if breakout is None:
        return seat
    assignment = await db.get(RoomAssignment, (session.id, user.id))
    own_group = ctx.membership.group_id if ctx.membership else None
    groups_query = select(Group).where(Group.programme_id == ctx.programme.id)
    if not ctx.is_host:
        allowed = set(facilitated)
        if assignment is not None and assignment.group_id is not None:
            # Moved by the host (or placed): that room replaces their usual one.
            allowed.add(assignment.group_id)
        elif own_group is not None:
            allowed.add(own_group)
        # Only the groups this person may enter: a seat is worked out on every connection.
        groups_query = groups_query.where(Group.id.in_(allowed or {0}))
    groups = {g.id: g for g in (await db.scalars(groups_query)).all()}
    seat.room_groups = groups
    if assignment is not None:
        chosen = assignment.group_id
    elif own_group is not None and ctx.role is Role.PARTICIPANT:
        chosen = own_group
    elif facilitated and not ctx.is_host:
        chosen = min(facilitated, key=lambda gid: (groups[gid].position, groups[gid].name))
    else:
        chosen = None
    if chosen is not None and chosen in seat.room_groups:
        seat.current = room(session.id, chosen)
        seat.current_group = seat.room_groups[chosen]
    return seat


async def member_seat(db: AsyncSession, *, seat: Seat, user_id: int) -> tuple[User, Seat]:
    """A member someone in `seat` acts on (to mute, to move), and where that member is now in
    the same session; NotFound for anyone who is not an active member of the programme."""
    not_found = NotFound("We could not find that person in this programme.")
    person = await db.get(User, user_id)
    if person is None:
        raise not_found
    try:
        ctx = await load_programme_context(db, person, seat.ctx.programme.id)
    except NotFound as exc:
        raise not_found from exc
    if ctx.membership is None:
        raise not_found
    return person, await seat_for(db, ctx=ctx, session=seat.session)
