"""One speaker's live stream, once started: two tasks, whichever ends first cancelling the
other. One reads the client's frames (audio, pause, resume, stop) and feeds the
recognizer; the other watches the speaker's live connection (realtime/live_connection.py,
following their own channel and their room with a SpeakerSeat as its Access) to end the
stream when a facilitator mutes their captioning, to move their captions when they move
room, and to pass on heartbeats."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable

from starlette.requests import HTTPConnection
from starlette.websockets import WebSocketDisconnect

from app.captions.actions import MUTED_NOTICE, is_muted
from app.captions.caption_feed import CaptionFeed
from app.captions.sink import Room, RoomCaptions, Speaker
from app.captions.speaker_socket import (
    AudioLimits,
    Ending,
    Sender,
    busy_ending,
    checked_text,
    refusal,
)
from app.db import is_overloaded
from app.live import channels
from app.live.channels import Seat
from app.live.seats import SeatKeeper
from app.live.speaking import Microphone
from app.state import get_app_state
from app.voice.floor import may_speak
from app.voice.recording_actions import running_recording
from captioning.engine import CaptionsUnavailable
from captioning.ingest import (
    CLOSE_GOING_AWAY,
    CLOSE_MUTED,
    CLOSE_NORMAL,
    CLOSE_POLICY,
    CLOSE_SERVER_ERROR,
    AudioIngest,
    IngestError,
    parse_json_object,
)
from captioning.live import LiveCaptionStream
from captioning.stream import StreamLimitExceeded
from realtime.connection import HEARTBEAT
from realtime.live_connection import AccessEnded, LiveConnection, SlowConsumer

log = logging.getLogger(__name__)

NO_LONGER_SPEAKING = "you can no longer speak in this session"


def no_longer_speaking() -> Ending:
    return refusal(IngestError("not_allowed", NO_LONGER_SPEAKING, close_code=CLOSE_POLICY))


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


class SpeakerSession:
    def __init__(
        self,
        *,
        sender: Sender,
        seats: SeatKeeper,
        seat: Seat,
        stream: LiveCaptionStream[Room] | None,
        captions: RoomCaptions,
        ingest: AudioIngest,
        live: LiveConnection,
        limits: AudioLimits,
        mic: Microphone | None = None,
    ) -> None:
        self.sender = sender
        self.seats = seats
        self.seat = seat
        self.stream = stream
        self.captions = captions
        self.ingest = ingest
        self.live = live
        self.limits = limits
        self.mic = mic or Microphone(None, member=str(seat.user_id), name="")
        self.paused = False
        # The room hears each packet at once; the recognizer takes it from here.
        self.feed = CaptionFeed(stream)
        # Whether the speaker may be heard in their room now (the floor), and whether
        # they have been told that they may not.
        self.heard = True
        self.told_no_floor = False
        self.why_not = ""

    async def run(self) -> Ending:
        tasks = [
            asyncio.create_task(self._guarded(self._receive()), name="caption-audio-receive"),
            asyncio.create_task(self._guarded(self._watch()), name="caption-audio-watch"),
            asyncio.create_task(self._guarded(self._caption()), name="caption-audio-recognize"),
        ]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            ending = next(iter(done)).result()
            if ending.finalize and not tasks[2].done():
                # What was said before the end is captioned, in order, before it finishes.
                await self.feed.drained(self.limits.drain_seconds)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        return ending

    async def _caption(self) -> Ending:
        await self.feed.run()
        return Ending(None)  # never: the feed runs until it is cancelled

    async def _guarded(self, loop: Awaitable[Ending]) -> Ending:
        """Whatever goes wrong ends the stream with a code and a reason, never a crash."""
        try:
            return await loop
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
        if not self.heard:
            # Without the floor, nothing reaches the room: not heard, not captioned.
            if not self.told_no_floor:
                self.told_no_floor = True
                await self.sender.send(self.floor_message())
            return
        self.feed.audio(self.ingest.take(data))

    async def check_floor(self) -> None:
        """Work out again whether the speaker may be heard in their room, and tell them
        when that changes (or, the first time, when they may not)."""
        heard, self.why_not = await may_be_heard(self.sender.websocket, self.seat)
        if heard != self.heard or (not heard and not self.told_no_floor):
            self.heard = heard
            self.told_no_floor = not heard
            await self.sender.send(self.floor_message())

    async def tell_recording(self) -> None:
        """Tell the speaker whether the room they speak in is being recorded."""
        async with get_app_state(self.sender.websocket).sessionmaker() as db:
            running = await running_recording(db, self.seat.current)
        await self.sender.send({"t": "recording", "on": running is not None})

    def floor_message(self) -> dict[str, object]:
        if self.heard:
            return {"t": "floor", "may_speak": True}
        return {"t": "floor", "may_speak": False, "message": self.why_not}

    async def _command(self, text: str) -> Ending | None:
        message = parse_json_object(checked_text(text) or "")
        kind = message.get("type")
        if kind == "pause":
            if not self.paused:
                self.paused = True
                await self.mic.silent()
                self.feed.finish(paused=True)
        elif kind == "resume":
            self.paused = False
            await self.mic.live_in(self.seat.current)
        elif kind == "stop":
            self.feed.finish()
            await self.feed.drained(self.limits.drain_seconds)
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
                batch = await self._news()
            except AccessEnded:
                return no_longer_speaking()
            except SlowConsumer:
                # Too much room traffic at once. Only mutes and moves matter here: follow
                # afresh, and look at the seat and for a mute as a new stream would.
                await self.live.follow_afresh()
                if await self._muted():
                    return self._muted_ending()
                batch = []
            floor_news = recording_news = False
            for wire in batch:
                if wire == HEARTBEAT:
                    await self.sender.send(wire)
                elif '"t":"caption.muted"' in wire and _channel_of(wire) == personal:
                    return self._muted_ending()
                elif '"t":"voice.muted"' in wire and _channel_of(wire) == personal:
                    await self._voice_muted(wire)
                elif '"t":"voice.floor"' in wire:
                    floor_news = True
                elif '"t":"voice.recording"' in wire:
                    recording_news = True
            ending = await self._follow_seat()
            if ending is not None:
                return ending
            if floor_news:
                await self.check_floor()
            if recording_news:
                await self.tell_recording()

    async def _news(self) -> list[str]:
        """What the live connection has for the speaker; when an event may have moved
        them, the seat is worked out again first (and a new room followed)."""
        # The speaker's own connection never asks to hear, so it carries no media.
        news = await self.live.next(timeout=self.limits.seat_check_seconds) or []
        batch = [message for message in news if isinstance(message, str)]
        if self.live.stale:
            batch.extend(await self.live.recheck())
        return batch

    async def _follow_seat(self) -> Ending | None:
        """Catch up with the seat as last worked out (a recheck may have moved the speaker
        and their connection already follows the new room): move the captions too."""
        seat = self.seats.seat
        if seat is None or not seat.may_post(seat.current):
            return no_longer_speaking()
        moved = seat.current != self.seat.current
        if moved:
            self.feed.move_to(room_of(seat))
            self.ingest.sink.moved(seat.current)
            if not self.paused:
                await self.mic.live_in(seat.current)
            await self.sender.send({"t": "moved", "room": seat.current})
        self.captions.speaker = speaker_of(seat)
        self.seat = seat
        if moved:
            await self.check_floor()
            await self.tell_recording()
        return None

    async def _voice_muted(self, wire: str) -> None:
        """A facilitator or host muted the speaker: their microphone is paused, as if they
        had pressed mute, and they unmute themselves when they want to speak."""
        data = _data_of(wire)
        if not self.paused:
            self.paused = True
            await self.mic.silent()
            self.feed.finish(paused=True)
        message = data.get("message") or "Your microphone was muted. Unmute when you want to speak."
        await self.sender.send({"t": "voice_muted", "by": data.get("by", ""), "message": message})

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


def _data_of(wire: str) -> dict[str, str]:
    try:
        data = json.loads(wire).get("d")
    except (ValueError, AttributeError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {k: v for k, v in data.items() if isinstance(v, str)}


async def may_be_heard(conn: HTTPConnection, seat: Seat) -> tuple[bool, str]:
    """Whether the speaker may be heard in their room now, and why not (the floor:
    app/voice/floor.py)."""
    async with get_app_state(conn).sessionmaker() as db:
        return await may_speak(db, seat)


def _channel_of(wire: str) -> str | None:
    try:
        channel = json.loads(wire).get("c")
    except (ValueError, AttributeError):
        return None
    return channel if isinstance(channel, str) else None
