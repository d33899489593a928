"""Transcribing sound evidence in the background: the queue and its worker.

The upload sets an audio item's `transcript_status` to 'queued' and wakes the
`Transcriber` (the app's lifespan starts one per process; they also look for queued items
every few seconds, so an item queued by another process is not missed). A process takes an
item with a conditional UPDATE ('queued' -> 'running'), so several processes share the work
without doing any item twice. The recognition itself (app/evidence/recognition.py) goes to
the live captions' engine one slice at a time; one item at a time per process, so that a
transcription never holds up live captions by more than one slice.

Progress (0..1) is written at most every `progress_interval` seconds; each write also
touches `updated_at`, which is how an item left 'running' by a process that died is told
from one still in progress: after `stale_after` without a write it is queued again.

Failures end in 'failed' with a message for people; organisers may queue the item again
(app/evidence/transcripts.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from datetime import timedelta

import anyio
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db import is_overloaded, utcnow
from app.evidence.cpu_budget import CpuBudget
from app.evidence.models import EvidenceItem, EvidenceKind, TranscriptStatus
from app.evidence.recognition import TranscriptionFailed, file_duration, recognize_file
from app.evidence.searchtext import refresh_search_text
from app.storage import Storage
from captioning.engine import CaptionEngine

log = logging.getLogger(__name__)

POLL_SECONDS = 5.0
PROGRESS_SECONDS = 2.0
STALE_AFTER = timedelta(minutes=5)
# How often a running worker looks for items abandoned by a process that died.
STALE_CHECK_SECONDS = 60.0

NO_FILE = "The sound file of this item is missing, so it could not be transcribed."
UNEXPECTED = "Something went wrong while transcribing this recording. An organiser can try again."

QUEUED, RUNNING = TranscriptStatus.QUEUED.value, TranscriptStatus.RUNNING.value
DONE, FAILED = TranscriptStatus.DONE.value, TranscriptStatus.FAILED.value


class Abandoned(Exception):
    """The item is no longer ours (deleted, or queued again meanwhile): stop quietly."""


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
            except Exception as exc:
                if is_overloaded(exc):  # a busy moment, not a fault
                    log.warning(
                        "the database is too busy for the transcriber; trying again shortly"
                    )
                else:
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
            key, stored_duration = item.storage_key, item.duration_seconds
        path = self.storage.path(key) if key else None
        if path is None or not await anyio.Path(path).is_file():
            raise TranscriptionFailed(NO_FILE)
        duration = stored_duration or await file_duration(path, item_id=item_id)
        last_write = self._clock()

        async def report(heard: float) -> None:
            nonlocal last_write
            if self._clock() - last_write >= self.progress_interval:
                await self._write_progress(item_id, min(0.99, heard / duration))
                last_write = self._clock()

        return await recognize_file(
            self.engine,
            path,
            duration=duration,
            cpu_budget=self.cpu_budget,
            on_heard=report,
            item_id=item_id,
        )

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
