"""Kaldi recognizers for the people speaking now, not for every open microphone.

A stream holds a *slot* only while it is in an utterance: it takes one when speech starts
(`take_slot`, on the event loop) and gives it back after the utterance's final result
(`give_slot`). At most `max_in_use` slots are out at once; a speaker who starts while
they are all taken waits for one (queued in order, the wait logged and counted) rather
than being refused. The cap bounds recognition memory by the people speaking at once.

With the slot, the stream borrows a recognizer in the worker pool (`lend`): an idle one
made with the same settings if there is one, otherwise a new one (0.1-0.2 s of CPU). A
recognizer given back after `FinalResult` starts clean (Vosk makes a fresh decoder and
feature pipeline after a final: tests/captioning/test_recognizer_pool.py compares its
text with a fresh recognizer's); one given back in the middle of an utterance is freed.
Vosk's word times count all the audio a recognizer has heard, so each lent recognizer
carries `heard_samples`, and the stream shifts the times into its own.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

# A recognizer's settings: (sample rate, words, max_alternatives, grammar).
RecognizerKey = tuple[float, bool, int, str | None]


def default_max_in_use() -> int:
    """One real-time stream takes about 0.2 of a core (docs/captioning.md), so 2 cores
    recognize about 10 speakers at once; the cap allows twice that, for speakers who
    are rarely all in the middle of a sentence together."""
    return 10 * (os.cpu_count() or 2)


def default_max_idle() -> int:
    return (os.cpu_count() or 2) + 2


@dataclass
class LentRecognizer:
    key: RecognizerKey
    recognizer: Any
    # Samples this recognizer has heard since it was made, at the rate it was made for
    # (its word times count from there).
    heard_samples: int = 0


@dataclass
class SlotWaits:
    """How often and how long speakers waited for a recognizer (all slots were taken)."""

    count: int = 0
    total_seconds: float = 0.0
    longest_seconds: float = 0.0


class RecognizerPool:
    def __init__(self, max_in_use: int | None = None, max_idle: int | None = None) -> None:
        self.max_in_use = max(1, max_in_use if max_in_use is not None else default_max_in_use())
        self.max_idle = max(0, max_idle if max_idle is not None else default_max_idle())
        self.waits = SlotWaits()
        self._lock = threading.Lock()
        self._in_use = 0
        self._waiters: deque[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = deque()
        self._idle: dict[RecognizerKey, list[LentRecognizer]] = {}
        self._idle_count = 0

    @property
    def in_use(self) -> int:
        """Slots taken: streams in the middle of an utterance."""
        with self._lock:
            return self._in_use

    @property
    def idle(self) -> int:
        with self._lock:
            return self._idle_count

    # -- slots, on the event loop --

    async def take_slot(self) -> None:
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._in_use < self.max_in_use and not self._waiters:
                self._in_use += 1
                return
            waiter: asyncio.Future[None] = loop.create_future()
            self._waiters.append((loop, waiter))
            queued = len(self._waiters)
        started = time.monotonic()
        log.warning(
            "all %d recognizers are busy: a speaker waits (%d in line)", self.max_in_use, queued
        )
        try:
            await waiter
        except asyncio.CancelledError:
            with self._lock:
                if (loop, waiter) in self._waiters:
                    self._waiters.remove((loop, waiter))
                    raise
            if waiter.done() and not waiter.cancelled():
                self.give_slot()  # handed over as we were cancelled: pass it on
            raise
        waited = time.monotonic() - started
        with self._lock:
            self.waits.count += 1
            self.waits.total_seconds += waited
            self.waits.longest_seconds = max(self.waits.longest_seconds, waited)
        log.info("a speaker waited %.2fs for a recognizer", waited)

    def give_slot(self) -> None:
        """Safe from any thread. The slot goes to the first speaker waiting, if any."""
        with self._lock:
            if not self._waiters:
                self._in_use = max(0, self._in_use - 1)
                return
            loop, waiter = self._waiters.popleft()
        try:
            loop.call_soon_threadsafe(self._hand_over, waiter)
        except RuntimeError:  # that event loop has closed: try the next in line
            self.give_slot()

    def _hand_over(self, waiter: asyncio.Future[None]) -> None:
        if waiter.done():  # cancelled meanwhile
            self.give_slot()
        else:
            waiter.set_result(None)

    # -- recognizers, in the worker pool --

    def lend(self, key: RecognizerKey, make: Callable[[], Any]) -> LentRecognizer:
        with self._lock:
            idle = self._idle.get(key)
            if idle:
                self._idle_count -= 1
                return idle.pop()
        return LentRecognizer(key, make())

    def give_back(self, lent: LentRecognizer) -> bool:
        """Keep a recognizer that has just given its final result for the next speaker
        (True), unless enough are idle already; a dropped one is freed by the caller."""
        with self._lock:
            if self._idle_count >= self.max_idle:
                return False
            self._idle.setdefault(lent.key, []).append(lent)
            self._idle_count += 1
            return True

    def clear(self) -> None:
        with self._lock:
            self._idle.clear()
            self._idle_count = 0
