"""Who may be heard in a room now: the rules, the state they read (floor grants, open mic)
and the events that tell a room and a speaker that it changed.

- A breakout room is open mic unless a host says otherwise: anyone who may post there
  (not observers) may speak.
- The plenary is not open mic unless the host makes it so: hosts and facilitators may
  always speak; participants and IT support only with the floor the host gives them.
- Observers are never heard.

The speaker's microphone asks `may_speak` when it starts and again after every
`voice.floor` event on the channels it follows (the person's room and own channel), and
pauses the stream on `voice.muted` (app/voice/mutes.py)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import joinedload

from app.live import channels
from app.live.channels import Seat
from app.live.events import VoiceFloorPayload
from app.models import Role
from app.voice.models import FloorGrant, OpenMic
from realtime.publish import Outbox

FLOOR_EVENT = "voice.floor"
MUTED_EVENT = "voice.muted"

OBSERVING = "You are observing this session: you can listen and read, but not be heard."
PLENARY_NEEDS_FLOOR = (
    "In the plenary only the host, the facilitators and people given the floor are heard. "
    "Raise your hand to ask the host for the floor."
)
ROOM_NEEDS_FLOOR = (
    "The host has limited who is heard in this room. Raise your hand to ask for the floor."
)


def always_heard(seat: Seat, channel: str) -> bool:
    """Hosts and facilitators are heard in every room they are in, floor or not."""
    return seat.is_host or seat.ctx.role is Role.FACILITATOR or seat.may_moderate(channel)


def open_mic_by_default(channel: str) -> bool:
    return channels.room_group_id(channel) is not None


async def is_open_mic(db: AsyncSession, *, session_id: int, channel: str) -> bool:
    setting = await db.get(OpenMic, (session_id, channel))
    return open_mic_by_default(channel) if setting is None else setting.open


async def active_grant(
    db: AsyncSession, *, session_id: int, channel: str, user_id: int
) -> FloorGrant | None:
    return await db.scalar(
        select(FloorGrant)
        .where(
            FloorGrant.session_id == session_id,
            FloorGrant.channel == channel,
            FloorGrant.user_id == user_id,
            FloorGrant.taken_at.is_(None),
        )
        .limit(1)
    )


async def active_grants(db: AsyncSession, *, session_id: int, channel: str) -> list[FloorGrant]:
    """Who has the floor in a room now (with each person loaded), in the order it was given."""
    rows = await db.scalars(
        select(FloorGrant)
        .options(joinedload(FloorGrant.user))
        .where(
            FloorGrant.session_id == session_id,
            FloorGrant.channel == channel,
            FloorGrant.taken_at.is_(None),
        )
        .order_by(FloorGrant.granted_at, FloorGrant.id)
    )
    return list(rows.all())


async def may_speak(db: AsyncSession, seat: Seat) -> tuple[bool, str]:
    """Whether the person in `seat` may be heard in their current room now, and a line
    for them: why not, or on what footing they may."""
    room = seat.current
    if not seat.may_post(room):
        return False, OBSERVING
    if always_heard(seat, room):
        return True, "You can speak here."
    if await is_open_mic(db, session_id=seat.session.id, channel=room):
        return True, "Open mic: anyone here can speak."
    if await active_grant(db, session_id=seat.session.id, channel=room, user_id=seat.user_id):
        return True, "You have the floor."
    if room == channels.plenary(seat.session.id):
        return False, PLENARY_NEEDS_FLOOR
    return False, ROOM_NEEDS_FLOOR


async def floor_changed(
    outbox: Outbox,
    *,
    channel: str,
    change: str,
    text: str,
    open_mic: bool,
    actor_id: int | None,
    person_id: int | None = None,
    who: str = "",
    person_text: str = "",
) -> None:
    """Store `voice.floor` events in the outbox's transaction: one on the room's channel
    and, when the change concerns one person, one on theirs (their microphone follows
    both and asks `may_speak` again). They go out when the outbox commits."""
    data = {"channel": channel, "change": change, "open_mic": open_mic, "user": person_id}
    room_payload = VoiceFloorPayload(
        channel=channel, change=change, who=who, open_mic=open_mic, text=text
    )
    await outbox.add(channel, "voice.floor", room_payload, actor_id=actor_id, data=data)
    if person_id is not None:
        personal = room_payload.model_copy(update={"text": person_text or text})
        await outbox.add(
            channels.personal(person_id), "voice.floor", personal, actor_id=actor_id, data=data
        )
