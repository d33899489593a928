"""The Vosk model, loaded once per process and shared by every recognizer.

Every call into Vosk (loading the model, making a recognizer, feeding it audio, asking for
results) runs in the engine's worker pool, never on the event loop: the cffi calls release
the GIL, so the pool's threads recognize in parallel while the event loop stays responsive.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import weakref
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from captioning.recognizer_pool import RecognizerPool

log = logging.getLogger(__name__)

T = TypeVar("T")

# Files every Vosk model directory has, whichever way it was unpacked.
REQUIRED_MODEL_PARTS = ("am/final.mdl", "conf/mfcc.conf")
DEFAULT_MODEL_SAMPLE_RATE = 16000


class CaptionsUnavailable(Exception):
    """Captions cannot be made: no model, a broken model, or the server is stopping.

    The message is safe to show to clients (it never contains server paths)."""


@dataclass(frozen=True)
class FeatureConfig:
    """What the model's feature extractor expects, from its conf/mfcc.conf."""

    sample_rate: int = DEFAULT_MODEL_SAMPLE_RATE
    allows_downsample: bool = False
    allows_upsample: bool = False


def read_feature_config(model_path: Path) -> FeatureConfig:
    """Kaldi options such as `--sample-frequency=16000` and `--allow-downsample=true`."""
    options: dict[str, str] = {}
    try:
        lines = (model_path / "conf" / "mfcc.conf").read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return FeatureConfig()
    for line in lines:
        name, _, value = line.strip().partition("=")
        if name.startswith("--"):
            options[name[2:].replace("_", "-")] = value.strip().lower()
    try:
        rate = int(float(options.get("sample-frequency", DEFAULT_MODEL_SAMPLE_RATE)))
    except ValueError:
        rate = DEFAULT_MODEL_SAMPLE_RATE
    return FeatureConfig(
        sample_rate=rate,
        allows_downsample=options.get("allow-downsample") == "true",
        allows_upsample=options.get("allow-upsample") == "true",
    )


# How much lower than the event loop the recognizing threads run (a `nice` increment):
# when the cores are all busy, people's voice, chat and the page's requests go first, and
# recognition takes the CPU that is left (captions come later rather than everything else).
RECOGNIZER_NICENESS = 5


def _yield_to_the_event_loop() -> None:
    """Lower this pool thread's priority (Linux schedules threads one by one)."""
    with contextlib.suppress(AttributeError, OSError):
        thread = threading.get_native_id()
        niceness = os.getpriority(os.PRIO_PROCESS, thread) + RECOGNIZER_NICENESS
        os.setpriority(os.PRIO_PROCESS, thread, niceness)


def _default_pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(
        max_workers=os.cpu_count() or 2,
        thread_name_prefix="vosk",
        initializer=_yield_to_the_event_loop,
    )


@dataclass
class CaptionEngine:
    model_path: Path
    model: Any = None
    status: str = "not loaded"
    pool: ThreadPoolExecutor = field(default_factory=_default_pool)
    features: FeatureConfig = field(default_factory=FeatureConfig)
    # Recognizers for the people speaking now (captioning/recognizer_pool.py).
    recognizers: RecognizerPool = field(default_factory=RecognizerPool)
    # What clients are told when captions are unavailable (no server paths in it).
    public_reason: str = "captions unavailable: the speech model is not loaded"
    _closed: bool = field(default=False, init=False)
    _alive: int = field(default=0, init=False)
    _alive_lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    @property
    def available(self) -> bool:
        return self.model is not None and not self._closed

    @property
    def recognizers_alive(self) -> int:
        """Recognizers held by streams or not yet freed (each holds decoder memory until
        it is); not the idle ones the pool keeps for the next speaker."""
        with self._alive_lock:
            alive = self._alive
        return alive - self.recognizers.idle

    @property
    def recognizers_in_use(self) -> int:
        """Streams in the middle of an utterance, each holding a recognizer."""
        return self.recognizers.in_use

    async def load(self) -> None:
        """Load the model off the event loop; a missing or broken model is reported, not fatal."""
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self.pool, self.load_blocking)

    def load_blocking(self) -> None:
        """The same as `load`, for scripts and test fixtures that have no event loop."""
        missing = [p for p in REQUIRED_MODEL_PARTS if not (self.model_path / p).exists()]
        if not self.model_path.is_dir() or missing:
            self.status = f"captions unavailable: no Vosk model at {self.model_path}"
            self.public_reason = "captions unavailable: the speech model is not installed"
            log.warning("%s (scripts/fetch-model installs it)", self.status)
            return
        try:
            self.model = _load_model(self.model_path)
        except Exception as exc:  # Vosk raises a bare Exception for a corrupt model
            self.model = None
            self.status = f"captions unavailable: the Vosk model failed to load ({exc})"
            self.public_reason = "captions unavailable: the speech model failed to load"
            log.warning(self.status)
            return
        self.features = read_feature_config(self.model_path)
        self.status = "ok"

    def require_available(self) -> None:
        if self._closed:
            raise CaptionsUnavailable("captions unavailable: the server is shutting down")
        if self.model is None:
            raise CaptionsUnavailable(self.public_reason)

    def submit(self, fn: Callable[..., T], *args: Any) -> Future[T]:
        """Run `fn(*args)` in the worker pool. Callers keep at most one call pending per
        stream, so the pool's FIFO queue serves every stream in turn."""
        self.require_available()
        try:
            return self.pool.submit(fn, *args)
        except RuntimeError as exc:  # the pool has been shut down
            raise CaptionsUnavailable("captions unavailable: the server is shutting down") from exc

    def new_recognizer(
        self, sample_rate: float, *, words: bool, max_alternatives: int, grammar: str | None
    ) -> Any:
        """A KaldiRecognizer on the shared model. Call it in the pool (it takes 0.1-0.2 s)."""
        import vosk

        model = self.model
        if model is None:
            raise CaptionsUnavailable(self.public_reason)
        if grammar is None:
            recognizer = vosk.KaldiRecognizer(model, sample_rate)
        else:
            recognizer = vosk.KaldiRecognizer(model, sample_rate, grammar)
        recognizer.SetWords(words)
        recognizer.SetMaxAlternatives(max_alternatives)
        with self._alive_lock:
            self._alive += 1
        weakref.finalize(recognizer, self._recognizer_freed)
        return recognizer

    def _recognizer_freed(self) -> None:
        with self._alive_lock:
            self._alive -= 1

    def close(self) -> None:
        self._closed = True
        self.recognizers.clear()
        self.pool.shutdown(wait=False, cancel_futures=True)
        # Recognizers still alive keep their own reference to the model inside Vosk.
        self.model = None


def _load_model(path: Path) -> Any:
    import vosk

    vosk.SetLogLevel(-1)
    return vosk.Model(str(path))
