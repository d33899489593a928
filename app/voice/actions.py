"""The host's floor: giving someone the floor in their room, taking it back, and making a
room open mic or not. Each is audited, and `voice.floor` tells the room and the person
(app/voice/floor.py: floor_changed) after the commit."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app import audit
from app.db import utcnow
from app.live import channels
from app.live import help as help_desk
from app.live.channels import Seat, member_seat
from app.live.help_queries import open_request
from app.live.moderation import check_room
from app.models import Group, Role
from app.refusals import Conflict, NotAllowed
from app.voice.floor import active_grant, always_heard, floor_changed, is_open_mic
from app.voice.models import FloorGrant, OpenMic
from realtime.publish import Live


def require_floor_host(seat: Seat) -> None:
    if not seat.is_host:
        raise NotAllowed(
            "Only the session's hosts can give the floor, take it back or open the mic."
        )


async def room_label(db: AsyncSession, *, channel: str) -> str:
    group_id = channels.room_group_id(channel)
    group = await db.get(Group, group_id) if group_id is not None else None
    return f"{group.name}'s room" if group is not None else "the plenary"


def upper_first(text: str) -> str:
    """Make "the plenary" "The plenary", leaving the rest as it is (unlike str.capitalize)."""
    return text[:1].upper() + text[1:]


async def give_floor(db: AsyncSession, live: Live, *, seat: Seat, user_id: int) -> str:
    """The host lets someone be heard in the room they are in (and lowers their hand)."""
    require_floor_host(seat)
    person, where = await member_seat(db, seat=seat, user_id=user_id)
    name = person.display_name
    room = where.current
    label = await room_label(db, channel=room)
    if where.ctx.role is Role.OBSERVER:
        raise Conflict(f"{name} is observing: observers listen and read, and are not heard.")
    if always_heard(where, room):
        raise Conflict(f"{name} can always speak in {label}; they do not need the floor.")
    sid = seat.session.id
    open_mic = await is_open_mic(db, session_id=sid, channel=room)
    if open_mic:
        raise Conflict(f"{upper_first(label)} is open mic: {name} can already be heard there.")
    if await active_grant(db, session_id=sid, channel=room, user_id=user_id) is not None:
        return f"{name} already has the floor in {label}."
    db.add(FloorGrant(session_id=sid, channel=room, user_id=user_id, granted_by_id=seat.user_id))
    audit.record(
        db,
        actor=seat.ctx.user,
        action="voice.floor_give",
        programme_id=seat.ctx.programme.id,
        target=f"user:{user_id}",
        session_id=sid,
        channel=room,
    )
    outbox = live.outbox(db)
    await floor_changed(
        outbox,
        channel=room,
        change="given",
        text=f"{seat.ctx.user.display_name} gave {name} the floor.",
        open_mic=open_mic,
        actor_id=seat.user_id,
        person_id=user_id,
        who=person.name_with_pronouns,
        person_text=(
            f"{seat.ctx.user.display_name} gave you the floor: everyone in {label} can hear "
            "you when your microphone is on."
        ),
    )
    await outbox.commit()
    hand = await open_request(db, seat=where, kind="hand")
    if hand is not None:
        await help_desk.resolve(db, live, seat=seat, help_id=hand.id)
    return f"{name} has the floor in {label}."


async def take_floor(db: AsyncSession, live: Live, *, seat: Seat, user_id: int) -> str:
    """The host takes the floor back from someone, in every room where they have it."""
    require_floor_host(seat)
    person, _where = await member_seat(db, seat=seat, user_id=user_id)
    sid = seat.session.id
    grants = list(
        (
            await db.scalars(
                select(FloorGrant).where(
                    FloorGrant.session_id == sid,
                    FloorGrant.user_id == user_id,
                    FloorGrant.taken_at.is_(None),
                )
            )
        ).all()
    )
    if not grants:
        raise Conflict(f"{person.display_name} does not have the floor.")
    outbox = live.outbox(db)
    for grant in grants:
        grant.taken_at = utcnow()
        grant.taken_by_id = seat.user_id
        label = await room_label(db, channel=grant.channel)
        audit.record(
            db,
            actor=seat.ctx.user,
            action="voice.floor_take",
            programme_id=seat.ctx.programme.id,
            target=f"user:{user_id}",
            session_id=sid,
            channel=grant.channel,
        )
        await floor_changed(
            outbox,
            channel=grant.channel,
            change="taken",
            text=f"{seat.ctx.user.display_name} took the floor back from {person.display_name}.",
            open_mic=await is_open_mic(db, session_id=sid, channel=grant.channel),
            actor_id=seat.user_id,
            person_id=user_id,
            who=person.name_with_pronouns,
            person_text=(
                f"{seat.ctx.user.display_name} took the floor back: {label} no longer hears "
                "you. Raise your hand to ask again."
            ),
        )
    await outbox.commit()
    return f"{person.display_name} no longer has the floor."


async def set_open_mic(
    db: AsyncSession, live: Live, *, seat: Seat, channel: str, open_mic: bool
) -> str:
    """The host makes a room open mic (anyone there may be heard) or not."""
    require_floor_host(seat)
    await check_room(db, seat=seat, channel=channel)
    sid = seat.session.id
    label = await room_label(db, channel=channel)
    if await is_open_mic(db, session_id=sid, channel=channel) == open_mic:
        return f"{upper_first(label)} is {'already' if open_mic else 'not'} open mic."
    setting = await db.get(OpenMic, (sid, channel))
    if setting is None:
        setting = OpenMic(session_id=sid, channel=channel)
        db.add(setting)
    setting.open = open_mic
    setting.set_by_id = seat.user_id
    setting.set_at = utcnow()
    audit.record(
        db,
        actor=seat.ctx.user,
        action="voice.open_mic_on" if open_mic else "voice.open_mic_off",
        programme_id=seat.ctx.programme.id,
        target=channel,
        session_id=sid,
    )
    if open_mic:
        text = f"Open mic: anyone in {label} can speak now."
    else:
        text = (
            f"Open mic is over: in {label} only the host, the facilitators and people given "
            "the floor are heard."
        )
    outbox = live.outbox(db)
    await floor_changed(
        outbox,
        channel=channel,
        change="open_mic_on" if open_mic else "open_mic_off",
        text=text,
        open_mic=open_mic,
        actor_id=seat.user_id,
    )
    await outbox.commit()
    return text
