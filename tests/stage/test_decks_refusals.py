"""Decks that cannot be used are refused with a message a person understands, and leave
nothing behind: no rows, no stored files, no working folders. PowerPoint decks are
converted by the real LibreOffice."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from app.stage.models import Deck, Slide
from app.stage.urls import decks_url
from tests.factories import make_world
from tests.stage.deck_samples import many_pages_pdf, odd_page_pdf, slide_pdf, slide_pptx

IN_CI = os.environ.get("CI", "").lower() == "true"


def left_on_disk(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*")) if folder.exists() else []


async def refused(
    db: Any, browser_factory: Any, settings: Any, data: bytes, name: str, status: int
) -> str:
    """Upload as the host; the refusal's page text, after checking nothing was kept."""
    w = await make_world(db)
    host = browser_factory(w.host)
    response = await host.submit(
        decks_url(w.programme.id, w.session.id),
        {"title": "", "room": ""},
        files={"file": (name, data, "application/pdf")},
    )
    assert response.status_code == status, response.text[-2000:]
    assert 'class="error-summary" role="alert"' in response.text
    assert 'aria-invalid="true"' in response.text
    assert (await db.scalars(select(Deck))).all() == []
    assert (await db.scalars(select(Slide))).all() == []
    leftovers = [p for p in left_on_disk(settings.upload_dir) if p.is_file() or ".deck-" in p.name]
    assert leftovers == []
    return str(response.text)


async def test_text_file_named_pdf_is_refused(db, browser_factory, settings) -> None:  # type: ignore[no-untyped-def]
    text = await refused(
        db, browser_factory, settings, b"Minutes of the meeting\n" * 50, "slides.pdf", 415
    )
    assert "is not a PDF, PowerPoint (.pptx) or Impress (.odp) presentation" in text


async def test_zip_that_is_no_presentation_is_refused(db, browser_factory, settings) -> None:  # type: ignore[no-untyped-def]
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("[Content_Types].xml", "<Types>wordprocessingml</Types>")
        archive.writestr("word/document.xml", "<document/>")
    text = await refused(db, browser_factory, settings, buffer.getvalue(), "deck.pptx", 415)
    assert "whatever its name says" in text


async def test_password_protected_pdf_is_refused(db, browser_factory, settings) -> None:  # type: ignore[no-untyped-def]
    data = slide_pdf(2, picture=False, encrypt=True)
    text = await refused(db, browser_factory, settings, data, "locked.pdf", 422)
    assert "protected by a password" in text


async def test_truncated_pdf_is_refused(db, browser_factory, settings) -> None:  # type: ignore[no-untyped-def]
    data = slide_pdf(3, picture=True)
    text = await refused(db, browser_factory, settings, data[: len(data) // 2], "cut.pdf", 422)
    assert "damaged or is not a complete PDF" in text


async def test_too_many_pages_are_refused(db, browser_factory, settings) -> None:  # type: ignore[no-untyped-def]
    text = await refused(db, browser_factory, settings, many_pages_pdf(201), "long.pdf", 422)
    assert "This deck has 201 pages; a deck may have at most 200" in text


@pytest.mark.parametrize(
    ("width_mm", "height_mm", "says"),
    [
        (5000.0, 50.0, "Page 2 is 100 times longer than it is wide"),
        (6000.0, 6000.0, "Page 2 is 236 × 236 inches, larger than a slide can be"),
    ],
    ids=["a ribbon", "a billboard"],
)
async def test_absurd_page_sizes_are_refused(  # type: ignore[no-untyped-def]
    db, browser_factory, settings, width_mm, height_mm, says
) -> None:
    data = odd_page_pdf(width_mm, height_mm)
    text = await refused(db, browser_factory, settings, data, "odd.pdf", 422)
    assert says in text


async def test_too_large_a_file_is_refused(db, browser_factory, settings, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from app.stage import deck_files

    monkeypatch.setattr(deck_files, "DECK_MAX_BYTES", 100_000)
    text = await refused(db, browser_factory, settings, slide_pdf(3), "big.pdf", 413)
    assert "larger than the" in text


async def test_powerpoint_needs_libreoffice_or_a_pdf(  # type: ignore[no-untyped-def]
    db, browser_factory, settings, monkeypatch, tmp_path
) -> None:
    # A server without LibreOffice: nothing called soffice on its PATH.
    monkeypatch.setenv("PATH", str(tmp_path))
    text = await refused(db, browser_factory, settings, slide_pptx(), "talk.pptx", 415)
    assert (
        "PowerPoint and Impress files need LibreOffice on the server; please upload a PDF" in text
    )


@pytest.mark.skipif(
    shutil.which("soffice") is None and not IN_CI,
    reason="LibreOffice is not installed here (in CI it must be)",
)
async def test_powerpoint_deck_is_converted_by_libreoffice(  # type: ignore[no-untyped-def]
    db, browser_factory, settings
) -> None:
    w = await make_world(db)
    host = browser_factory(w.host)
    response = await host.submit(
        decks_url(w.programme.id, w.session.id),
        {"title": "", "room": ""},
        # The name claims a PDF; the content decides.
        files={"file": ("talk.pdf", slide_pptx(), "application/pdf")},
    )
    assert response.status_code == 303, response.text[-2000:]
    [deck] = (await db.scalars(select(Deck))).all()
    assert (deck.original_type, deck.original_name, deck.page_count) == ("pptx", "talk.pptx", 2)
    assert deck.pdf_key != deck.original_key
    slides = list(
        (
            await db.scalars(select(Slide).where(Slide.deck_id == deck.id).order_by(Slide.number))
        ).all()
    )
    assert slides[0].title == "Welcome to the webinar"
    assert "What we heard" in slides[1].text and "Access first (2)" in slides[1].text
    url = f"{decks_url(w.programme.id, w.session.id)}/{deck.id}"
    original = await host.get(f"{url}/original")
    assert original.headers["content-type"].startswith("application/vnd.openxmlformats")
    assert 'filename="talk.pptx"' in original.headers["content-disposition"]
    pdf = await host.get(f"{url}/pdf")
    assert pdf.headers["content-type"] == "application/pdf" and pdf.content.startswith(b"%PDF-")
    assert 'filename="talk.pdf"' in pdf.headers["content-disposition"]


def test_impress_and_powerpoint_are_told_apart_by_what_the_zip_holds(tmp_path: Path) -> None:
    import zipfile

    from app.stage.deck_files import sniff_zip

    odp = tmp_path / "talk.pdf"
    with zipfile.ZipFile(odp, "w") as archive:
        archive.writestr("mimetype", "application/vnd.oasis.opendocument.presentation")
        archive.writestr("content.xml", "<office:document-content/>")
    odt = tmp_path / "letter.odp"
    with zipfile.ZipFile(odt, "w") as archive:
        archive.writestr("mimetype", "application/vnd.oasis.opendocument.text")
    pptx = tmp_path / "talk.odp"
    pptx.write_bytes(slide_pptx())
    assert (sniff_zip(odp), sniff_zip(odt), sniff_zip(pptx)) == ("odp", None, "pptx")


async def test_a_conversion_that_hangs_is_ended_with_its_whole_process_group() -> None:
    """LibreOffice starts helper processes; on time out the whole group goes, not only the
    first process."""
    import time

    from app.stage.deck_files import _run_limited

    started = time.perf_counter()
    status, output, timed_out = await _run_limited(
        ["sh", "-c", "sleep 30 & echo $!; wait"], seconds=0.5
    )
    assert timed_out and time.perf_counter() - started < 5
    child = int(output.split()[0])
    time.sleep(0.1)
    # The grandchild is gone too (or a zombie waiting for whoever adopted it to reap it).
    stat = Path(f"/proc/{child}/stat")
    assert not stat.exists() or stat.read_text().rsplit(")", 1)[1].split()[0] == "Z"


def test_a_stopped_uploads_working_folder_is_swept_at_start_and_a_recent_one_kept(
    tmp_path: Path,
) -> None:
    """A process killed mid-upload leaves its working folder; the next start removes it, but
    not a folder another process may be using now."""
    from app.stage.decks import WORKSPACE_MAX_AGE_SECONDS, sweep_workspaces

    left, busy, stored = tmp_path / ".deck-left", tmp_path / ".deck-busy", tmp_path / "ab"
    for folder in (left, busy, stored):
        folder.mkdir()
        (folder / "page.webp").write_bytes(b"RIFF")
    old = time.time() - WORKSPACE_MAX_AGE_SECONDS - 60
    os.utime(left, (old, old))
    os.utime(stored, (old, old))
    assert sweep_workspaces(tmp_path) == 1
    assert not left.exists() and busy.exists() and stored.exists()
