"""One speaking stream: a Kaldi recognizer, fed in order, off the event loop. The stream
holds one from the first audio of an utterance to its final, borrowed from the engine's
pool (captioning/recognizer_pool.py).

Used by the vosk-server-compatible endpoint, by live captions (words=True gives each word
with its start, end and confidence) and for transcribing uploaded files.

Fairness between streams. The engine's pool has one thread per core and serves calls in
the order they arrive. A stream keeps at most one call in the pool at a time (its calls
are serialized by a lock), and no call carries more than `SLICE_SECONDS` of audio: a big
frame is fed as several slices. So however fast one client sends audio, another stream's
next call waits behind at most one slice per busy stream, never behind a whole flood; and
a client that sends faster than we recognize is slowed by its own unanswered frames.
Live streams also have a real-time budget (`RealtimeBudget`): audio arriving much faster
than it could have been spoken is refused. File-like clients (the vosk-server endpoint)
use a budget without a speed limit, relying on the slicing above.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, TypeVar

from captioning.audio import (
    SAMPLE_WIDTH,
    AudioFormatError,
    PcmCarry,
    Upsampler,
    parse_sample_rate,
    pcm_seconds,
)
from captioning.engine import CaptionEngine, CaptionsUnavailable
from captioning.recognizer_pool import LentRecognizer, RecognizerKey, RecognizerPool

T = TypeVar("T")

MAX_ALTERNATIVES = 20
MAX_PHRASES = 1000
MAX_PHRASE_LENGTH = 200
# Vosk feeds Kaldi in steps of 0.2 s and looks for the end of an utterance only when a
# call ends, so slices that are whole numbers of steps, of which only the last one's
# answer is used, give exactly the answer of a single call.
VOSK_STEP_SECONDS = 0.2
SLICE_STEPS = 5  # 1 s of audio per pool call: 0.05-0.35 s of CPU
EMPTY_PARTIAL = '{\n  "partial" : ""\n}'  # as Vosk writes it
EMPTY_FINAL = '{\n  "text" : ""\n}'


class StreamConfigError(AudioFormatError):
    """Settings a recognizer cannot be made with; the message says which and why."""


class StreamLimitExceeded(Exception):
    """The stream broke its budget (too fast, or too long); the message says which."""


class StreamClosed(Exception):
    """The stream was used after `close()`."""


@dataclass(frozen=True)
class RealtimeBudget:
    """How much audio a stream may send, measured against the wall clock.

    max_speed: sustained audio seconds per wall-clock second (None: no speed limit);
    burst_seconds: audio allowed ahead of that pace (a reconnecting microphone flushes
    its buffer); max_audio_seconds: the most audio one stream may carry."""

    max_speed: float | None = 3.0
    burst_seconds: float = 10.0
    max_audio_seconds: float = 4 * 3600.0


LIVE_BUDGET = RealtimeBudget()


def check_budget(budget: RealtimeBudget, audio_seconds: float, elapsed: float) -> None:
    """Raise StreamLimitExceeded when `audio_seconds` of audio, sent over `elapsed` seconds
    of wall-clock time, is more than the budget allows."""
    if audio_seconds > budget.max_audio_seconds:
        hours = budget.max_audio_seconds / 3600
        raise StreamLimitExceeded(f"stream too long: at most {hours:g} hours of audio")
    speed = budget.max_speed
    if speed is not None and audio_seconds > budget.burst_seconds + speed * elapsed:
        raise StreamLimitExceeded(
            f"audio is arriving faster than real time (more than {speed:g}x); "
            "send it as it is spoken"
        )


class BudgetMeter:
    """A stream's audio measured against its budget as it arrives."""

    def __init__(self, budget: RealtimeBudget, clock: Callable[[], float] = time.monotonic) -> None:
        self.budget = budget
        self.clock = clock
        self.started: float | None = None
        self.audio_seconds = 0.0

    def spend(self, seconds: float) -> None:
        now = self.clock()
        if self.started is None:
            self.started = now
        check_budget(self.budget, self.audio_seconds + seconds, now - self.started)
        self.audio_seconds += seconds


# Clients of the vosk-server protocol stream files faster than real time; fairness comes
# from the one-call-per-stream slicing instead.
FILE_BUDGET = RealtimeBudget(max_speed=None)


def check_phrase_list(value: object) -> list[str] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(p, str) for p in value):
        raise StreamConfigError("phrase_list must be a list of phrases (strings)")
    if len(value) > MAX_PHRASES:
        raise StreamConfigError(f"phrase_list may hold at most {MAX_PHRASES} phrases")
    if any(len(p) > MAX_PHRASE_LENGTH for p in value):
        raise StreamConfigError(
            f"each phrase in phrase_list may have at most {MAX_PHRASE_LENGTH} characters"
        )
    return list(value)


def check_max_alternatives(value: object) -> int:
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise StreamConfigError("max_alternatives must be a whole number")
    if not 0 <= value <= MAX_ALTERNATIVES:
        raise StreamConfigError(f"max_alternatives must be from 0 to {MAX_ALTERNATIVES}")
    return value


class _Kaldi:
    """The resampler, and the recognizer borrowed from the engine's pool for the length
    of an utterance (captioning/recognizer_pool.py). Touched only by pool threads, one
    call at a time (the owning stream serializes them)."""

    def __init__(
        self,
        pool: RecognizerPool,
        key: RecognizerKey,
        make: Callable[[], Any],
        upsample: Callable[[], Upsampler] | None,
    ) -> None:
        self._pool = pool
        self._key = key
        self._make = make
        self._upsample = upsample
        self._upsampler = upsample() if upsample else None
        self._lent: LentRecognizer | None = None
        self._rate = key[0]
        # Samples this stream has fed to recognizers, and how far a borrowed recognizer's
        # word times are from the stream's (it heard other streams' audio before).
        self._heard = 0
        self._shift = 0.0

    def _ready(self) -> Any:
        if self._lent is None:
            self._lent = self._pool.lend(self._key, self._make)  # new: 0.1-0.2 s, so here
            self._shift = (self._heard - self._lent.heard_samples) / self._rate
        return self._lent.recognizer

    def _feed(self, pcm: bytes) -> bool:
        if self._upsampler is not None:
            pcm = self._upsampler.process(pcm)
        recognizer = self._ready()
        self._count(len(pcm) // SAMPLE_WIDTH)
        return bool(recognizer.AcceptWaveform(pcm))

    def _count(self, samples: int) -> None:
        self._heard += samples
        if self._lent is not None:
            self._lent.heard_samples += samples

    def feed(self, pcm: bytes) -> None:
        self._feed(pcm)  # only the last slice's answer counts (see VOSK_STEP_SECONDS)

    def answer(self, pcm: bytes) -> str:
        recognizer = self._ready()
        if self._feed(pcm):
            return self._shifted(str(recognizer.Result()))
        return str(recognizer.PartialResult())

    def final(self) -> str:
        """The utterance's last words; the recognizer goes back to the engine's pool
        (after a final it starts clean) and the stream may go on with another."""
        if self._upsample is not None:
            rest = self._upsampler.flush() if self._upsampler is not None else b""
            self._upsampler = self._upsample()
            if self._lent is not None and rest:
                self._count(len(rest) // SAMPLE_WIDTH)
                self._lent.recognizer.AcceptWaveform(rest)
        lent, self._lent = self._lent, None
        if lent is None:
            return EMPTY_FINAL  # nothing heard since the last final
        text = self._shifted(str(lent.recognizer.FinalResult()))
        self._pool.give_back(lent)  # or dropped here, and freed in this thread
        return text

    def release(self) -> None:
        self._lent = None
        self._upsampler = None

    def reset(self) -> str:
        # The recognizer is dropped, not given back: Vosk's own Reset() keeps the audio
        # it has buffered but not decoded, which then garbles the start of the next
        # utterance ("the quick brown fox" came out as "i'll prove that way brown fox").
        self._lent = None
        self._upsampler = self._upsample() if self._upsample else None
        return EMPTY_PARTIAL  # nothing in progress

    def _shifted(self, text: str) -> str:
        """Vosk's word times moved from the recognizer's own count to the stream's."""
        if abs(self._shift) < 1e-9 or '"result"' not in text:
            return text
        answer = json.loads(text)
        for result in (answer, *answer.get("alternatives", ())):
            for word in result.get("result", ()):
                for name in ("start", "end"):
                    if name in word:
                        # Vosk writes 6 decimals: never a time before the stream.
                        word[name] = max(0.0, round(word[name] + self._shift, 6))
        return json.dumps(answer, indent=2)


class RecognizerStream:
    """Audio in, Vosk's answers out. `accept` answers each frame with the utterance's
    result when Vosk has found its end, otherwise with the partial text so far."""

    def __init__(
        self,
        engine: CaptionEngine,
        sample_rate: object,
        words: bool = True,
        max_alternatives: object = 0,
        phrase_list: object = None,
        *,
        budget: RealtimeBudget | None = LIVE_BUDGET,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        engine.require_available()
        try:
            self.sample_rate = parse_sample_rate(sample_rate)
        except AudioFormatError as exc:
            raise StreamConfigError(str(exc)) from exc
        self.words = bool(words)
        self.max_alternatives = check_max_alternatives(max_alternatives)
        self.phrase_list = check_phrase_list(phrase_list)
        model_rate = engine.features.sample_rate
        if self.sample_rate > model_rate and not engine.features.allows_downsample:
            raise StreamConfigError(f"this server takes audio at {model_rate} Hz or below")
        upsample: Callable[[], Upsampler] | None = None
        kaldi_rate = self.sample_rate
        if self.sample_rate < model_rate and not engine.features.allows_upsample:
            rate = self.sample_rate
            upsample, kaldi_rate = (lambda: Upsampler(rate, model_rate)), model_rate
        grammar = json.dumps(self.phrase_list, ensure_ascii=False) if self.phrase_list else None

        words, alternatives = self.words, self.max_alternatives

        def make() -> Any:  # closes over values only, so dropping the stream frees it at once
            return engine.new_recognizer(
                kaldi_rate, words=words, max_alternatives=alternatives, grammar=grammar
            )

        self._engine = engine
        key: RecognizerKey = (float(kaldi_rate), words, alternatives, grammar)
        self._kaldi: _Kaldi | None = _Kaldi(engine.recognizers, key, make, upsample)
        # Whether this stream holds one of the engine's recognizer slots (from the first
        # audio of an utterance to its final).
        self._slot = False
        self._budget = budget
        self._clock = clock
        self._carry = PcmCarry()
        self._lock = asyncio.Lock()
        self._inflight: Future[Any] | None = None
        self._slice_bytes = SLICE_STEPS * int(VOSK_STEP_SECONDS * self.sample_rate) * SAMPLE_WIDTH
        self._started: float | None = None
        self.audio_seconds = 0.0

    @property
    def closed(self) -> bool:
        return self._kaldi is None

    # -- the answers, as Vosk's JSON text (the vosk-server protocol sends it unchanged) --

    async def accept_json(self, pcm: bytes) -> str:
        async with self._lock:
            kaldi = self._open()
            pcm = self._carry.take(pcm)
            self._spend(len(pcm))
            if not pcm and not self._slot:
                return EMPTY_PARTIAL
            await self._take_slot()
            size = self._slice_bytes
            while len(pcm) > size:
                await self._call(kaldi.feed, pcm[:size])
                pcm = pcm[size:]
            return await self._call(kaldi.answer, pcm)

    async def final_json(self) -> str:
        """The rest of the utterance, as final text; the stream may go on after it."""
        async with self._lock:
            kaldi = self._open()
            self._carry.clear()  # half a sample at the very end is not audio
            if not self._slot:
                return EMPTY_FINAL  # nothing heard since the last final
            try:
                return await self._call(kaldi.final)
            finally:
                self._give_slot()

    async def reset_json(self) -> str:
        """Forget the utterance in progress and start afresh."""
        async with self._lock:
            kaldi = self._open()
            self._carry.clear()
            try:
                return await self._call(kaldi.reset)
            finally:
                self._give_slot()

    # -- the same answers, parsed --

    async def accept(self, pcm: bytes) -> dict[str, Any]:
        return _parse(await self.accept_json(pcm))

    async def final(self) -> dict[str, Any]:
        return _parse(await self.final_json())

    async def reset(self) -> dict[str, Any]:
        return _parse(await self.reset_json())

    def close(self) -> None:
        """Free the recognizer. Safe to call more than once and from `finally` after a
        cancellation: a call still running in the pool holds its own reference, so the
        recognizer is freed when that call ends.

        Freeing a recognizer takes tens to hundreds of milliseconds (it grows with the
        audio it has heard), so it happens in the worker pool, not on the event loop."""
        kaldi, self._kaldi = self._kaldi, None
        self._give_slot()
        if kaldi is not None:
            # When the pool has shut down, it is freed here instead.
            with contextlib.suppress(RuntimeError):
                self._engine.pool.submit(kaldi.release)

    # -- internals --

    def _open(self) -> _Kaldi:
        if self._kaldi is None:
            raise StreamClosed("this recognizer stream is closed")
        return self._kaldi

    async def _take_slot(self) -> None:
        if not self._slot:
            self._engine.require_available()
            await self._engine.recognizers.take_slot()
            self._slot = True

    def _give_slot(self) -> None:
        if self._slot:
            self._slot = False
            self._engine.recognizers.give_slot()

    def _spend(self, byte_count: int) -> None:
        seconds = self.audio_seconds + pcm_seconds(byte_count, self.sample_rate)
        if self._budget is not None:
            if self._started is None:
                self._started = self._clock()
            check_budget(self._budget, seconds, self._clock() - self._started)
        self.audio_seconds = seconds

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        previous = self._inflight
        if previous is not None and not previous.done():
            # A call whose caller was cancelled may still be running: never run two at once.
            await asyncio.wait([asyncio.wrap_future(previous)])
        future = self._engine.submit(fn, *args)
        self._inflight = future
        try:
            return await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if future.cancelled() and task is not None and not task.cancelling():
                # The pool dropped the call (engine.close() at shutdown), not our caller.
                raise CaptionsUnavailable(
                    "captions unavailable: the server is shutting down"
                ) from None
            raise
        except CaptionsUnavailable:
            raise
        except Exception as exc:  # Vosk raises bare Exceptions ("Failed to process waveform")
            if self._engine.available:
                raise CaptionsUnavailable(f"captions failed: {exc}") from exc
            raise CaptionsUnavailable(self._engine.public_reason) from exc


def _parse(text: str) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(text)
    return parsed
