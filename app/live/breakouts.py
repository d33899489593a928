"""Breakout rooms: opening them, adding time, broadcasting to every room, and closing them
with a warning (moving people between rooms is in app/live/moves.py, the countdown that
closes them on time in app/live/breakout_timer.py).

Hosts (and administrators, who act as hosts) run breakouts; facilitators may enter the
rooms of the groups they facilitate. Closing is done by whichever process gets there first:
every change of state is a conditional UPDATE, so several processes never close twice."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app import audit
from app.db import utcnow
from app.live import channels
from app.live.access import access_changed
from app.live.channels import Seat
from app.live.events import BreakoutPayload, BroadcastPayload, NoticePayload, RoomChangedPayload
from app.live.local_time import clock
from app.live.models import Breakout, RoomAssignment
from app.live.rooms import every_room, participant_groups, programme_groups
from app.live.text import clean_message
from app.models import Group, Programme, ProgrammeSession, User
from app.refusals import Conflict, NotAllowed, Refused
from realtime.publish import Live, Outbox

MIN_MINUTES, MAX_MINUTES = 1, 180
MAX_WARNING_SECONDS = 600
# The warning before rooms close, both when the host closes them and when time runs out.
WARNING_SECONDS = 60
MAX_BROADCAST_CHARS = 1000


def require_host(seat: Seat) -> None:
    if not seat.is_host:
        raise NotAllowed("Only the session's hosts can run breakout rooms.")


def require_open(seat: Seat) -> Breakout:
    if seat.breakout is None:
        raise Conflict("No breakout rooms are open in this session.")
    return seat.breakout


def check_range(value: int, *, what: str, low: int, high: int) -> int:
    if not low <= value <= high:
        raise Refused(f"The {what} must be a whole number from {low} to {high}.")
    return value


async def update_open(
    db: AsyncSession, breakout_id: int, *also: ColumnElement[bool], **values: Any
) -> bool:
    """Change a breakout that has not closed (and matches `also`); False when it had
    closed or no longer matched, as when another process got there first."""
    changed = await db.execute(
        update(Breakout)
        .where(Breakout.id == breakout_id, Breakout.closed_at.is_(None), *also)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return bool(changed.rowcount == 1)  # type: ignore[attr-defined]


async def add_to_rooms(
    outbox: Outbox,
    rooms: list[str],
    type_name: str,
    payload: BreakoutPayload | BroadcastPayload,
    *,
    actor_id: int | None,
    deadline: datetime | None = None,
) -> None:
    data = {"deadline": deadline.isoformat()} if deadline is not None else None
    for channel in rooms:
        await outbox.add(channel, type_name, payload, actor_id=actor_id, data=data)


async def tell_person(
    outbox: Outbox, user_id: int, text: str, *, actor_id: int | None, moved: bool = False
) -> None:
    """A line on someone's own channel; `moved` also makes their page fetch its new room."""
    channel = channels.personal(user_id)
    if moved:
        await outbox.add(channel, "room.changed", RoomChangedPayload(text=text), actor_id=actor_id)
    await outbox.add(channel, "notice", NoticePayload(text=text), actor_id=actor_id)


def place_ungrouped(
    groups: list[Group], participants: list[tuple[int, int | None]]
) -> list[tuple[int, Group]]:
    """Participants not in any of `groups`, each placed in the room with the fewest people
    so far (the earlier group on a tie), counting the groups' own members first."""
    order = {g.id: n for n, g in enumerate(groups)}
    sizes = dict.fromkeys(order, 0)
    for _user_id, group_id in participants:
        if group_id is not None and group_id in sizes:
            sizes[group_id] += 1
    placed: list[tuple[int, Group]] = []
    for user_id, group_id in participants:
        if group_id in sizes:
            continue
        chosen = min(sizes, key=lambda gid: (sizes[gid], order[gid]))
        sizes[chosen] += 1
        placed.append((user_id, groups[order[chosen]]))
    return placed


async def open_rooms(db: AsyncSession, live: Live, *, seat: Seat, minutes: int) -> Breakout:
    """Open every group's room; participants without a group are placed in the least full."""
    require_host(seat)
    check_range(minutes, what="length in minutes", low=MIN_MINUTES, high=MAX_MINUTES)
    if seat.breakout is not None:
        raise Conflict("Breakout rooms are already open; close them first.")
    programme = seat.ctx.programme
    groups = await programme_groups(db, programme.id)
    if not groups:
        raise Conflict(
            "This programme has no groups yet, so there are no rooms to open. "
            "Create groups and place people in them first.",
        )
    participants = await participant_groups(db, programme_id=programme.id)
    now = utcnow()
    breakout = Breakout(
        session_id=seat.session.id,
        opened_at=now,
        opened_by_id=seat.user_id,
        ends_at=now + timedelta(minutes=minutes),
    )
    db.add(breakout)
    # Moves left over from an earlier round (normally removed when it closed) do not carry over.
    await db.execute(delete(RoomAssignment).where(RoomAssignment.session_id == seat.session.id))
    placed = place_ungrouped(groups, participants)
    for user_id, group in placed:
        db.add(
            RoomAssignment(
                session_id=seat.session.id,
                user_id=user_id,
                group_id=group.id,
                assigned_by_id=seat.user_id,
            )
        )
    await db.flush()
    audit.record(
        db,
        actor=seat.ctx.user,
        action="breakout.open",
        programme_id=programme.id,
        target=f"session:{seat.session.id}",
        breakout_id=breakout.id,
        minutes=minutes,
        placed={str(user_id): group.name for user_id, group in placed},
    )
    await announce_opening(db, live, seat=seat, breakout=breakout, placed=placed)
    await access_changed(live, user_ids=[user_id for user_id, _ in placed], reason="placed")
    return breakout


async def announce_opening(
    db: AsyncSession,
    live: Live,
    *,
    seat: Seat,
    breakout: Breakout,
    placed: list[tuple[int, Group]],
) -> None:
    """Tell the plenary the rooms are open, and each person placed where they went."""
    until = clock(breakout.ends_at, seat.ctx.programme.timezone)
    outbox = live.outbox(db)
    await outbox.add(
        channels.plenary(seat.session.id),
        "breakout.opened",
        BreakoutPayload(ends_at=breakout.ends_at, text=f"Breakout rooms are open until {until}."),
        actor_id=seat.user_id,
        data={"deadline": breakout.ends_at.isoformat()},
    )
    for user_id, group in placed:
        await tell_person(
            outbox,
            user_id,
            f"You are not in a group yet, so for this breakout you have been placed "
            f"in {group.name}'s room.",
            actor_id=seat.user_id,
            moved=True,
        )
    await outbox.commit()


async def extend(db: AsyncSession, live: Live, *, seat: Seat, minutes: int) -> datetime:
    """Add time to the open rooms (this also calls off a close that was announced)."""
    require_host(seat)
    check_range(minutes, what="number of minutes to add", low=MIN_MINUTES, high=MAX_MINUTES)
    breakout = require_open(seat)
    ends_at = max(breakout.ends_at, utcnow()) + timedelta(minutes=minutes)
    if not await update_open(db, breakout.id, ends_at=ends_at, closes_at=None):
        raise Conflict("The breakout rooms have just closed.")
    programme = seat.ctx.programme
    audit.record(
        db,
        actor=seat.ctx.user,
        action="breakout.extend",
        programme_id=programme.id,
        target=f"session:{seat.session.id}",
        breakout_id=breakout.id,
        minutes=minutes,
    )
    outbox = live.outbox(db)
    rooms = await every_room(db, session_id=seat.session.id, programme_id=programme.id)
    text = (
        f"The host added {minutes} minute{'s' if minutes != 1 else ''}: "
        f"rooms now close at {clock(ends_at, programme.timezone)}."
    )
    payload = BreakoutPayload(ends_at=ends_at, text=text)
    await add_to_rooms(
        outbox, rooms, "breakout.extended", payload, actor_id=seat.user_id, deadline=ends_at
    )
    await outbox.commit()
    return ends_at


async def broadcast(db: AsyncSession, live: Live, *, seat: Seat, text: str) -> None:
    """A message from the host to the plenary and, while breakouts are open, every room."""
    require_host(seat)
    body = clean_message(text)
    if not body:
        raise Refused("Type the message to send to every room.")
    if len(body) > MAX_BROADCAST_CHARS:
        raise Refused(
            f"Messages to every room can be at most {MAX_BROADCAST_CHARS:,} characters; "
            f"this one has {len(body):,}."
        )
    programme = seat.ctx.programme
    if seat.breakout is not None:
        rooms = await every_room(db, session_id=seat.session.id, programme_id=programme.id)
    else:
        rooms = [channels.plenary(seat.session.id)]
    audit.record(
        db,
        actor=seat.ctx.user,
        action="breakout.broadcast",
        programme_id=programme.id,
        target=f"session:{seat.session.id}",
        text=body[:200],
    )
    payload = BroadcastPayload(
        author=seat.ctx.user.name_with_pronouns,
        text=body,
        time_label=clock(utcnow(), programme.timezone),
    )
    outbox = live.outbox(db)
    await add_to_rooms(outbox, rooms, "broadcast", payload, actor_id=seat.user_id)
    await outbox.commit()


async def close_rooms(
    db: AsyncSession, live: Live, *, seat: Seat, warning_seconds: int = WARNING_SECONDS
) -> None:
    """Close the rooms after a warning (at once with no warning)."""
    require_host(seat)
    check_range(warning_seconds, what="warning in seconds", low=0, high=MAX_WARNING_SECONDS)
    breakout = require_open(seat)
    if warning_seconds == 0:
        closed = await finish(
            db, live, breakout_id=breakout.id, session=seat.session, actor=seat.ctx.user
        )
        if not closed:
            raise Conflict("The breakout rooms have already closed.")
        return
    closes_at = utcnow() + timedelta(seconds=warning_seconds)
    if not await update_open(db, breakout.id, closes_at=closes_at):
        raise Conflict("The breakout rooms have already closed.")
    audit.record(
        db,
        actor=seat.ctx.user,
        action="breakout.close",
        programme_id=seat.ctx.programme.id,
        target=f"session:{seat.session.id}",
        breakout_id=breakout.id,
        warning_seconds=warning_seconds,
    )
    await announce_closing(
        db,
        live,
        session=seat.session,
        programme=seat.ctx.programme,
        ends_at=breakout.ends_at,
        closes_at=closes_at,
        actor_id=seat.user_id,
    )


async def announce_closing(
    db: AsyncSession,
    live: Live,
    *,
    session: ProgrammeSession,
    programme: Programme,
    ends_at: datetime,
    closes_at: datetime,
    actor_id: int | None,
) -> None:
    seconds = max(0, round((closes_at - utcnow()).total_seconds()))
    if seconds >= 90:
        left = f"{round(seconds / 60)} minutes"
    elif seconds >= 55:
        left = "1 minute"
    else:
        left = f"{seconds} second{'s' if seconds != 1 else ''}"
    text = (
        f"Rooms close in {left} (at {clock(closes_at, programme.timezone)}) and everyone "
        "returns to the plenary. Please start wrapping up."
    )
    payload = BreakoutPayload(ends_at=ends_at, closes_at=closes_at, text=text)
    outbox = live.outbox(db)
    rooms = await every_room(db, session_id=session.id, programme_id=programme.id)
    await add_to_rooms(
        outbox, rooms, "breakout.closing", payload, actor_id=actor_id, deadline=closes_at
    )
    await outbox.commit()


async def finish(
    db: AsyncSession,
    live: Live,
    *,
    breakout_id: int,
    session: ProgrammeSession,
    actor: User | None,
    due_by: datetime | None = None,
) -> bool:
    """Close the rooms now and send everyone back to the plenary. Returns False when the
    rooms were already closed (or, with `due_by`, were no longer due: time was added)."""
    now = utcnow()
    still_due = [] if due_by is None else [Breakout.closes_at <= due_by]
    if not await update_open(db, breakout_id, *still_due, closed_at=now):
        return False
    # Those moved for this breakout no longer belong in the rooms they were moved to.
    moved = list(
        await db.scalars(
            select(RoomAssignment.user_id).where(RoomAssignment.session_id == session.id)
        )
    )
    await db.execute(delete(RoomAssignment).where(RoomAssignment.session_id == session.id))
    audit.record(
        db,
        actor=actor,
        action="breakout.closed",
        programme_id=session.programme_id,
        target=f"session:{session.id}",
        breakout_id=breakout_id,
        automatic=actor is None,
    )
    ends_at = await db.scalar(select(Breakout.ends_at).where(Breakout.id == breakout_id))
    payload = BreakoutPayload(
        ends_at=ends_at or now,
        closes_at=now,
        text="Breakout rooms are closed. Welcome back to the plenary.",
    )
    outbox = live.outbox(db)
    rooms = await every_room(db, session_id=session.id, programme_id=session.programme_id)
    await add_to_rooms(
        outbox, rooms, "breakout.closed", payload, actor_id=actor.id if actor else None
    )
    await outbox.commit()
    await access_changed(live, user_ids=moved, reason="breakout closed")
    return True
