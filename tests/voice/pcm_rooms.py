"""Rooms whose mix is real speech we give them, tapped as the voice router's rooms are.

TODO/compatibility: the voice router (realtime/voice.py, `VoiceRouter.tap`) is being built
beside this work; until it is merged these tests give the recorder and the `<audio>` stream
this source, with the same contract: `tap(room, on_frame)` calls `on_frame` every 20 ms
with 960 samples of 48 kHz s16 mono (the room's speech, then silence) until `close()`.
Once the router is here, speak into it (`speaker(room, source).packet(opus, pcm48)`)."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable

FRAME_BYTES = 1920
SILENCE = bytes(FRAME_BYTES)


class PcmTap:
    def __init__(self, rooms: PcmRooms, room: str, on_frame: Callable[[bytes], None]) -> None:
        self.rooms = rooms
        self.room = room
        self.on_frame = on_frame
        self.frames = 0
        self.closed = False
        self.task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        start = time.monotonic()
        while not self.closed:
            queued = self.rooms.queued.get(self.room)
            self.on_frame(queued.popleft() if queued else SILENCE)
            self.frames += 1
            # Paced on the clock, as the router's mixer is: no drift however slow a frame.
            await asyncio.sleep(max(0.0, start + self.frames * 0.02 - time.monotonic()))

    def close(self) -> None:
        self.closed = True
        self.task.cancel()
        self.rooms.taps.discard(self)


class PcmRooms:
    def __init__(self) -> None:
        self.queued: dict[str, deque[bytes]] = {}
        self.taps: set[PcmTap] = set()

    def say(self, room: str, pcm48: bytes) -> float:
        """Queue 48 kHz s16 mono speech as the room's mix; returns its length in seconds."""
        if len(pcm48) % FRAME_BYTES:
            pcm48 += bytes(FRAME_BYTES - len(pcm48) % FRAME_BYTES)
        frames = [pcm48[i : i + FRAME_BYTES] for i in range(0, len(pcm48), FRAME_BYTES)]
        self.queued.setdefault(room, deque()).extend(frames)
        return len(frames) * 0.02

    def tap(self, room: str, on_frame: Callable[[bytes], None]) -> PcmTap:
        tap = PcmTap(self, room, on_frame)
        self.taps.add(tap)
        return tap

    def taps_of(self, room: str) -> list[PcmTap]:
        return [t for t in self.taps if t.room == room]
