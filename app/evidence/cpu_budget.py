"""How much CPU time transcribing one recording may take.

Transcription runs one item at a time per process, so an item that costs far more than its
length should (a file that decodes into much more audio than it declared, or that the
decoder or recognizer chew on for ages) would hold every other recording behind it. Each
item gets a budget of `per_audio_second` x its duration (measured at upload) + a margin;
past it the item fails with a message and the queue moves on.

CPU time is measured with `time.thread_time` in the threads that do the work (the decoding
thread and the caption engine's pool threads), around each call, so that waiting for a
turn in the pool, or other streams' work on the same threads, is not counted."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from captioning.engine import CaptionEngine

T = TypeVar("T")


@dataclass(frozen=True)
class CpuBudget:
    """Vosk's small English model takes about 0.1-0.3 s of CPU per second of audio; the
    default allows several times that."""

    per_audio_second: float = 2.0
    margin_seconds: float = 60.0

    def allowed(self, duration_seconds: float) -> float:
        return self.per_audio_second * max(duration_seconds, 0.0) + self.margin_seconds


class CpuMeter:
    """CPU seconds spent by calls made through `run`, whichever threads ran them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.seconds = 0.0

    def run(self, fn: Callable[..., T], *args: Any) -> T:
        started = time.thread_time()
        try:
            return fn(*args)
        finally:
            spent = time.thread_time() - started
            with self._lock:
                self.seconds += spent


class _MeteredEngine:
    """The caption engine as one item's RecognizerStream sees it: every call the stream
    sends to the engine's pool (making the recognizer, feeding it, asking for results) is
    metered; everything else is the engine's own."""

    def __init__(self, engine: CaptionEngine, meter: CpuMeter) -> None:
        self._engine = engine
        self._meter = meter

    def submit(self, fn: Callable[..., T], *args: Any) -> Future[T]:
        return self._engine.submit(self._meter.run, fn, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._engine, name)


def metered_engine(engine: CaptionEngine, meter: CpuMeter) -> CaptionEngine:
    """`engine`, with the pool calls of streams made on it counted by `meter`."""
    return cast(CaptionEngine, _MeteredEngine(engine, meter))
