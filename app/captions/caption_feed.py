"""The captions' side of a speaker's stream, apart from their voice: the audio, and the
pauses and moves in order with it, wait here for the recognizer, so that the microphone's
socket is read (and the room hears the speaker) however long Vosk takes. Without a
speech model there is no stream, and nothing waits. When recognition
falls more than a minute behind (a machine overloaded for long), the oldest audio is
dropped, never a pause or a move, and a warning is logged once."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from dataclasses import dataclass

from app.captions.sink import Room
from captioning.live import LiveCaptionStream

log = logging.getLogger(__name__)

# 20 ms frames: a minute of speech.
MAX_BACKLOG = 3000


@dataclass(frozen=True)
class Finish:
    """End the utterance in progress (the microphone paused, or the stream stops)."""

    paused: bool


@dataclass(frozen=True)
class MoveTo:
    room: Room


class CaptionFeed:
    def __init__(self, stream: LiveCaptionStream[Room] | None) -> None:
        self.stream = stream
        self._items: deque[bytes | Finish | MoveTo] = deque()
        self._waiting = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._audio_items = 0
        self.dropped = 0

    def audio(self, pcm: bytes) -> None:
        if not pcm:
            return
        if self._audio_items >= MAX_BACKLOG:
            self._drop_oldest_audio()
        self._audio_items += 1
        self._put(pcm)

    def finish(self, *, paused: bool = False) -> None:
        self._put(Finish(paused))

    def move_to(self, room: Room) -> None:
        self._put(MoveTo(room))

    async def drained(self, timeout: float) -> None:
        """Wait until everything given so far has been captioned (at most `timeout`)."""
        try:
            async with asyncio.timeout(timeout):
                await self._idle.wait()
        except TimeoutError:
            log.warning("gave up captioning the end of a stream after %gs", timeout)

    async def run(self) -> None:
        """Feed the recognizer, in order, for as long as the stream lasts."""
        stream = self.stream
        if stream is None:
            await asyncio.Event().wait()  # nothing ever comes
            return
        while True:
            if not self._items:
                self._idle.set()
                self._waiting.clear()
                await self._waiting.wait()
                continue
            item = self._items[0]
            if isinstance(item, bytes):
                await stream.feed(item)
            elif isinstance(item, Finish):
                if item.paused:
                    stream.paused()
                await stream.finish()
            else:
                await stream.move_to(item.room)
            if self._items and self._items[0] is item:
                self._items.popleft()
                if isinstance(item, bytes):
                    self._audio_items -= 1

    def _put(self, item: bytes | Finish | MoveTo) -> None:
        if self.stream is None:
            return  # heard, not captioned
        self._items.append(item)
        self._idle.clear()
        self._waiting.set()

    def _drop_oldest_audio(self) -> None:
        for index, item in enumerate(self._items):
            if isinstance(item, bytes) and index > 0:  # the first may be being captioned
                del self._items[index]
                self._audio_items -= 1
                if self.dropped == 0:
                    log.warning("captions fell a minute behind a speaker: dropping audio")
                self.dropped += 1
                return
