"""Organisers' changes to a transcript: correcting it (or typing one by hand after a
failure), and queueing a failed transcription again. The transcriber
(app/evidence/transcription.py) makes transcripts; these are the only other writes."""

from __future__ import annotations

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from app import audit
from app.db import utcnow
from app.evidence.models import EvidenceItem, TranscriptStatus
from app.evidence.searchtext import refresh_search_text
from app.models import User
from app.refusals import Refused

QUEUED, RUNNING = TranscriptStatus.QUEUED.value, TranscriptStatus.RUNNING.value
DONE, FAILED = TranscriptStatus.DONE.value, TranscriptStatus.FAILED.value

TRANSCRIPT_MAX = 100_000


class TranscriptRefused(Refused):
    """An edit or retry that cannot be done; the message says why, `status` the HTTP code."""


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
