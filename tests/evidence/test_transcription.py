"""Transcribing sound evidence with the real Vosk model: every upload format, progress on
the page while it runs, recovery after a crash, failures people can read, and the
organisers' corrections (audited, and refused to everyone else)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import jiwer
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.db import utcnow
from app.evidence.cpu_budget import CpuBudget
from app.evidence.models import EvidenceItem
from app.evidence.recognition import TOO_COSTLY, UNAVAILABLE, UNDECODABLE
from app.evidence.routes.transcripts import NOT_AUDIO
from app.evidence.transcription import Transcriber
from app.models import AuditEntry, User
from app.state import AppState
from tests.audio_fixtures import (  # noqa: F401 - the fixtures
    SENTENCES,
    Speech,
    silence,
    speech_fixture,
    vosk_model_path_fixture,
)
from tests.evidence_files import wav
from tests.factories import World, make_world
from tests.sound_files import FORMATS, encode

# Word error rate of each clip below through each format, with espeak-ng's en-us voice on
# the small en-us model: 0.0 to 0.11 (measured when this was written). The bound leaves
# room for other espeak-ng versions.
WER_BOUND = 0.3
CLIP_SENTENCES = (SENTENCES[0], SENTENCES[1])
UPLOAD_FORMATS = ("wav", "mp3", "m4a", "ogg", "webm-browser")
BOTH_DATABASES = pytest.mark.parametrize(
    "database_url", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)


@pytest.fixture
def settings(settings: Settings, request: pytest.FixtureRequest) -> Settings:
    """The real model, for tests that ask for it (others run as a server without one)."""
    if "vosk_model_path" not in request.fixturenames:
        return settings
    model = request.getfixturevalue("vosk_model_path")
    return settings.model_copy(update={"vosk_model_path": model})


@pytest.fixture
async def world(db: AsyncSession) -> World:
    return await make_world(db)


@pytest.fixture
def state(app_and_state: tuple[Any, AppState]) -> AppState:
    return app_and_state[1]


def clip_pcm(speech: Speech, sentences: tuple[str, ...] = CLIP_SENTENCES) -> bytes:
    """Sentences with pauses between them (Vosk ends an utterance in a pause), 16 kHz."""
    parts = [silence(0.3)]
    for sentence in sentences:
        parts += [speech.pcm(sentence), silence(1.5)]
    return b"".join(parts)


async def stored_key(state: dict[str, Any], path: Path) -> str:
    async def chunks() -> AsyncIterator[bytes]:
        yield path.read_bytes()

    stored = await state.storage.save(chunks(), max_bytes=50 * 1024 * 1024)
    return str(stored.key)


async def add_sound(
    db: AsyncSession,
    state: dict[str, Any],
    world: World,
    path: Path | None,
    *,
    status: str = "queued",
    title: str = "Our discussion",
    **fields: Any,
) -> EvidenceItem:
    item = EvidenceItem(
        programme_id=world.programme.id,
        group_id=world.group_a.id,
        uploader_id=world.participant_a.id,
        kind="audio",
        title=title,
        filename=path.name if path else "",
        storage_key=await stored_key(state, path) if path else None,
        transcript_status=status,
        **fields,
    )
    db.add(item)
    await db.commit()
    return item


async def reload(db: AsyncSession, item_id: int) -> EvidenceItem:
    item = await db.get(EvidenceItem, item_id, populate_existing=True)
    assert item is not None
    return item


async def wait_until_finished(db: AsyncSession, item_id: int, timeout: float = 60) -> EvidenceItem:
    deadline = time.monotonic() + timeout
    while True:
        item = await reload(db, item_id)
        if item.transcript_status in ("done", "failed"):
            return item
        assert time.monotonic() < deadline, f"still {item.transcript_status} after {timeout} s"
        await asyncio.sleep(0.1)


def panel_url(world: World, item: EvidenceItem) -> str:
    return (
        f"/programmes/{world.programme.id}/groups/{item.group_id}/evidence/{item.id}"
        "/transcript/panel"
    )


def item_url(world: World, item: EvidenceItem) -> str:
    return f"/programmes/{world.programme.id}/groups/{item.group_id}/evidence/{item.id}"


def wer(reference: str, hypothesis: str) -> float:
    return float(jiwer.wer(reference, hypothesis))


# --------------------------------------------------------------------------- transcribing


async def test_sound_in_every_upload_format_is_transcribed(
    db: AsyncSession,
    state: dict[str, Any],
    world: World,
    speech: Speech,
    vosk_model_path: Path,
    tmp_path: Path,
) -> None:
    pcm = clip_pcm(speech)
    items = {}
    for kind in UPLOAD_FORMATS:
        path = encode(pcm, 16000, tmp_path / f"talk{FORMATS[kind].suffix}", kind)
        items[kind] = await add_sound(db, state, world, path, title=kind)
    state.transcriber.wake()
    reference = " ".join(CLIP_SENTENCES)
    for kind, queued in items.items():
        item = await wait_until_finished(db, queued.id)
        assert item.transcript_status == "done", (kind, item.transcript_error)
        assert item.transcript_progress == 1.0
        lines = item.transcript.splitlines()
        assert len(lines) == 2, (kind, item.transcript)  # one line per utterance
        assert wer(reference, " ".join(lines)) <= WER_BOUND, (kind, item.transcript)
        assert "quick brown fox" in item.transcript and "five minutes" in item.transcript
        # Search finds the recording by what was said.
        assert "five minutes" in item.search_text


async def test_the_page_shows_progress_while_a_recording_is_transcribed(
    db: AsyncSession,
    state: dict[str, Any],
    world: World,
    speech: Speech,
    vosk_model_path: Path,
    tmp_path: Path,
    browser_factory: Any,
) -> None:
    await state.transcriber.stop()  # this test's own transcriber does the work
    path = encode(clip_pcm(speech, tuple(SENTENCES[:3])), 16000, tmp_path / "t.ogg", "ogg")
    item = await add_sound(db, state, world, path)
    participant = browser_factory(world.participant_a)
    panels: list[str] = []

    class Watched(Transcriber):
        async def _write_progress(self, item_id: int, progress: float) -> None:
            await super()._write_progress(item_id, progress)
            response = await participant.get(panel_url(world, item))
            assert response.status_code == 200
            panels.append(response.text)

    queued = await participant.get(panel_url(world, item))
    assert "Waiting to be transcribed" in queued.text
    assert 'hx-trigger="every 2s"' in queued.text

    transcriber = Watched(state.sessionmaker, state.captions, state.storage, progress_interval=0.0)
    assert await transcriber.run_once()

    assert len(panels) >= 5  # about one a second of sound
    middle = panels[len(panels) // 2]
    assert "<progress" in middle and 'hx-trigger="every 2s"' in middle
    percent = int(middle.split("Transcribing the recording: ")[1].split("&nbsp;%")[0])
    assert 10 <= percent <= 90
    assert f'value="{percent}"' in middle

    done = await participant.get(panel_url(world, item))
    assert "hx-trigger" not in done.text and "<progress" not in done.text
    assert 'data-excerpt-source="transcript"' in done.text
    assert "quick brown fox" in done.text
    assert "<textarea" not in done.text  # participants read; organisers correct


@BOTH_DATABASES
async def test_an_item_left_running_by_a_crash_is_transcribed_after_a_restart(
    db: AsyncSession,
    state: dict[str, Any],
    world: World,
    speech: Speech,
    vosk_model_path: Path,
    tmp_path: Path,
) -> None:
    await state.transcriber.stop()
    path = encode(clip_pcm(speech, (SENTENCES[0],)), 16000, tmp_path / "t.webm", "webm-browser")
    abandoned = await add_sound(
        db,
        state,
        world,
        path,
        status="running",
        transcript_progress=0.4,
        updated_at=utcnow() - timedelta(minutes=10),
    )
    busy = await add_sound(db, state, world, path, status="running", transcript_progress=0.4)

    restarted = Transcriber(state.sessionmaker, state.captions, state.storage)
    restarted.start()
    try:
        item = await wait_until_finished(db, abandoned.id)
    finally:
        await restarted.stop()
    assert item.transcript_status == "done"
    assert wer(SENTENCES[0], item.transcript) <= WER_BOUND, item.transcript
    # Another process is still at work on this one: it is left alone.
    assert (await reload(db, busy.id)).transcript_status == "running"


async def test_a_transcription_stopped_with_the_server_is_handed_back(
    db: AsyncSession,
    state: dict[str, Any],
    world: World,
    speech: Speech,
    vosk_model_path: Path,
    tmp_path: Path,
) -> None:
    await state.transcriber.stop()
    path = encode(clip_pcm(speech), 16000, tmp_path / "t.mp3", "mp3")
    item = await add_sound(db, state, world, path)
    halfway = asyncio.Event()

    class Stopping(Transcriber):
        async def _write_progress(self, item_id: int, progress: float) -> None:
            await super()._write_progress(item_id, progress)
            halfway.set()
            await asyncio.Event().wait()  # the server stops while we are here

    stopping = Stopping(state.sessionmaker, state.captions, state.storage, progress_interval=0.0)
    stopping.start()
    await asyncio.wait_for(halfway.wait(), 30)
    assert (await reload(db, item.id)).transcript_status == "running"
    await stopping.stop()
    assert (await reload(db, item.id)).transcript_status == "queued"


async def test_a_corrupt_file_fails_with_a_message_and_organisers_can_try_again(
    db: AsyncSession,
    state: dict[str, Any],
    world: World,
    vosk_model_path: Path,
    tmp_path: Path,
    browser_factory: Any,
) -> None:
    path = tmp_path / "broken.mp3"
    path.write_bytes(b"ID3\x03\x00\x00\x00\x00\x00\x00" + b"\x00garbage" * 4000)
    item = await add_sound(db, state, world, path)
    state.transcriber.wake()
    failed = await wait_until_finished(db, item.id)
    assert failed.transcript_status == "failed"
    assert failed.transcript_error == UNDECODABLE

    facilitator = browser_factory(world.facilitator_a)
    participant = browser_factory(world.participant_a)
    seen = await participant.get(panel_url(world, item))
    assert "We could not decode this sound file" in seen.text
    assert "Try again" not in seen.text and "hx-trigger" not in seen.text
    panel = await facilitator.get(panel_url(world, item))
    assert "Try again" in panel.text

    retry_url = item_url(world, item) + "/transcript/retry"
    assert (await participant.submit(retry_url)).status_code == 403
    response = await facilitator.submit(retry_url)
    assert response.status_code == 303
    assert response.headers["location"].endswith(f"?transcript=requeued#transcript-{item.id}")
    again = await wait_until_finished(db, item.id)
    assert again.transcript_status == "failed"
    entries = (await db.scalars(select(AuditEntry.action))).all()
    assert "evidence.transcript_retry" in entries

    # Only a failed transcription can be tried again.
    again.transcript_status = "done"
    await db.commit()
    refused = await facilitator.submit(retry_url)
    assert refused.status_code == 409
    assert "Only a transcription that failed" in refused.text


async def test_a_recording_over_its_cpu_budget_fails_and_the_queue_moves_on(
    db: AsyncSession,
    state: dict[str, Any],
    world: World,
    speech: Speech,
    vosk_model_path: Path,
    tmp_path: Path,
) -> None:
    await state.transcriber.stop()
    pcm = clip_pcm(speech)
    seconds = len(pcm) / 32000
    path = encode(pcm, 16000, tmp_path / "talk.wav", "wav")
    # As if its length had been misjudged at upload: several seconds of speech cost far more
    # CPU than "0.1 s" of sound may take.
    costly = await add_sound(db, state, world, path, title="costly", duration_seconds=0.1)
    normal = await add_sound(db, state, world, path, title="normal", duration_seconds=seconds)
    transcriber = Transcriber(
        state.sessionmaker,
        state.captions,
        state.storage,
        cpu_budget=CpuBudget(per_audio_second=1.0, margin_seconds=0.3),
    )
    assert await transcriber.run_once()
    failed = await reload(db, costly.id)
    assert (failed.transcript_status, failed.transcript_error) == ("failed", TOO_COSTLY)
    assert failed.transcript == ""
    assert await transcriber.run_once()
    done = await reload(db, normal.id)
    assert done.transcript_status == "done", done.transcript_error
    assert "quick brown fox" in done.transcript


async def test_a_queued_recording_declaring_1_hz_fails_at_once(
    db: AsyncSession,
    state: dict[str, Any],
    world: World,
    speech: Speech,
    vosk_model_path: Path,
    tmp_path: Path,
) -> None:
    """Queued before uploads checked the sample rate: 20 KB "lasting" 10,000 s."""
    await state.transcriber.stop()
    odd = tmp_path / "odd.wav"
    odd.write_bytes(wav(rate=1, data_bytes=20_000))
    absurd = await add_sound(db, state, world, odd, duration_seconds=10_000.0)
    talk = encode(clip_pcm(speech, (SENTENCES[0],)), 16000, tmp_path / "talk.ogg", "ogg")
    normal = await add_sound(db, state, world, talk)
    transcriber = Transcriber(state.sessionmaker, state.captions, state.storage)
    assert await asyncio.wait_for(transcriber.run_once(), 10)
    failed = await reload(db, absurd.id)
    assert failed.transcript_status == "failed"
    assert "declares a sample rate of 1 Hz" in failed.transcript_error
    assert await transcriber.run_once()
    assert (await reload(db, normal.id)).transcript_status == "done"


# --------------------------------------------------------------------------- without a model


async def test_without_a_model_items_fail_with_a_message_found_by_polling(
    db: AsyncSession, state: dict[str, Any], world: World, tmp_path: Path
) -> None:
    await state.transcriber.stop()
    polling = Transcriber(state.sessionmaker, state.captions, state.storage, poll_interval=0.1)
    polling.start()
    try:
        path = encode(silence(1.0), 16000, tmp_path / "quiet.wav", "wav")
        item = await add_sound(db, state, world, path)  # nobody calls wake()
        failed = await wait_until_finished(db, item.id, timeout=10)
    finally:
        await polling.stop()
    assert failed.transcript_status == "failed"
    assert failed.transcript_error == UNAVAILABLE


@BOTH_DATABASES
async def test_each_item_is_claimed_by_one_transcriber_only(
    db: AsyncSession, state: dict[str, Any], world: World, tmp_path: Path
) -> None:
    await state.transcriber.stop()
    path = encode(silence(1.0), 16000, tmp_path / "quiet.wav", "wav")
    item = await add_sound(db, state, world, path)
    workers = [Transcriber(state.sessionmaker, state.captions, state.storage) for _ in range(3)]
    claimed = await asyncio.gather(*(w.run_once() for w in workers))
    assert sorted(claimed) == [False, False, True]
    assert (await reload(db, item.id)).transcript_status == "failed"
    assert not await workers[0].run_once()


# --------------------------------------------------------------------------- corrections


async def finished_item(db: AsyncSession, state: dict[str, Any], world: World) -> EvidenceItem:
    item = await add_sound(
        db,
        state,
        world,
        None,
        status="done",
        transcript="the quick brown fox\njumps over the lazy dog",
        transcript_progress=1.0,
    )
    return item


@BOTH_DATABASES
async def test_the_group_facilitator_corrects_the_transcript_and_it_is_audited(
    db: AsyncSession, state: dict[str, Any], world: World, browser_factory: Any
) -> None:
    item = await finished_item(db, state, world)
    facilitator = browser_factory(world.facilitator_a)
    panel = await facilitator.get(panel_url(world, item))
    assert "<textarea" in panel.text and "Correct the transcript" in panel.text

    url = item_url(world, item) + "/transcript"
    response = await facilitator.submit(
        url, {"transcript": "the quick brown fox\r\njumps over the lazy cat\r\n"}
    )
    assert response.status_code == 303
    assert (
        response.headers["location"]
        == f"{item_url(world, item)}?transcript=saved#transcript-{item.id}"
    )
    saved = await reload(db, item.id)
    assert saved.transcript == "the quick brown fox\njumps over the lazy cat"
    assert saved.transcript_edited_by_id == world.facilitator_a.id
    assert saved.transcript_edited_at is not None
    assert "lazy cat" in saved.search_text
    entry = await db.scalar(
        select(AuditEntry).where(AuditEntry.action == "evidence.transcript_edit")
    )
    assert entry is not None and entry.actor_id == world.facilitator_a.id
    assert entry.target == f"evidence:{item.id}"

    shown = await facilitator.get(panel_url(world, item) + "?transcript=saved")
    assert "The transcript has been saved." in shown.text
    assert f"Corrected by {world.facilitator_a.display_name}" in shown.text

    host = browser_factory(world.host)
    assert (await host.submit(url, {"transcript": "hosts may correct too"})).status_code == 303


@pytest.mark.parametrize(
    ("who", "status"),
    [("participant_a", 403), ("facilitator_b", 403), ("participant_b", 403), ("outsider", 404)],
)
async def test_nobody_else_may_correct_a_transcript(
    db: AsyncSession,
    state: dict[str, Any],
    world: World,
    browser_factory: Any,
    who: str,
    status: int,
) -> None:
    item = await finished_item(db, state, world)
    person: User = getattr(world, who)
    response = await browser_factory(person).submit(
        item_url(world, item) + "/transcript", {"transcript": "rewritten"}
    )
    assert response.status_code == status
    assert (await reload(db, item.id)).transcript.startswith("the quick brown fox")


async def test_a_correction_too_long_or_too_early_is_refused_with_a_reason(
    db: AsyncSession, state: dict[str, Any], world: World, browser_factory: Any
) -> None:
    item = await finished_item(db, state, world)
    facilitator = browser_factory(world.facilitator_a)
    url = item_url(world, item) + "/transcript"
    response = await facilitator.submit(url, {"transcript": "word " * 20001})
    assert response.status_code == 400
    assert "at most 100,000 characters" in response.text
    assert 'aria-invalid="true"' in response.text

    item.transcript_status = "running"
    await db.commit()
    response = await facilitator.submit(url, {"transcript": "too early"})
    assert response.status_code == 409
    assert "still being made" in response.text
    assert (await reload(db, item.id)).transcript.startswith("the quick brown fox")


async def test_only_sound_items_have_a_transcript(
    db: AsyncSession, state: dict[str, Any], world: World, browser_factory: Any
) -> None:
    note = EvidenceItem(
        programme_id=world.programme.id,
        group_id=world.group_a.id,
        uploader_id=world.participant_a.id,
        kind="note",
        title="A note",
        note_markdown="Some words",
    )
    db.add(note)
    await db.commit()
    response = await browser_factory(world.facilitator_a).get(panel_url(world, note))
    assert response.status_code == 404
    assert NOT_AUDIO in response.text


async def test_a_participant_reads_the_transcript_of_their_group_only(
    db: AsyncSession, state: dict[str, Any], world: World, browser_factory: Any
) -> None:
    item = await finished_item(db, state, world)
    mine = await browser_factory(world.participant_a).get(panel_url(world, item))
    assert mine.status_code == 200
    assert f'id="transcript-text-{item.id}" data-excerpt-source="transcript"' in mine.text
    assert ">the quick brown fox\njumps over the lazy dog</div>" in mine.text
    other = await browser_factory(world.participant_b).get(panel_url(world, item))
    assert other.status_code == 403
    assert "the quick brown fox" not in other.text
