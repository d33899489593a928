"""Starting and stopping a room's recording, and what a room's page shows about it.

Only the session's hosts record. They may record the plenary; a breakout room only where
the programme allows it (its settings: off unless a host turns it on). The room is told
before any sound is kept: starting stores the recording and publishes `voice.recording`
on the room's channel, and only then does the recorder tap the room's mix."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app import audit
from app.db import utcnow
from app.live import channels
from app.live.channels import Seat
from app.refusals import Busy, Conflict, NotAllowed, NotFound
from app.voice.recording import Recorders, recording_payload
from app.voice.recording_models import VoiceRecording

log = logging.getLogger(__name__)

NOT_HOST = "Only the session's hosts can record a room."


@dataclass(frozen=True)
class RecordableRoom:
    channel: str
    group_id: int | None
    name: str


def require_recording_host(seat: Seat) -> None:
    if not seat.is_host:
        raise NotAllowed(NOT_HOST)


def room_of(seat: Seat, channel: str) -> RecordableRoom:
    """The room `channel` names (the person's current room when empty), in this session."""
    channel = channel.strip() or seat.current
    if channel == channels.plenary(seat.session.id):
        return RecordableRoom(channel, None, "Plenary")
    group_id = channels.room_group_id(channel)
    if group_id is None or channel != channels.room(seat.session.id, group_id):
        raise NotFound("We could not find that room in this session.")
    group = seat.room_groups.get(group_id)
    if seat.breakout is None or group is None:
        raise Conflict("That breakout room is not open now.")
    return RecordableRoom(channel, group_id, f"{group.name} room")


def may_record(seat: Seat, room: RecordableRoom) -> bool:
    if not seat.is_host:
        return False
    return room.group_id is None or seat.ctx.programme.allow_breakout_recording


async def running_recording(db: AsyncSession, channel: str) -> VoiceRecording | None:
    return await db.scalar(
        select(VoiceRecording).where(
            VoiceRecording.channel == channel, VoiceRecording.stopped_at.is_(None)
        )
    )


async def start_recording(
    db: AsyncSession, recorders: Recorders, *, seat: Seat, channel: str = ""
) -> str:
    """Record a room; returns a line for the host."""
    require_recording_host(seat)
    room = room_of(seat, channel)
    if not may_record(seat, room):
        raise NotAllowed(
            "This programme does not allow recording breakout rooms. A host can allow it "
            "in the programme's settings."
        )
    if not recorders.available:
        raise Conflict("Recording is not available on this server: its audio is not running.")
    if await running_recording(db, room.channel) is not None:
        raise Conflict(f"The {room.name} is already being recorded.")
    recording = VoiceRecording(
        session_id=seat.session.id,
        channel=room.channel,
        group_id=room.group_id,
        room_name=room.name,
        started_by_id=seat.user_id,
        started_at=utcnow(),
    )
    db.add(recording)
    try:
        await db.flush()
    except IntegrityError:
        await db.rollback()
        raise Conflict(f"The {room.name} is already being recorded.") from None
    audit.record(
        db,
        actor=seat.ctx.user,
        action="recording.start",
        programme_id=seat.ctx.programme.id,
        target=f"recording:{recording.id}",
        session_id=seat.session.id,
        channel=room.channel,
    )
    outbox = recorders.live.outbox(db)
    payload = recording_payload(room.channel, on=True, room_name=room.name)
    await outbox.add(room.channel, "voice.recording", payload, actor_id=seat.user_id)
    # The room is told (the event goes out on commit) before anything is recorded.
    await outbox.commit()
    try:
        run = await recorders.begin(recording.id, room.channel)
    except Exception:
        log.exception("recording %s could not start", recording.id)
        await _abandon(db, recorders, recording.id)
        raise Busy("The recording could not start. Try again in a moment.") from None
    # The recording's 0 s is when the tap began: its captions are timed from then.
    recording.started_at = run.began_at or recording.started_at
    await db.commit()
    return f"Recording the {room.name}. Everyone in the room has been told."


async def _abandon(db: AsyncSession, recorders: Recorders, recording_id: int) -> None:
    """A recording that never began: closed, and the room told it is not recorded."""
    row = await db.get(VoiceRecording, recording_id)
    if row is None or row.stopped_at is not None:
        return
    row.stopped_at, row.stop_reason = utcnow(), "could not start"
    outbox = recorders.live.outbox(db)
    await outbox.add(
        row.channel, "voice.recording", recording_payload(row.channel, on=False, room_name="")
    )
    await outbox.commit()


async def stop_recording(
    db: AsyncSession, recorders: Recorders, *, seat: Seat, channel: str = ""
) -> str:
    """Stop a room's recording; its file is stored and attached to the session."""
    require_recording_host(seat)
    channel = channel.strip() or seat.current
    if channel != channels.plenary(seat.session.id):
        group_id = channels.room_group_id(channel)
        if group_id is None or channel != channels.room(seat.session.id, group_id):
            raise NotFound("We could not find that room in this session.")
    row = await running_recording(db, channel)
    if row is None:
        raise Conflict("This room is not being recorded.")
    run = recorders.running(channel)
    await db.commit()  # end the read: the recorder stores the file in sessions of its own
    if run is not None:
        await recorders.finish(run, reason="stopped by a host", actor=seat.ctx.user)
        return f"The recording of the {row.room_name} has stopped and is on the session page."
    # Recorded by another process (it sees this within seconds and stores the file).
    row.stopped_at, row.stopped_by_id, row.stop_reason = utcnow(), seat.user_id, "stopped by a host"
    audit.record(
        db,
        actor=seat.ctx.user,
        action="recording.stop",
        programme_id=seat.ctx.programme.id,
        target=f"recording:{row.id}",
        session_id=seat.session.id,
        channel=channel,
        reason=row.stop_reason,
    )
    outbox = recorders.live.outbox(db)
    payload = recording_payload(channel, on=False, room_name=row.room_name, stopped=True)
    await outbox.add(channel, "voice.recording", payload, actor_id=seat.user_id)
    await outbox.commit()
    return (
        f"The recording of the {row.room_name} has stopped; it will be on the session page shortly."
    )


async def indicator_context(db: AsyncSession, recorders: Recorders, *, seat: Seat) -> dict:
    """For a room's page: whether it is being recorded, and the host's start/stop control."""
    running = await running_recording(db, seat.current)
    if running is not None:
        indicator = recording_payload(seat.current, on=True, room_name=running.room_name)
    else:
        indicator = recording_payload(seat.current, on=False, room_name="")
    try:
        room = room_of(seat, seat.current)
        may = may_record(seat, room) and recorders.available
    except (NotFound, Conflict):
        may = False
    return {"recording_view": indicator, "may_record_room": may}
