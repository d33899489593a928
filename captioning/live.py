"""One speaking stream: a speaker's microphone, recognized live, captioned in their room.

Audio goes to a RecognizerStream (recognition runs in the engine's pool, never on the
event loop). What Vosk hears so far goes to the room as `caption.partial`: transient, at
most one every `partial_interval` seconds (5 a second), and when they come faster only
the latest text is sent. The end of an utterance (Vosk's endpoint, the speaker pausing
their microphone or stopping, or the connection dropping) becomes a `caption.final`: a
stored CaptionSegment with its word times, and an event stored in the same transaction
and published after it commits, on the speaker's room channel only.

Times: Vosk's word times count seconds of audio since the stream began (they carry on
across utterances). A segment's wall-clock times come from where the audio started and
restarted (after a pause), and are never later than the moment they are stored.
"""

from __future__ import annotations

import asyncio
import logging
import math
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db import utcnow
from app.live.captions import caption_list_id, final_data, final_payload
from app.live.events import CaptionPartialPayload
from captioning.audio import pcm_seconds
from captioning.engine import CaptionEngine
from captioning.models import CaptionSegment
from captioning.stream import LIVE_BUDGET, RealtimeBudget, RecognizerStream
from realtime.publish import Live

log = logging.getLogger(__name__)

PARTIAL_INTERVAL_SECONDS = 0.2  # at most 5 partials a second per speaking stream
# A final caption is at most this long (a correction may be up to 1000 characters).
MAX_SEGMENT_CHARS = 400

T = TypeVar("T")


@dataclass(frozen=True)
class Speaker:
    user_id: int
    # As shown with every caption: the display name, with pronouns when given.
    name: str


@dataclass(frozen=True)
class Room:
    """Where the speaker's captions go: a room channel of a session."""

    session_id: int
    channel: str
    group_id: int | None
    timezone: str


# (word, start, end, confidence), times in seconds of the stream.
Word = tuple[str, float, float, float]


def words_of(result: object) -> list[Word]:
    """Vosk's word list ({"word", "start", "end", "conf"} each) as tuples."""
    if not isinstance(result, list):
        return []
    return [
        (
            str(w.get("word", "")),
            float(w.get("start", 0.0)),
            float(w.get("end", 0.0)),
            float(w.get("conf", 0.0)),
        )
        for w in result
        if isinstance(w, dict)
    ]


def split_utterance(
    text: str, said: list[Word], limit: int = MAX_SEGMENT_CHARS
) -> list[tuple[str, list[Word]]]:
    """An utterance as captions of at most about `limit` characters, split between words,
    each with its words (someone who talks for minutes without a pause still gets
    captions short enough to read, and to correct)."""
    items = said or [(token, 0.0, 0.0, 0.0) for token in text.split()]
    groups: list[list[Word]] = []
    current: list[Word] = []
    length = 0
    for item in items:
        extra = len(item[0]) + (1 if current else 0)
        if current and length + extra > limit:
            groups.append(current)
            current, length, extra = [], 0, len(item[0])
        current.append(item)
        length += extra
    if current:
        groups.append(current)
    return [(" ".join(w[0] for w in group)[: limit * 2], group if said else []) for group in groups]


class PartialCoalescer:
    """Sends a speaker's partial text at most once every `interval` seconds; texts that
    come faster wait, and only the latest of them is sent.

    `lock` orders partials and finals: a partial never leaves after its own final."""

    def __init__(
        self,
        send: Callable[[str], Awaitable[None]],
        *,
        interval: float = PARTIAL_INTERVAL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._send = send
        self.interval = interval
        self.clock = clock
        self.lock = asyncio.Lock()
        # The text listeners see now, and the newer one waiting for its turn.
        self.shown = ""
        self._pending: str | None = None
        self._last_sent = -math.inf
        self._task: asyncio.Task[None] | None = None

    async def offer(self, text: str) -> None:
        latest = self._pending if self._pending is not None else self.shown
        if text == latest:
            return
        self._pending = text
        wait = self._last_sent + self.interval - self.clock()
        if wait <= 0:
            await self.flush()
        elif self._task is None or self._task.done():
            self._task = asyncio.create_task(self._flush_later(wait))

    async def flush(self) -> None:
        async with self.lock:
            text, self._pending = self._pending, None
            if text is not None and text != self.shown:
                await self._emit(text)

    async def end_utterance(self, publish_final: Callable[[], Awaitable[T]] | None) -> T | None:
        """The utterance has ended: any waiting partial is dropped. With a final to
        publish (it replaces the partial line), it is published in order; without one, a
        partial line still shown is emptied."""
        async with self.lock:
            self._pending = None
            if publish_final is None:
                if self.shown:
                    await self._emit("")
                return None
            result = await publish_final()
            self.shown = ""
            return result

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def _emit(self, text: str) -> None:
        self._last_sent = self.clock()
        self.shown = text
        await self._send(text)

    async def _flush_later(self, wait: float) -> None:
        await asyncio.sleep(wait)
        try:
            await self.flush()
        except Exception:
            log.exception("could not send a partial caption")


class LiveCaptionStream:
    def __init__(
        self,
        *,
        engine: CaptionEngine,
        live: Live,
        sessionmaker: async_sessionmaker[AsyncSession],
        speaker: Speaker,
        room: Room,
        sample_rate: int,
        budget: RealtimeBudget | None = LIVE_BUDGET,
        partial_interval: float = PARTIAL_INTERVAL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.recognizer = RecognizerStream(
            engine, sample_rate, words=True, budget=budget, clock=clock
        )
        self.stream_id = secrets.token_hex(8)
        self.live = live
        self.sessionmaker = sessionmaker
        self.speaker = speaker
        self.room = room
        self.sample_rate = sample_rate
        self.partial_interval = partial_interval
        self.clock = clock
        self.segment_ids: list[int] = []
        # (seconds of audio so far, wall-clock time) where the audio started or restarted.
        self._anchors: list[tuple[float, datetime]] = []
        self._restarting = True
        self._utterance_from = 0.0
        # One feed, final or move at a time, so every caption lands in the right room.
        self._lock = asyncio.Lock()
        self.partials = PartialCoalescer(
            self._publish_partial, interval=partial_interval, clock=clock
        )

    # -- audio in --

    async def feed(self, pcm: bytes) -> None:
        """Recognize 16-bit mono PCM at the stream's sample rate; publishes what it hears."""
        if not pcm:
            return
        async with self._lock:
            if self._restarting:
                # The frame has just arrived, so its audio began its length ago.
                began = utcnow() - timedelta(seconds=pcm_seconds(len(pcm), self.sample_rate))
                self._anchors.append((self.recognizer.audio_seconds, began))
                self._restarting = False
            answer = await self.recognizer.accept(pcm)
            if "text" in answer:
                await self._final(answer)
            else:
                await self.partials.offer(" ".join(str(answer.get("partial", "")).split()))

    def paused(self) -> None:
        """The microphone is off: the next audio starts a new stretch of wall-clock time."""
        self._restarting = True

    async def finish(self) -> CaptionSegment | None:
        """End the utterance in progress: stored and published if anything was said."""
        async with self._lock:
            if self.recognizer.closed:
                return None
            return await self._final(await self.recognizer.final())

    async def move_to(self, room: Room) -> None:
        """The speaker has moved: what they were saying is captioned in the room they
        said it in, and what follows in the new one."""
        async with self._lock:
            if room == self.room:
                return
            if not self.recognizer.closed:
                await self._final(await self.recognizer.final())
            self.room = room

    def close(self) -> None:
        """Free the recognizer and drop any partial still waiting (safe in `finally`)."""
        self.partials.close()
        self.recognizer.close()

    # -- partials and finals --

    async def _publish_partial(self, text: str) -> None:
        await self.live.publish_transient(
            self.room.channel,
            "caption.partial",
            CaptionPartialPayload(stream=self.stream_id, speaker=self.speaker.name, text=text),
            target=f"cp-{self.stream_id}",
            data={
                "stream": self.stream_id,
                "speaker_id": self.speaker.user_id,
                "into": caption_list_id(self.room.channel),
            },
        )

    async def _final(self, answer: dict[str, Any]) -> CaptionSegment | None:
        """Called with the stream lock held. Nothing said (a cough): the partial line, if
        any, is emptied; otherwise the final is stored and published."""
        text = " ".join(str(answer.get("text", "")).split())
        pieces = split_utterance(text, words_of(answer.get("result")))
        segment = await self.partials.end_utterance(
            (lambda: self._store_all(pieces)) if pieces else None
        )
        self._utterance_from = (
            segment.stream_end if segment is not None else self.recognizer.audio_seconds
        )
        return segment

    def _wall(self, seconds: float, now: datetime) -> datetime:
        anchor_audio, anchor_wall = self._anchors[0] if self._anchors else (0.0, now)
        for audio, wall in self._anchors:
            if audio <= seconds:
                anchor_audio, anchor_wall = audio, wall
        return min(anchor_wall + timedelta(seconds=seconds - anchor_audio), now)

    async def _store_all(self, pieces: list[tuple[str, list[Word]]]) -> CaptionSegment:
        stored = [await self._store(text, said) for text, said in pieces]
        return stored[-1]

    async def _store(self, text: str, said: list[Word]) -> CaptionSegment:
        words = [
            {"word": word, "start": round(start, 3), "end": round(end, 3), "conf": round(conf, 3)}
            for word, start, end, conf in said
        ]
        if said:
            stream_start, stream_end = said[0][1], max(end for _, _, end, _ in said)
            confidence = sum(conf for *_, conf in said) / len(said)
        else:
            stream_start, stream_end = self._utterance_from, self.recognizer.audio_seconds
            confidence = 0.0
        now = utcnow()
        started_at = self._wall(stream_start, now)
        ended_at = max(self._wall(stream_end, now), started_at)
        room, speaker = self.room, self.speaker
        async with self.sessionmaker() as db:
            segment = CaptionSegment(
                session_id=room.session_id,
                channel=room.channel,
                group_id=room.group_id,
                speaker_id=speaker.user_id,
                speaker_name=speaker.name[:150],
                stream_id=self.stream_id,
                stream_start=stream_start,
                stream_end=stream_end,
                started_at=started_at,
                ended_at=ended_at,
                text=text,
                original_text=text,
                words=words,
                confidence=confidence,
            )
            db.add(segment)
            await db.flush()
            outbox = self.live.outbox(db)
            await outbox.add(
                room.channel,
                "caption.final",
                final_payload(segment, timezone=room.timezone),
                actor_id=speaker.user_id,
                target=f"cs-{segment.id}",
                data=final_data(segment),
            )
            await outbox.commit()
        self.segment_ids.append(segment.id)
        return segment
