"""The speaker's microphone WebSocket: the protocol in docs/captioning.md ("Live captions"),
with the seat, consent and mute checks around a LiveCaptionStream.

The speaker's live connection is a LiveConnection (realtime/live_connection.py) like a
page's, with a SeatKeeper whose `follows` is `speaker_follows`: it follows the speaker's
own channel (mutes) and their room (moves), and ends when they may no longer speak there.
However the stream ends, its recognizer is freed; what was said before the client vanished
is captioned, what was said before a mute is not."""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Mapping
from dataclasses import dataclass

from starlette.websockets import WebSocket, WebSocketDisconnect

from app.captions.actions import MUTED_NOTICE, is_muted
from app.captions.sink import Room, RoomCaptions
from app.captions.speaker_session import (
    NO_LONGER_SPEAKING,
    SpeakerSession,
    room_of,
    speaker_of,
)
from app.captions.speaker_socket import (
    AudioLimits,
    Ending,
    Sender,
    busy_ending,
    checked_text,
    refusal,
)
from app.captions.voice_line import VoiceLine
from app.db import is_overloaded
from app.live import channels
from app.live.channels import Seat
from app.live.seats import SeatKeeper
from app.live.speaking import Microphone
from app.state import AppState, get_app_state
from captioning.engine import CaptionsUnavailable
from captioning.ingest import (
    CLOSE_GOING_AWAY,
    CLOSE_MUTED,
    CLOSE_POLICY,
    CLOSE_SERVER_ERROR,
    AudioIngest,
    FrameSink,
    IngestError,
    StartRequest,
    parse_start,
)
from captioning.live import LiveCaptionStream
from captioning.remote import remote_opener
from captioning.stream import StreamConfigError
from realtime.live_connection import AccessEnded, Cursors, LiveConnection

__all__ = ["AudioLimits", "serve_speaker", "speaker_follows"]

log = logging.getLogger(__name__)


def speaker_channels(seat: Seat, cursors: Mapping[str, int] | None = None) -> Cursors:
    """The speaker's own channel and their room, from these cursors (else from now on)."""
    cursors = cursors or {}
    wanted = (channels.personal(seat.user_id), seat.current)
    return {channel: cursors.get(channel) for channel in wanted}


def speaker_follows(before: Seat | None, after: Seat, cursors: Mapping[str, int]) -> Cursors:
    """What a speaker's connection follows once their seat has changed (app/live/seats.py:
    Follows): their own channel and their room now, while they may speak there."""
    if not after.may_post(after.current):
        raise AccessEnded(NO_LONGER_SPEAKING)
    return speaker_channels(after, cursors)


async def admit(
    websocket: WebSocket, seats: SeatKeeper, limits: AudioLimits
) -> tuple[StartRequest, Seat]:
    """The start message, and the speaker's seat if they may be captioned there; raises
    IngestError for a refusal, WebSocketDisconnect when the client leaves first."""
    try:
        message = await asyncio.wait_for(websocket.receive(), limits.idle_seconds)
    except TimeoutError:
        raise IngestError("idle", "idle: no start message", close_code=CLOSE_GOING_AWAY) from None
    if message["type"] == "websocket.disconnect":
        raise WebSocketDisconnect(message.get("code", 1000))
    start = parse_start(checked_text(message.get("text")))
    seat = await seats.get()
    if seat is None:
        raise IngestError("not_allowed", "you are not part of this session", close_code=1008)
    if not seat.may_post(seat.current):
        raise IngestError(
            "not_allowed",
            "you cannot speak in this room (observers read the captions)",
            close_code=CLOSE_POLICY,
        )
    return start, seat


@dataclass
class Opened:
    """What a stream holds while it runs, released however it ends."""

    ingest: AudioIngest | None = None
    stream: LiveCaptionStream[Room] | None = None

    def release(self) -> None:
        if self.stream is not None:
            self.stream.close()
        if self.ingest is not None:
            self.ingest.sink.ended()


def open_stream(
    state: AppState,
    opened: Opened,
    *,
    start: StartRequest,
    seat: Seat,
    limits: AudioLimits,
    sink: FrameSink | None,
) -> tuple[AudioIngest, LiveCaptionStream[Room] | None, RoomCaptions]:
    """The decoder and the recognizer of a stream, kept in `opened` as they are made.
    Without a speech model the speaker is still heard, only not captioned (no stream)."""
    if sink is None:
        sink = VoiceLine(state.voice, room=seat.current, source=seat.user_id)
    ingest = opened.ingest = AudioIngest(start, sink=sink, max_bad_packets=limits.max_bad_packets)
    try:
        captions = RoomCaptions(
            live=state.live, sessionmaker=state.sessionmaker, speaker=speaker_of(seat)
        )
        engines = state.caption_engines
        if not state.captions.available and not engines.engines:
            return ingest, None, captions
        stream = opened.stream = LiveCaptionStream(
            engine=state.captions,
            sink=captions,
            room=room_of(seat),
            sample_rate=ingest.output_rate,
            # The speaker's session measures the budget as frames arrive.
            budget=None,
            partial_interval=limits.partial_interval,
            # With CAPTION_ENGINES, recognized elsewhere (this model as the last resort).
            open_recognizer=remote_opener(engines, state.captions) if engines.engines else None,
        )
    except CaptionsUnavailable as exc:
        raise IngestError("unavailable", str(exc), close_code=CLOSE_SERVER_ERROR) from None
    except StreamConfigError as exc:
        raise IngestError("bad_sample_rate", str(exc)) from None
    return ingest, stream, captions


def ending_of(exc: Exception) -> Ending | None:
    """How a refusal, or a database too busy, ends the stream; None for a real fault."""
    if isinstance(exc, IngestError):
        return refusal(exc)
    if is_overloaded(exc):
        return busy_ending(exc)
    return None


async def serve_speaker(
    websocket: WebSocket,
    *,
    seats: SeatKeeper,
    limits: AudioLimits,
    sink: FrameSink | None = None,
) -> None:
    """Serve an accepted connection of a signed-in member of the session."""
    sender = Sender(websocket)
    try:
        start, seat = await admit(websocket, seats, limits)
    except WebSocketDisconnect:
        return
    except Exception as exc:
        refused = ending_of(exc)
        if refused is None:
            raise
        await sender.end(refused)
        return
    state = get_app_state(websocket)
    live = LiveConnection(state.hub, seats, transport="microphone")
    opened = Opened()
    # Marks the speaker as speaking in their room while the stream is live (consoles).
    name = seat.ctx.user.name_with_pronouns
    mic = Microphone(state.speaking, member=str(seat.user_id), name=name)
    try:
        try:
            ending = await speak(
                state,
                sender,
                live,
                mic,
                opened,
                seats=seats,
                start=start,
                seat=seat,
                limits=limits,
                sink=sink,
            )
        except Exception as exc:
            refused = ending_of(exc)
            if refused is None:
                raise
            ending = refused
        await sender.end(ending)
    finally:
        await mic.silent()
        opened.release()
        await live.close()


async def speak(
    state: AppState,
    sender: Sender,
    live: LiveConnection,
    mic: Microphone,
    opened: Opened,
    *,
    seats: SeatKeeper,
    start: StartRequest,
    seat: Seat,
    limits: AudioLimits,
    sink: FrameSink | None,
) -> Ending:
    """Start the stream, run it until it ends, and caption what was said before the end
    when the ending says so."""
    # Follow the speaker's own channel before looking for a mute, so none is missed.
    await live.follow(speaker_channels(seat))
    async with state.sessionmaker() as db:
        if await is_muted(db, session_id=seat.session.id, user_id=seat.user_id):
            raise IngestError("muted", MUTED_NOTICE, close_code=CLOSE_MUTED)
    ingest, stream, captions = open_stream(
        state, opened, start=start, seat=seat, limits=limits, sink=sink
    )
    speaking = SpeakerSession(
        sender=sender,
        seats=seats,
        seat=seat,
        stream=stream,
        captions=captions,
        ingest=ingest,
        live=live,
        limits=limits,
        mic=mic,
    )
    stream_id = stream.stream_id if stream is not None else secrets.token_hex(8)
    ingest.sink.started(stream_id=stream_id, channel=seat.current, start=start)
    await sender.send({"t": "started", "stream": stream_id, "room": seat.current})
    if stream is None:
        reason = state.captions.public_reason
        await sender.send({"t": "captions", "available": False, "message": reason})
    await mic.live_in(seat.current)
    await speaking.check_floor()
    await speaking.tell_recording()
    ending = await speaking.run()
    if ending.finalize and stream is not None:
        try:
            await stream.finish()
        except Exception:  # the client is told why the stream ended, not this
            log.warning("could not caption the end of a stream", exc_info=True)
    return ending
