"""Recognizing one sound file with the live captions' Vosk engine (for the transcriber in
app/evidence/transcription.py, which decides which file and stores the outcome).

The file is decoded in a worker thread and recognized through a `RecognizerStream`: its
calls go to the engine's pool in 1 s slices, one at a time, so a transcription never holds
up live captions by more than one slice.

Each file has a CPU-time budget (app/evidence/cpu_budget.py): one that costs far more than
its length should fails, instead of holding the queue.

Every failure is a `TranscriptionFailed` with a message for people."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import anyio

from app.evidence.audio.limits import AudioRejected, SampleRateRefused
from app.evidence.audio.pcm import PCM_BYTES_PER_SECOND, PCM_RATE, iter_pcm16k
from app.evidence.audio.probe import probe_audio
from app.evidence.cpu_budget import CpuBudget, CpuMeter, metered_engine
from captioning.engine import CaptionEngine, CaptionsUnavailable
from captioning.stream import FILE_BUDGET, RecognizerStream, StreamConfigError, StreamLimitExceeded

log = logging.getLogger(__name__)

UNAVAILABLE = (
    "Captions are unavailable on this server right now, so this recording could not be "
    "transcribed. An organiser can try again later."
)
UNDECODABLE = "We could not decode this sound file, so it could not be transcribed."
TOO_LONG = "This recording is too long to transcribe (at most 3 hours)."
TOO_COSTLY = (
    "Transcribing this recording took far more computing time than a recording of its "
    "length should, so we stopped, to let other recordings through. The file may be damaged "
    "or unusually made: export it again as an ordinary recording (WAV or MP3) and upload that."
)


class TranscriptionFailed(Exception):
    """Ends the item in 'failed' with this message for people."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def transcript_text(utterances: list[str]) -> str:
    """One utterance per line, as Vosk heard them (its endpoints fall in pauses)."""
    return "\n".join(u.strip() for u in utterances if u.strip())


async def file_duration(path: Path, *, item_id: int) -> float:
    """The recording's length, for an item stored without one."""
    try:
        return (await _in_thread(probe_audio, path)).duration_seconds
    except AudioRejected as exc:
        log.info("item %d could not be decoded: %s", item_id, exc)
        raise TranscriptionFailed(_undecodable(exc)) from None


async def recognize_file(
    engine: CaptionEngine,
    path: Path,
    *,
    duration: float,
    cpu_budget: CpuBudget,
    on_heard: Callable[[float], Awaitable[None]],
    item_id: int,
) -> str:
    """The file's transcript. `on_heard` is awaited after each slice with the seconds of
    sound recognized so far (the transcriber reports progress with it)."""
    meter = CpuMeter()
    allowed_cpu = cpu_budget.allowed(duration)
    try:
        stream = RecognizerStream(
            metered_engine(engine, meter), PCM_RATE, words=True, budget=FILE_BUDGET
        )
    except (CaptionsUnavailable, StreamConfigError) as exc:
        log.warning("cannot transcribe item %d: %s", item_id, exc)
        raise TranscriptionFailed(UNAVAILABLE) from None
    utterances: list[str] = []
    chunks = iter_pcm16k(path)
    heard = 0.0
    try:
        while (chunk := await _in_thread(meter.run, next, chunks, None)) is not None:
            answer = await stream.accept(chunk)
            if answer.get("text"):
                utterances.append(answer["text"])
            heard += len(chunk) / PCM_BYTES_PER_SECOND
            if meter.seconds > allowed_cpu:
                log.warning(
                    "transcribing item %d stopped: %.1f s of CPU for %.1f s of audio so far "
                    "(%.1f s allowed for its %.1f s)",
                    item_id,
                    meter.seconds,
                    heard,
                    allowed_cpu,
                    duration,
                )
                raise TranscriptionFailed(TOO_COSTLY)
            await on_heard(heard)
        answer = await stream.final()
        if answer.get("text"):
            utterances.append(answer["text"])
    except AudioRejected as exc:
        log.info("item %d could not be decoded: %s", item_id, exc)
        raise TranscriptionFailed(_undecodable(exc)) from None
    except CaptionsUnavailable as exc:
        log.warning("transcribing item %d stopped: %s", item_id, exc)
        raise TranscriptionFailed(UNAVAILABLE) from None
    except StreamLimitExceeded:
        raise TranscriptionFailed(TOO_LONG) from None
    finally:
        stream.close()
        await _in_thread(_close, chunks)
    return transcript_text(utterances)


def _undecodable(exc: AudioRejected) -> str:
    return exc.message if isinstance(exc, SampleRateRefused) else UNDECODABLE


async def _in_thread(fn: Callable[..., Any], *args: Any) -> Any:
    return await anyio.to_thread.run_sync(fn, *args)


def _close(chunks: Iterator[bytes]) -> None:
    close = getattr(chunks, "close", None)
    if close is not None:
        close()
