"""One speaking stream: a speaker's microphone, recognized live, its text handed on.

Audio goes to a RecognizerStream (recognition runs in the engine's pool, never on the
event loop). What Vosk hears so far goes to the sink's `partial`: at most one every
`partial_interval` seconds (5 a second), and when they come faster only the latest text
is sent. The end of an utterance (Vosk's endpoint, the speaker pausing their microphone
or stopping, or the connection dropping) goes to the sink's `final` as Utterances with
their word times and wall-clock times.

The stream knows nothing of people, rooms or pages: `to` is the sink's own description
of where captions go (the web app's room), compared only to notice a move. The web app's
sink (app/captions/sink.py) stores finals and publishes both to the room.

Silence is not recognized: a VoiceGate (captioning/vad.py) lets only speech through, with
a little audio before it, and ends the utterance when the speaker has been quiet for a
moment, so the final caption comes at the end of each sentence and the recognizer goes
back to the engine's pool. A stream in silence holds no recognizer. At sample rates
webrtcvad does not take (not 8, 16, 32 or 48 kHz), or with `voice_gate=False`,
everything is recognized.

Times: a word's times, and a caption's, are in seconds of the audio the speaker sent
(`heard_seconds`, silence included). Vosk counts only the audio it was given, so each
stretch of speech let through notes where it lies in both (`_skips`). A segment's
wall-clock times come from where the audio started and restarted (after a pause), and are
never later than the moment they are stored.
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
from typing import Any, Generic, Protocol, TypeVar

from captioning.audio import pcm_seconds
from captioning.engine import CaptionEngine
from captioning.engines import OpenRecognizer, Recognizer
from captioning.stream import LIVE_BUDGET, RealtimeBudget, RecognizerStream
from captioning.vad import Pause, VoiceGate
from realtime.db import utcnow

log = logging.getLogger(__name__)

PARTIAL_INTERVAL_SECONDS = 0.2  # at most 5 partials a second per speaking stream
# A final caption is at most this long (a correction may be up to 1000 characters).
MAX_SEGMENT_CHARS = 400

T = TypeVar("T")
# Where the captions go, as the sink describes it (compared only, to notice a move).
To = TypeVar("To")
ToContra = TypeVar("ToContra", contravariant=True)

# (word, start, end, confidence), times in seconds of the stream.
Word = tuple[str, float, float, float]


@dataclass(frozen=True)
class Utterance:
    """One final caption as recognized: its text, words and where it lies in the stream
    (seconds of audio) and in wall-clock time."""

    stream_id: str
    text: str
    # [{"word": ..., "start": s, "end": s, "conf": c}] with times in the stream.
    words: list[dict[str, Any]]
    stream_start: float
    stream_end: float
    started_at: datetime
    ended_at: datetime
    confidence: float


class CaptionSink(Protocol[ToContra]):
    """Where a stream's text goes. `partial` is transient (it may be dropped); `final`
    is called once per Utterance, in order, and returns once it is kept."""

    async def partial(self, to: ToContra, stream_id: str, text: str) -> None: ...

    async def final(self, to: ToContra, utterance: Utterance) -> None: ...


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


class LiveCaptionStream(Generic[To]):
    def __init__(
        self,
        *,
        engine: CaptionEngine,
        sink: CaptionSink[To],
        room: To,
        sample_rate: int,
        budget: RealtimeBudget | None = LIVE_BUDGET,
        partial_interval: float = PARTIAL_INTERVAL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        open_recognizer: OpenRecognizer | None = None,
        voice_gate: bool = True,
    ) -> None:
        # A recognizer elsewhere when caption engines are configured (captioning/remote.py).
        self.recognizer: Recognizer = (
            open_recognizer(sample_rate, budget, clock)
            if open_recognizer is not None
            else RecognizerStream(engine, sample_rate, words=True, budget=budget, clock=clock)
        )
        self.gate = (
            VoiceGate(sample_rate) if voice_gate and VoiceGate.supports(sample_rate) else None
        )
        self.stream_id = secrets.token_hex(8)
        self.sink = sink
        self.room = room
        self.sample_rate = sample_rate
        self.partial_interval = partial_interval
        self.clock = clock
        # Seconds of audio sent to the stream, silence included.
        self.heard_seconds = 0.0
        # (heard seconds, wall-clock time) where the audio started or restarted.
        self._anchors: list[tuple[float, datetime]] = []
        # (recognized seconds, heard seconds) where each stretch given to Vosk began.
        self._skips: list[tuple[float, float]] = [(0.0, 0.0)]
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
            seconds = pcm_seconds(len(pcm), self.sample_rate)
            if self._restarting:
                # The frame has just arrived, so its audio began its length ago.
                began = utcnow() - timedelta(seconds=seconds)
                self._anchors.append((self.heard_seconds, began))
                self._restarting = False
            at, self.heard_seconds = self.heard_seconds, self.heard_seconds + seconds
            if self.gate is None:
                await self._recognize(pcm, at)
                return
            for item in self.gate.push(pcm):
                if isinstance(item, Pause):
                    await self._final(await self.recognizer.final())
                else:
                    await self._recognize(item.pcm, item.at)

    async def _recognize(self, pcm: bytes, at: float) -> None:
        recognized = self.recognizer.audio_seconds
        if abs(self._heard(recognized) - at) > 1e-6:
            self._skips.append((recognized, at))  # silence was skipped before this
        answer = await self.recognizer.accept(pcm)
        if "text" in answer:
            await self._final(answer)
        else:
            await self.partials.offer(" ".join(str(answer.get("partial", "")).split()))

    def _heard(self, recognized: float) -> float:
        """A time in the audio given to Vosk as a time in the audio the speaker sent."""
        for rec, heard in reversed(self._skips):  # the latest first: words are recent
            if rec <= recognized + 1e-6:
                return heard + recognized - rec
        return recognized

    def paused(self) -> None:
        """The microphone is off: the next audio starts a new stretch of wall-clock time."""
        self._restarting = True

    async def finish(self) -> Utterance | None:
        """End the utterance in progress: stored and published if anything was said."""
        async with self._lock:
            if self.recognizer.closed:
                return None
            if self.gate is not None:
                self.gate.close()  # held silence is dropped; the next audio starts afresh
            return await self._final(await self.recognizer.final())

    async def move_to(self, room: To) -> None:
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
        await self.sink.partial(self.room, self.stream_id, text)

    async def _final(self, answer: dict[str, Any]) -> Utterance | None:
        """Called with the stream lock held. Nothing said (a cough): the partial line, if
        any, is emptied; otherwise the final goes to the sink."""
        text = " ".join(str(answer.get("text", "")).split())
        said = [
            (word, self._heard(start), self._heard(start) + end - start, conf)
            for word, start, end, conf in words_of(answer.get("result"))
        ]
        pieces = split_utterance(text, said)
        last = await self.partials.end_utterance(
            (lambda: self._hand_on(pieces)) if pieces else None
        )
        self._utterance_from = last.stream_end if last is not None else self.heard_seconds
        return last

    def _wall(self, seconds: float, now: datetime) -> datetime:
        anchor_audio, anchor_wall = self._anchors[0] if self._anchors else (0.0, now)
        for audio, wall in self._anchors:
            if audio <= seconds:
                anchor_audio, anchor_wall = audio, wall
        return min(anchor_wall + timedelta(seconds=seconds - anchor_audio), now)

    async def _hand_on(self, pieces: list[tuple[str, list[Word]]]) -> Utterance:
        room = self.room
        utterances = [self._utterance(text, said) for text, said in pieces]
        for utterance in utterances:
            await self.sink.final(room, utterance)
        return utterances[-1]

    def _utterance(self, text: str, said: list[Word]) -> Utterance:
        words = [
            {"word": word, "start": round(start, 3), "end": round(end, 3), "conf": round(conf, 3)}
            for word, start, end, conf in said
        ]
        if said:
            stream_start, stream_end = said[0][1], max(end for _, _, end, _ in said)
            confidence = sum(conf for *_, conf in said) / len(said)
        else:
            stream_start, stream_end = self._utterance_from, self.heard_seconds
            confidence = 0.0
        now = utcnow()
        started_at = self._wall(stream_start, now)
        return Utterance(
            stream_id=self.stream_id,
            text=text,
            words=words,
            stream_start=stream_start,
            stream_end=stream_end,
            started_at=started_at,
            ended_at=max(self._wall(stream_end, now), started_at),
            confidence=confidence,
        )
