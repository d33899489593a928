"""The room's mix as a live Ogg/Opus stream, for an `<audio>` element in browsers without
WebCodecs: the server taps the person's current room (the voice router's mix, made on the
server) and encodes it for them alone.

The stream follows the person as their live connection does (a SeatKeeper on their own
channel and their room): it ends the moment they move to another room or lose access, and
the page opens a new one for their new room. One stream per person per session (a new one
ends the one before), and none longer than MAX_STREAM_SECONDS. A listener who reads too
slowly skips ahead rather than fall behind live (at most BUFFER_FRAMES are held)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Mapping

from app.live import channels
from app.live.channels import Seat
from app.live.seats import Follows
from app.voice.ogg_stream import ChunkSink, FrameBuffer, FrameError, OggOpusWriter
from app.voice.recording import MixSource
from realtime.connection import SlowConsumer
from realtime.live_connection import AccessEnded, Cursors, LiveConnection

log = logging.getLogger(__name__)

MAX_STREAM_SECONDS = 3600.0
# Half a second of the room held for a listener that reads slowly; older frames are dropped.
BUFFER_FRAMES = 25
# How often what the tap gave is encoded and sent: the stream's own added latency.
SEND_SECONDS = 0.1
MOVED = "you are in another room now"


def mix_follows(room: str) -> Follows:
    """What a listener's connection follows once their seat changes (app/live/seats.py:
    Follows): their own channel and the same room, or nothing (the stream ends) when they
    are no longer in that room."""

    def follows(before: Seat | None, after: Seat, cursors: Mapping[str, int]) -> Cursors:
        if after.current != room:
            raise AccessEnded(MOVED)
        wanted = (channels.personal(after.user_id), room)
        return {channel: cursors.get(channel) for channel in wanted}

    return follows


class MixListeners:
    """This process's `<audio>` listeners, one per person per session; made in the lifespan."""

    def __init__(self, router: MixSource | None = None) -> None:
        self.router = router
        self._streams: dict[tuple[int, int], asyncio.Event] = {}

    @property
    def available(self) -> bool:
        return self.router is not None

    def claim(self, session_id: int, user_id: int) -> asyncio.Event:
        """A stream's end signal; the person's earlier stream in this session is ended."""
        key = (session_id, user_id)
        earlier = self._streams.get(key)
        if earlier is not None:
            earlier.set()
        ended = asyncio.Event()
        self._streams[key] = ended
        return ended

    def release(self, session_id: int, user_id: int, ended: asyncio.Event) -> None:
        key = (session_id, user_id)
        if self._streams.get(key) is ended:
            del self._streams[key]

    def count(self) -> int:
        return len(self._streams)


async def _still_here(live: LiveConnection) -> bool:
    """Wait up to SEND_SECONDS for the person's events; False once they have moved or
    lost access (the connection's recheck says so)."""
    try:
        await live.next(timeout=SEND_SECONDS)
        if live.stale:
            await live.recheck()
    except (AccessEnded, SlowConsumer):
        return False
    return True


async def mix_stream(
    listeners: MixListeners,
    live: LiveConnection,
    *,
    seat: Seat,
    max_seconds: float = MAX_STREAM_SECONDS,
) -> AsyncIterator[bytes]:
    """The Ogg/Opus bytes of the person's room, as they are made, until the stream ends."""
    assert listeners.router is not None, "check `available` first"
    room, session_id, user_id = seat.current, seat.session.id, seat.user_id
    ended = listeners.claim(session_id, user_id)
    buffer = FrameBuffer(BUFFER_FRAMES)
    sink = ChunkSink()
    writer = OggOpusWriter(sink)
    tap = None
    deadline = time.monotonic() + max_seconds
    try:
        tap = listeners.router.tap(room, buffer.push)
        while not ended.is_set() and time.monotonic() < deadline:
            if not await _still_here(live):
                return
            for pcm in buffer.take():
                try:
                    writer.write(pcm)
                except FrameError:
                    log.warning("dropped a malformed mix frame for room %s", room)
            chunk = sink.drain()
            if chunk:
                yield chunk
    finally:
        if tap is not None:
            tap.close()
        listeners.release(session_id, user_id, ended)
        with contextlib.suppress(Exception):
            writer.close()
        with contextlib.suppress(Exception):
            await live.close()
