"""Speech into a room of the app's voice router (realtime/voice.py), as a speaker's
microphone ingest hands it over: 20 ms Opus packets with their 48 kHz PCM, in real time."""

from __future__ import annotations

import asyncio
import contextlib
import time

from realtime.voice import Tap, VoiceRouter
from tests.voice.voice_helpers import opus_of

FRAME_BYTES = 1920


class RoomSpeech:
    def __init__(self, voice: VoiceRouter) -> None:
        self.voice = voice
        self.tasks: set[asyncio.Task[None]] = set()

    def say(self, room: str, pcm48: bytes, source: int = 999_001) -> float:
        """Start speaking `pcm48` (s16 mono 48 kHz) into `room`; returns its length (s)."""
        pcm48 += bytes(-len(pcm48) % FRAME_BYTES)
        frames = [pcm48[i : i + FRAME_BYTES] for i in range(0, len(pcm48), FRAME_BYTES)]
        task = asyncio.create_task(self._speak(room, source, frames, opus_of(pcm48)))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return len(frames) * 0.02

    async def _speak(self, room: str, source: int, frames: list[bytes], opus: list[bytes]) -> None:
        line = self.voice.speaker(room, source)
        start = time.monotonic()
        try:
            for n, (pcm, packet) in enumerate(zip(frames, opus, strict=False)):
                line.packet(packet, pcm)
                await asyncio.sleep(max(0.0, start + (n + 1) * 0.02 - time.monotonic()))
        finally:
            line.close()

    def taps_of(self, room: str) -> set[Tap]:
        found = self.voice.rooms.get(room)
        return set(found.taps) if found is not None else set()

    def all_taps(self) -> set[Tap]:
        return {tap for room in self.voice.rooms.values() for tap in room.taps}

    async def close(self) -> None:
        for task in list(self.tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
