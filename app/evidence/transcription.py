"""Transcribing sound evidence in the background, with the live captions' Vosk engine.

The upload sets an audio item's `transcript_status` to 'queued' and wakes the
`Transcriber` (the app's lifespan starts one per process; they also look for queued items
every few seconds, so an item queued by another process is not missed). A process takes an
item with a conditional UPDATE ('queued' -> 'running'), so several processes share the work
without doing any item twice. The file is decoded in a worker thread and recognized through
a `RecognizerStream`: its calls go to the engine's pool in 1 s slices, one at a time, so a
transcription never holds up live captions by more than one slice. One item at a time per
process, for the same reason.

Progress (0..1) is written at most every `progress_interval` seconds; each write also
touches `updated_at`, which is how an item left 'running' by a process that died is told
from one still in progress: after `stale_after` without a write it is queued again.

Each item has a CPU-time budget (app/evidence/cpu_budget.py): one that costs far more than
its length should fails, instead of holding the queue.

Failures end in 'failed' with a message for people; organisers may queue the item again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import anyio
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import audit
from app.db import utcnow
from app.evidence.audio.limits import AudioRejected, SampleRateRefused
from app.evidence.audio.pcm import PCM_BYTES_PER_SECOND, PCM_RATE, iter_pcm16k
from app.evidence.audio.probe import probe_audio
from app.evidence.cpu_budget import CpuBudget, CpuMeter, metered_engine
from app.evidence.models import EvidenceItem, EvidenceKind, TranscriptStatus
from app.evidence.searchtext import refresh_search_text
from app.models import User
from app.storage import Storage
from captioning.engine import CaptionEngine, CaptionsUnavailable
from captioning.stream import FILE_BUDGET, RecognizerStream, StreamConfigError, StreamLimitExceeded

log = logging.getLogger(__name__)

POLL_SECONDS = 5.0
PROGRESS_SECONDS = 2.0
STALE_AFTER = timedelta(minutes=5)
# How often a running worker looks for items abandoned by a process that died.
STALE_CHECK_SECONDS = 60.0

UNAVAILABLE = (
    "Captions are unavailable on this server right now, so this recording could not be "
    "transcribed. An organiser can try again later."
)
UNDECODABLE = "We could not decode this sound file, so it could not be transcribed."
NO_FILE = "The sound file of this item is missing, so it could not be transcribed."
TOO_LONG = "This recording is too long to transcribe (at most 3 hours)."
UNEXPECTED = "Something went wrong while transcribing this recording. An organiser can try again."
TOO_COSTLY = (
    "Transcribing this recording took far more computing time than a recording of its "
    "length should, so we stopped, to let other recordings through. The file may be damaged "
    "or unusually made: export it again as an ordinary recording (WAV or MP3) and upload that."
)

QUEUED, RUNNING = TranscriptStatus.QUEUED.value, TranscriptStatus.RUNNING.value
DONE, FAILED = TranscriptStatus.DONE.value, TranscriptStatus.FAILED.value

TRANSCRIPT_MAX = 100_000


class TranscriptionFailed(Exception):
    """Ends the item in 'failed' with this message for people."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Abandoned(Exception):
    """The item is no longer ours (deleted, or queued again meanwhile): stop quietly."""


def transcript_text(utterances: list[str]) -> str:
    """One utterance per line, as Vosk heard them (its endpoints fall in pauses)."""
    return "\n".join(u.strip() for u in utterances if u.strip())


class Transcriber:
    """The background worker of one process; started and stopped by the app's lifespan."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        engine: CaptionEngine,
        storage: Storage,
        *,
        poll_interval: float = POLL_SECONDS,
        progress_interval: float = PROGRESS_SECONDS,
        stale_after: timedelta = STALE_AFTER,
        cpu_budget: CpuBudget | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.engine = engine
        self.storage = storage
        self.cpu_budget = cpu_budget or CpuBudget()
        self.poll_interval = poll_interval
        self.progress_interval = progress_interval
        self.stale_after = stale_after
        self._clock = clock
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="transcriber")

    def wake(self) -> None:
        """Look for queued items now (the upload calls this after its commit)."""
        self._wake.set()

    async def stop(self) -> None:
        """Stop at once; an item being transcribed is queued again for whoever is next."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        last_stale_check = -STALE_CHECK_SECONDS
        while True:
            self._wake.clear()  # before looking, so a wake-up during the look is kept
            worked = False
            try:
                if self._clock() - last_stale_check >= STALE_CHECK_SECONDS:
                    await self.requeue_stale()
                    last_stale_check = self._clock()
                worked = await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("the transcriber failed; trying again shortly")
            if not worked:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.poll_interval)

    async def requeue_stale(self) -> int:
        """Queue again items left 'running' (by a process that died) for longer than
        `stale_after`. Returns how many."""
        cutoff = utcnow() - self.stale_after
        async with self.sessionmaker() as db:
            result = await db.execute(
                update(EvidenceItem)
                .where(
                    EvidenceItem.kind == EvidenceKind.AUDIO.value,
                    EvidenceItem.transcript_status == RUNNING,
                    EvidenceItem.updated_at < cutoff,
                )
                .values(transcript_status=QUEUED, transcript_progress=0.0, updated_at=utcnow())
                .execution_options(synchronize_session=False)
            )
            await db.commit()
        count = int(getattr(result, "rowcount", 0) or 0)
        if count:
            log.warning("queued %d abandoned transcription(s) again", count)
        return count

    async def run_once(self) -> bool:
        """Claim one queued item and transcribe it. False when there was none to claim."""
        item_id = await self._claim()
        if item_id is None:
            return False
        await self._transcribe(item_id)
        return True

    async def _claim(self) -> int | None:
        async with self.sessionmaker() as db:
            candidates = (
                await db.scalars(
                    select(EvidenceItem.id)
                    .where(
                        EvidenceItem.kind == EvidenceKind.AUDIO.value,
                        EvidenceItem.transcript_status == QUEUED,
                    )
                    .order_by(EvidenceItem.updated_at, EvidenceItem.id)
                    .limit(10)
                )
            ).all()
            for item_id in candidates:
                result = await db.execute(
                    update(EvidenceItem)
                    .where(EvidenceItem.id == item_id, EvidenceItem.transcript_status == QUEUED)
                    .values(
                        transcript_status=RUNNING,
                        transcript_progress=0.0,
                        transcript_error="",
                        updated_at=utcnow(),
                    )
                    .execution_options(synchronize_session=False)
                )
                await db.commit()
                if getattr(result, "rowcount", 0) == 1:
                    return item_id
        return None

    async def _transcribe(self, item_id: int) -> None:
        try:
            text = await self._recognize(item_id)
        except Abandoned:
            log.info("transcription of item %d abandoned: it changed meanwhile", item_id)
            return
        except TranscriptionFailed as exc:
            await self._finish(item_id, status=FAILED, error=exc.message)
            return
        except asyncio.CancelledError:
            # The server is stopping: hand the item back, so that the next process up
            # takes it at once. (After a crash, `requeue_stale` does this later.)
            with contextlib.suppress(Exception):
                await asyncio.shield(self._release(item_id))
            raise
        except Exception:
            log.exception("transcribing item %d failed", item_id)
            await self._finish(item_id, status=FAILED, error=UNEXPECTED)
            return
        await self._finish(item_id, status=DONE, transcript=text)

    async def _recognize(self, item_id: int) -> str:
        async with self.sessionmaker() as db:
            item = await db.get(EvidenceItem, item_id)
            if item is None:
                raise Abandoned()
            key, duration = item.storage_key, item.duration_seconds
        path = self.storage.path(key) if key else None
        if path is None or not await anyio.Path(path).is_file():
            raise TranscriptionFailed(NO_FILE)
        if not duration:
            try:
                duration = (await _in_thread(probe_audio, path)).duration_seconds
            except AudioRejected as exc:
                log.info("item %d could not be decoded: %s", item_id, exc)
                raise TranscriptionFailed(_undecodable(exc)) from None
        meter = CpuMeter()
        allowed_cpu = self.cpu_budget.allowed(duration)
        try:
            stream = RecognizerStream(
                metered_engine(self.engine, meter), PCM_RATE, words=True, budget=FILE_BUDGET
            )
        except (CaptionsUnavailable, StreamConfigError) as exc:
            log.warning("cannot transcribe item %d: %s", item_id, exc)
            raise TranscriptionFailed(UNAVAILABLE) from None
        utterances: list[str] = []
        chunks = iter_pcm16k(path)
        heard = 0.0
        last_write = self._clock()
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
                if self._clock() - last_write >= self.progress_interval:
                    await self._write_progress(item_id, min(0.99, heard / duration))
                    last_write = self._clock()
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

    async def _release(self, item_id: int) -> None:
        async with self.sessionmaker() as db:
            await db.execute(
                update(EvidenceItem)
                .where(EvidenceItem.id == item_id, EvidenceItem.transcript_status == RUNNING)
                .values(transcript_status=QUEUED, transcript_progress=0.0, updated_at=utcnow())
                .execution_options(synchronize_session=False)
            )
            await db.commit()

    async def _write_progress(self, item_id: int, progress: float) -> None:
        async with self.sessionmaker() as db:
            result = await db.execute(
                update(EvidenceItem)
                .where(EvidenceItem.id == item_id, EvidenceItem.transcript_status == RUNNING)
                .values(transcript_progress=round(progress, 3), updated_at=utcnow())
                .execution_options(synchronize_session=False)
            )
            await db.commit()
        if getattr(result, "rowcount", 0) != 1:
            raise Abandoned()

    async def _finish(
        self, item_id: int, *, status: str, transcript: str = "", error: str = ""
    ) -> None:
        """Store the outcome, unless the item stopped being ours meanwhile. The row is
        locked (on PostgreSQL) between the check and the write."""
        async with self.sessionmaker() as db:
            item = await db.scalar(
                select(EvidenceItem).where(EvidenceItem.id == item_id).with_for_update()
            )
            if item is None or item.transcript_status != RUNNING:
                return
            item.transcript_status = status
            item.transcript_error = error[:500]
            if status == DONE:
                item.transcript = transcript
                item.transcript_progress = 1.0
                item.transcript_edited_by_id = None
                item.transcript_edited_at = None
                refresh_search_text(item)
            await db.commit()


def _undecodable(exc: AudioRejected) -> str:
    return exc.message if isinstance(exc, SampleRateRefused) else UNDECODABLE


async def _in_thread(fn: Callable[..., Any], *args: Any) -> Any:
    return await anyio.to_thread.run_sync(fn, *args)


def _close(chunks: Iterator[bytes]) -> None:
    close = getattr(chunks, "close", None)
    if close is not None:
        close()


# --------------------------------------------------------------------------- organisers


class TranscriptRefused(Exception):
    """An edit or retry that cannot be done; the message says why, `status` the HTTP code."""

    def __init__(self, message: str, *, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def clean_transcript(text: str) -> str:
    """As typed, with the browser's CRLF line ends made plain and the ends trimmed (so
    excerpt positions count the same characters the page shows)."""
    return text.replace("\r\n", "\n").replace("\r", "\n").strip()


async def save_transcript(db: AsyncSession, *, item: EvidenceItem, actor: User, text: str) -> bool:
    """An organiser's correction (or, after a failure, a transcript typed by hand).
    Returns False when nothing changed."""
    if item.transcript_status in (QUEUED, RUNNING):
        raise TranscriptRefused(
            "The transcript is still being made. Wait until it is ready, then correct it.",
            status=409,
        )
    text = clean_transcript(text)
    if len(text) > TRANSCRIPT_MAX:
        raise TranscriptRefused(
            f"The transcript can be at most {TRANSCRIPT_MAX:,} characters; this one has "
            f"{len(text):,}."
        )
    if text == item.transcript and item.transcript_status == DONE:
        return False
    before = len(item.transcript)
    item.transcript = text
    item.transcript_status = DONE
    item.transcript_progress = 1.0
    item.transcript_error = ""
    item.transcript_edited_by_id = actor.id
    item.transcript_edited_at = utcnow()
    refresh_search_text(item)
    audit.record(
        db,
        actor=actor,
        action="evidence.transcript_edit",
        programme_id=item.programme_id,
        target=f"evidence:{item.id}",
        characters_before=before,
        characters_after=len(text),
    )
    await db.commit()
    return True


async def retry_transcript(db: AsyncSession, *, item: EvidenceItem, actor: User) -> None:
    """Queue a failed transcription again (the caller wakes the transcriber after this)."""
    result = await db.execute(
        update(EvidenceItem)
        .where(EvidenceItem.id == item.id, EvidenceItem.transcript_status == FAILED)
        .values(
            transcript_status=QUEUED,
            transcript_progress=0.0,
            transcript_error="",
            updated_at=utcnow(),
        )
        .execution_options(synchronize_session=False)
    )
    if getattr(result, "rowcount", 0) != 1:
        raise TranscriptRefused(
            "Only a transcription that failed can be tried again, and this one has not "
            "failed. Reload the page to see where it stands.",
            status=409,
        )
    audit.record(
        db,
        actor=actor,
        action="evidence.transcript_retry",
        programme_id=item.programme_id,
        target=f"evidence:{item.id}",
    )
    await db.commit()
    await db.refresh(item)
