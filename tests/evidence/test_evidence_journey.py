"""The evidence path as people live it: a participant sends a photo (described), a voice
note and a typed note; the voice note is transcribed by the real Vosk model; a facilitator
codes two excerpts into themes; the host reads the theme overview across groups and
exports it; a member of another group is refused every one of those items."""

from __future__ import annotations

import asyncio
import csv
import io
import re
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.evidence.models import Coding, EvidenceItem, Theme
from tests import evidence_files as ef
from tests.audio_fixtures import (  # noqa: F401 - the fixtures
    Speech,
    silence,
    speech_fixture,
    vosk_model_path_fixture,
)
from tests.factories import make_world
from tests.sound_files import encode

SAID = "the quick brown fox jumps over the lazy dog"


@pytest.fixture
def settings(settings: Settings, vosk_model_path: Path) -> Settings:
    return settings.model_copy(update={"vosk_model_path": vosk_model_path})


async def latest(db: AsyncSession, **where: Any) -> EvidenceItem:
    query = select(EvidenceItem).filter_by(**where).order_by(EvidenceItem.id.desc())
    item = await db.scalar(query.limit(1).execution_options(populate_existing=True))
    assert item is not None
    return item


async def test_from_upload_to_the_theme_overview(
    db: AsyncSession, browser_factory: Any, speech: Speech, tmp_path: Path
) -> None:
    w = await make_world(db)
    pid, gid = w.programme.id, w.group_a.id
    board = f"/programmes/{pid}/groups/{gid}/evidence"
    priya = browser_factory(w.participant_a)

    # 1. A photo of handwritten notes, described.
    photo = await priya.submit(
        f"{board}/upload",
        {
            "title": "Our wall",
            "alt_text": "Handwritten notes: nobody asks us first",
            "session_id": str(w.session.id),
        },
        files=[("files", ("IMG_0001.jpg", ef.jpeg_with_location(), "image/jpeg"))],
    )
    assert photo.status_code == 303, photo.text
    image = await latest(db, kind="image")

    # 2. A voice note as a browser records it (WebM/Opus), from her trio.
    pcm = silence(0.3) + speech.pcm(SAID) + silence(1.5)
    recording = encode(pcm, 16000, tmp_path / "voice-note.webm", "webm-browser")
    voice = await priya.submit(
        f"{board}/upload",
        {"title": "What my trio said", "from_trio": "1", "session_id": str(w.session.id)},
        files=[("files", ("voice-note.webm", recording.read_bytes(), "audio/webm"))],
    )
    assert voice.status_code == 303, voice.text
    sound = await latest(db, kind="audio")
    assert sound.from_trio and sound.transcript_status in ("queued", "running", "done")

    # 3. A typed note.
    note = await priya.submit(
        f"{board}/notes",
        {
            "title": "Being heard",
            "markdown": "Junior staff **rarely** speak first in meetings.",
            "session_id": str(w.session.id),
        },
    )
    assert note.status_code == 303, note.text
    typed = await latest(db, kind="note")

    # The voice note's transcript appears (the page polls this panel while it works).
    deadline = time.monotonic() + 60
    while (sound := await latest(db, kind="audio")).transcript_status != "done":
        assert sound.transcript_status != "failed", sound.transcript_error
        assert time.monotonic() < deadline, "the transcript did not appear within 60 s"
        await asyncio.sleep(0.2)
    assert "brown fox" in sound.transcript
    panel = await priya.get(f"{board}/{sound.id}/transcript/panel")
    assert "brown fox" in panel.text
    page = await priya.get(f"{board}/{sound.id}")
    assert "<audio" in page.text and "brown fox" in page.text

    # 4. The facilitator codes two excerpts: one of the note, one of the transcript.
    fola = browser_factory(w.facilitator_a)
    for name in ("Power and hierarchy", "Being listened to"):
        created = await fola.submit(f"/programmes/{pid}/themes", {"name": name})
        assert created.status_code == 303, created.text
    power, listened = (await db.scalars(select(Theme).order_by(Theme.id))).all()
    first = await fola.submit(
        f"{board}/{typed.id}/codings",
        {
            "theme_ids": str(power.id),
            "source": "note",
            "excerpt": "Junior staff rarely speak",
            "memo": "Hierarchy silences people",
        },
    )
    assert first.status_code == 303 and "coding_error" not in first.headers["location"]
    second = await fola.submit(
        f"{board}/{sound.id}/codings",
        {
            "theme_ids": [str(power.id), str(listened.id)],
            "source": "transcript",
            "excerpt": "brown fox",
        },
    )
    assert second.status_code == 303 and "coding_error" not in second.headers["location"]
    codings = (await db.scalars(select(Coding).order_by(Coding.id))).all()
    assert [(c.item_id, c.excerpt, c.coder_id) for c in codings] == [
        (typed.id, "Junior staff **rarely** speak", w.facilitator_a.id),
        (sound.id, "brown fox", w.facilitator_a.id),
        (sound.id, "brown fox", w.facilitator_a.id),
    ]

    # 5. The host sees the overview across groups and exports the CSV.
    host = browser_factory(w.host)
    overview = await host.get(f"/programmes/{pid}/themes/overview")
    assert overview.status_code == 200
    assert "Power and hierarchy" in overview.text and w.group_b.name in overview.text
    assert "brown fox" in overview.text and f"{board}/{typed.id}" in overview.text
    trio_only = await host.get(f"/programmes/{pid}/themes/overview", params={"trio": "yes"})
    assert "brown fox" in trio_only.text and "Junior staff" not in trio_only.text
    exported = await host.get(f"/programmes/{pid}/themes/codings.csv")
    assert exported.status_code == 200 and exported.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert len(rows) == 3
    assert {r["excerpt"] for r in rows} == {"Junior staff **rarely** speak", "brown fox"}
    assert all(r["group"] == w.group_a.name for r in rows)
    assert any(w.facilitator_a.display_name in r["coder"] for r in rows)

    # 6. A member of another group is refused every one of those items.
    bob = browser_factory(w.participant_b)
    urls = [board, f"{board}/export.zip"]
    for item in (image, sound, typed):
        urls += [f"{board}/{item.id}", f"{board}/{item.id}/file"]
    urls += [f"{board}/{image.id}/thumbnail", f"{board}/{sound.id}/transcript/panel"]
    for url in urls:
        response = await bob.get(url)
        assert response.status_code in (403, 404), (url, response.status_code)
        assert "brown fox" not in response.text and "Junior staff" not in response.text
    for url in (f"/programmes/{pid}/themes/overview", f"/programmes/{pid}/themes/codings.csv"):
        assert (await bob.get(url)).status_code == 403
    # Nor can they reach them through their own group's board or search.
    own = await bob.get(f"/programmes/{pid}/groups/{w.group_b.id}/evidence", params={"q": "fox"})
    assert own.status_code == 200 and "brown fox" not in own.text
    assert not re.search(r"Our wall|What my trio said", own.text)
    # Their facilitator codes nothing of group A's and sees none of it in the overview.
    other_facilitator = browser_factory(w.facilitator_b)
    theirs = await other_facilitator.get(f"/programmes/{pid}/themes/overview")
    assert theirs.status_code == 200 and "brown fox" not in theirs.text
    assert (await other_facilitator.get(f"{board}/{sound.id}")).status_code == 403
