"""The speaker's microphone WebSocket: the protocol in docs/captioning.md ("Live captions"),
with the seat, consent and mute checks around a LiveCaptionStream.

Two tasks serve a connection: one reads the client's frames (audio, pause, resume, stop)
and feeds the recognizer; the other follows the speaker's own channel and room, to end
the stream when a facilitator mutes their captioning, to move their captions when they
move room, and to pass on heartbeats. Whichever ends first cancels the other. However
the stream ends, its recognizer is freed; what was said before the client vanished is
captioned, what was said before a mute is not.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from dataclasses import dataclass
from typing import Any, Protocol

from starlette.websockets import WebSocket, WebSocketDisconnect

from app.captions.actions import MUTED_NOTICE, is_muted
from app.captions.sink import Room, RoomCaptions, Speaker
from app.db import is_overloaded
from app.live import channels
from app.live.channels import Seat
from app.live.speaking import Microphone
from app.state import get_app_state
from captioning.engine import CaptionsUnavailable
from captioning.ingest import (
    CLOSE_GOING_AWAY,
    CLOSE_MUTED,
    CLOSE_NORMAL,
    CLOSE_POLICY,
    CLOSE_SERVER_ERROR,
    MAX_START_BYTES,
    AudioIngest,
    FrameSink,
    IngestError,
    StartRequest,
    parse_json_object,
    parse_start,
)
from captioning.live import LiveCaptionStream
from captioning.stream import (
    LIVE_BUDGET,
    RealtimeBudget,
    StreamConfigError,
    StreamLimitExceeded,
)
from captioning.vosk_protocol import close_reason
from realtime import frames
from realtime.connection import HEARTBEAT, Connection, SlowConsumer

log = logging.getLogger(__name__)

# Events after which the speaker's room is worked out again (as for the live WebSocket).
SEAT_CHANGING_EVENTS = ("breakout.opened", "breakout.closed", "room.changed")
# WebSocket close code "try again later": the database was too busy to go on.
CLOSE_TRY_AGAIN_LATER = 1013
BUSY = "the server is too busy to caption you right now: reconnect in a few seconds"


@dataclass(frozen=True)
class AudioLimits:
    idle_seconds: float = 60.0
    # With the microphone paused the client sends nothing; it may stay connected longer.
    paused_idle_seconds: float = 15 * 60.0
    max_bad_packets: int = 50
    budget: RealtimeBudget = LIVE_BUDGET
    partial_interval: float = 0.2
    # How often the speaker's seat is looked at even without news (a removed member).
    seat_check_seconds: float = 30.0


@dataclass
class Ending:
    """How a stream ends: what the client is told, the close, and whether the utterance in
    progress is captioned first."""

    close_code: int | None  # None: the client has gone
    reason: str = ""
    finalize: bool = True
    tell: dict[str, Any] | None = None


def checked_text(text: str | None) -> str | None:
    """A text message, refused before it reaches the JSON decoder if its nesting, numbers,
    keys or text are hostile (realtime/frames.py): deep nesting made the decoder raise
    RecursionError, and an escaped lone surrogate cannot go into a close reason. (Its
    length is parse_json_object's to refuse, in characters.)"""
    if text is None or len(text) > MAX_START_BYTES:
        return text
    try:
        frames.loads(text, max_bytes=4 * MAX_START_BYTES)
    except frames.FrameError as exc:
        if exc.code == "bad_json":
            return text  # not JSON at all: parse_json_object says how to start
        log.warning("refused a speaker's text message: %s", exc.code)
        raise IngestError(
            "bad_message", f"text messages must be plain JSON: {exc.message}"
        ) from None
    return text


def busy_ending(exc: Exception, *, finalize: bool = False) -> Ending:
    log.warning("ended a caption stream: the database is too busy (%s)", type(exc).__name__)
    return refusal(IngestError("busy", BUSY, close_code=CLOSE_TRY_AGAIN_LATER), finalize=finalize)


def refusal(exc: IngestError, *, finalize: bool = False) -> Ending:
    return Ending(
        exc.close_code,
        exc.message,
        finalize=finalize,
        tell={"t": "error", "code": exc.code, "message": exc.message},
    )


class Sender:
    """Sends from both tasks, one message at a time; a client that has gone is ignored."""

    def __init__(self, websocket: WebSocket) -> None:
        self.websocket = websocket
        self._lock = asyncio.Lock()

    async def send(self, message: dict[str, Any] | str) -> None:
        text = message if isinstance(message, str) else json.dumps(message)
        async with self._lock:
            with contextlib.suppress(WebSocketDisconnect, RuntimeError, OSError):
                await self.websocket.send_text(text)

    async def end(self, ending: Ending) -> None:
        if ending.close_code is None:
            return
        if ending.tell is not None:
            await self.send(ending.tell)
        async with self._lock:
            with contextlib.suppress(WebSocketDisconnect, RuntimeError, OSError):
                await self.websocket.close(ending.close_code, close_reason(ending.reason))


def room_of(seat: Seat) -> Room:
    group = seat.current_group
    return Room(
        session_id=seat.session.id,
        channel=seat.current,
        group_id=group.id if group is not None else None,
        timezone=seat.ctx.programme.timezone,
    )


def speaker_of(seat: Seat) -> Speaker:
    return Speaker(user_id=seat.user_id, name=seat.ctx.user.name_with_pronouns)


class SeatSource(Protocol):
    """Where the speaker is now: `get()` works it out again when `connection` has seen an
    event that may move them, or when it is old (app/live/seats.py: SeatKeeper)."""

    connection: Connection | None

    async def get(self) -> Seat | None: ...


async def admit(
    websocket: WebSocket, seats: SeatSource, limits: AudioLimits
) -> tuple[StartRequest, Seat]:
    """The start message, and the speaker's seat if they may be captioned there; raises
    IngestError for a refusal, WebSocketDisconnect when the client leaves first."""
    engine = get_app_state(websocket).captions
    if not engine.available:
        raise IngestError("unavailable", engine.public_reason, close_code=CLOSE_SERVER_ERROR)
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


async def serve_speaker(
    websocket: WebSocket,
    *,
    seats: SeatSource,
    limits: AudioLimits,
    sink: FrameSink | None = None,
) -> None:
    """Serve an accepted connection of a signed-in member of the session."""
    state = get_app_state(websocket)
    sender = Sender(websocket)
    try:
        start, seat = await admit(websocket, seats, limits)
    except IngestError as exc:
        await sender.end(refusal(exc))
        return
    except WebSocketDisconnect:
        return
    except Exception as exc:
        if not is_overloaded(exc):
            raise
        await sender.end(busy_ending(exc))
        return
    # Follow the speaker's own channel before looking for a mute, so none is missed.
    connection = Connection(state.hub, member=str(seat.user_id), stale_on=SEAT_CHANGING_EVENTS)
    seats.connection = connection
    stream: LiveCaptionStream[Room] | None = None
    ingest: AudioIngest | None = None
    # Marks the speaker as speaking in their room while the stream is live (consoles).
    mic = Microphone(
        state.speaking,
        member=str(seat.user_id),
        name=seat.ctx.user.name_with_pronouns,
    )
    try:
        await connection.follow({channels.personal(seat.user_id): None, seat.current: None})
        async with state.sessionmaker() as db:
            if await is_muted(db, session_id=seat.session.id, user_id=seat.user_id):
                raise IngestError("muted", MUTED_NOTICE, close_code=CLOSE_MUTED)
        ingest = AudioIngest(start, sink=sink, max_bad_packets=limits.max_bad_packets)
        try:
            captions = RoomCaptions(
                live=state.live, sessionmaker=state.sessionmaker, speaker=speaker_of(seat)
            )
            stream = LiveCaptionStream(
                engine=state.captions,
                sink=captions,
                room=room_of(seat),
                sample_rate=ingest.output_rate,
                budget=limits.budget,
                partial_interval=limits.partial_interval,
            )
        except CaptionsUnavailable as exc:
            raise IngestError("unavailable", str(exc), close_code=CLOSE_SERVER_ERROR) from None
        except StreamConfigError as exc:
            raise IngestError("bad_sample_rate", str(exc)) from None
        speaking = SpeakerSession(
            sender=sender,
            seats=seats,
            seat=seat,
            stream=stream,
            captions=captions,
            ingest=ingest,
            connection=connection,
            limits=limits,
            mic=mic,
        )
        ingest.sink.started(stream_id=stream.stream_id, channel=seat.current, start=start)
        await sender.send({"t": "started", "stream": stream.stream_id, "room": seat.current})
        await mic.live_in(seat.current)
        ending = await speaking.run()
        if ending.finalize:
            try:
                await stream.finish()
            except Exception:  # the client is told why the stream ended, not this
                log.warning("could not caption the end of a stream", exc_info=True)
        await sender.end(ending)
    except IngestError as exc:
        await sender.end(refusal(exc))
    except Exception as exc:
        if not is_overloaded(exc):
            raise
        await sender.end(busy_ending(exc))
    finally:
        await mic.silent()
        if stream is not None:
            stream.close()
        if ingest is not None:
            ingest.sink.ended()
        await (seats.connection or connection).close()


class SpeakerSession:
    def __init__(
        self,
        *,
        sender: Sender,
        seats: SeatSource,
        seat: Seat,
        stream: LiveCaptionStream[Room],
        captions: RoomCaptions,
        ingest: AudioIngest,
        connection: Connection,
        limits: AudioLimits,
        mic: Microphone | None = None,
    ) -> None:
        self.sender = sender
        self.seats = seats
        self.seat = seat
        self.stream = stream
        self.captions = captions
        self.ingest = ingest
        self.connection = connection
        self.limits = limits
        self.mic = mic or Microphone(None, member=str(seat.user_id), name="")
        self.paused = False

    async def run(self) -> Ending:
        tasks = [
            asyncio.create_task(self._guarded(self._receive()), name="caption-audio-receive"),
            asyncio.create_task(self._guarded(self._watch()), name="caption-audio-watch"),
        ]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        return next(iter(done)).result()

    async def _guarded(self, loop: Any) -> Ending:
        """Whatever goes wrong ends the stream with a code and a reason, never a crash."""
        try:
            ending: Ending = await loop
            return ending
        except IngestError as exc:
            return refusal(exc, finalize=exc.close_code != CLOSE_MUTED)
        except StreamLimitExceeded as exc:
            return refusal(
                IngestError("too_fast", str(exc), close_code=CLOSE_POLICY), finalize=True
            )
        except CaptionsUnavailable as exc:
            log.warning("live captions stopped: %s", exc)
            return refusal(IngestError("unavailable", str(exc), close_code=CLOSE_SERVER_ERROR))
        except (WebSocketDisconnect, OSError):
            return Ending(None)
        except Exception as exc:
            if is_overloaded(exc):
                return busy_ending(exc)
            log.exception("live captions failed")
            failed = IngestError("failed", "captions failed", close_code=CLOSE_SERVER_ERROR)
            return refusal(failed)

    # -- the client's frames --

    async def _receive(self) -> Ending:
        websocket = self.sender.websocket
        while True:
            idle = self.limits.paused_idle_seconds if self.paused else self.limits.idle_seconds
            try:
                message = await asyncio.wait_for(websocket.receive(), idle)
            except TimeoutError:
                reason = f"idle: no audio for {idle:g} seconds"
                return refusal(
                    IngestError("idle", reason, close_code=CLOSE_GOING_AWAY), finalize=True
                )
            if message["type"] == "websocket.disconnect":
                return Ending(None)
            data, text = message.get("bytes"), message.get("text")
            if data is not None:
                await self._audio(data)
            elif text is not None:
                ending = await self._command(text)
                if ending is not None:
                    return ending

    async def _audio(self, data: bytes) -> None:
        self.ingest.check(data)
        if self.paused:
            return  # the speaker has turned their microphone off: nothing is captioned
        await self.stream.feed(self.ingest.take(data))

    async def _command(self, text: str) -> Ending | None:
        message = parse_json_object(checked_text(text) or "")
        kind = message.get("type")
        if kind == "pause":
            if not self.paused:
                self.paused = True
                await self.mic.silent()
                self.stream.paused()
                await self.stream.finish()
        elif kind == "resume":
            self.paused = False
            await self.mic.live_in(self.seat.current)
        elif kind == "stop":
            await self.stream.finish()
            return Ending(CLOSE_NORMAL, "stopped", finalize=False)
        elif kind == "start":
            await self.sender.send(
                {"t": "error", "code": "already_started", "message": "this stream has started"}
            )
        else:
            shown = str(kind)[:20] if isinstance(kind, str) else "none"
            await self.sender.send(
                {
                    "t": "error",
                    "code": "unknown_type",
                    "message": f"unknown message type {shown!r}: send pause, resume or stop",
                }
            )
        return None

    # -- news for the speaker: mutes, moves, heartbeats --

    async def _watch(self) -> Ending:
        personal = channels.personal(self.seat.user_id)
        while True:
            try:
                batch = await self.connection.next(timeout=self.limits.seat_check_seconds)
            except SlowConsumer:
                # Too much room traffic at once. Only mutes and moves matter here: follow
                # afresh, and look at the seat and for a mute as a new stream would.
                await self._refollow(self.seat)
                batch = []
                if await self._muted():
                    return self._muted_ending()
            for wire in batch or []:
                if wire == HEARTBEAT:
                    await self.sender.send(wire)
                elif '"t":"caption.muted"' in wire and _channel_of(wire) == personal:
                    return self._muted_ending()
            if batch is None or self.connection.stale:
                ending = await self._check_seat()
                if ending is not None:
                    return ending

    async def _check_seat(self) -> Ending | None:
        seat = await self.seats.get()
        if seat is None or not seat.may_post(seat.current):
            gone = "you can no longer speak in this session"
            return refusal(IngestError("not_allowed", gone, close_code=CLOSE_POLICY))
        if seat.current != self.seat.current:
            await self.stream.move_to(room_of(seat))
            await self._refollow(seat)
            if not self.paused:
                await self.mic.live_in(seat.current)
            await self.sender.send({"t": "moved", "room": seat.current})
        self.captions.speaker = speaker_of(seat)
        self.seat = seat
        return None

    async def _refollow(self, seat: Seat) -> None:
        """A fresh connection following the speaker's own channel and their room now."""
        old = self.connection
        self.connection = Connection(old.hub, member=old.member, stale_on=SEAT_CHANGING_EVENTS)
        self.seats.connection = self.connection
        await self.connection.follow({channels.personal(seat.user_id): None, seat.current: None})
        await old.close()

    async def _muted(self) -> bool:
        async with get_app_state(self.sender.websocket).sessionmaker() as db:
            return await is_muted(db, session_id=self.seat.session.id, user_id=self.seat.user_id)

    def _muted_ending(self) -> Ending:
        return Ending(
            CLOSE_MUTED,
            "captions muted by a facilitator",
            finalize=False,
            tell={"t": "muted", "message": MUTED_NOTICE},
        )


def _channel_of(wire: str) -> str | None:
    try:
        channel = json.loads(wire).get("c")
    except (ValueError, AttributeError):
        return None
    return channel if isinstance(channel, str) else None
