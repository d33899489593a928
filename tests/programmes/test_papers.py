"""Session papers: uploads checked by content and size, safe downloads, deletion."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from urllib.parse import quote

from sqlalchemy import select

from app.models import AuditEntry, Paper
from app.programmes.papers import PAPER_MAX_BYTES, content_disposition, safe_filename
from tests.factories import make_world

PDF = b"%PDF-1.7\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"


def files_in(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []


def office_file(member: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr(member, "<document/>")
    return buffer.getvalue()


def papers_url(w) -> str:  # type: ignore[no-untyped-def]
    return f"/programmes/{w.programme.id}/sessions/{w.session.id}/papers"


async def _papers(db) -> list[Paper]:  # type: ignore[no-untyped-def]
    rows = await db.scalars(select(Paper).execution_options(populate_existing=True))
    return list(rows.all())


async def test_host_uploads_pdf_and_member_downloads_it_safely(
    db, browser_factory, settings
) -> None:
    w = await make_world(db)
    host = browser_factory(w.host)
    response = await host.submit(
        papers_url(w),
        {"kind": "pre_reading", "paper_title": "Reading for week 1"},
        files={"file": ("../../Résumé \u202efdp.exe.pdf", PDF, "application/pdf")},
    )
    assert response.status_code == 303, response.text
    [paper] = await _papers(db)
    # No folders, no control or direction-override characters in the stored name.
    assert paper.filename == "Résumé fdp.exe.pdf"
    assert paper.content_type == "application/pdf"
    assert paper.size_bytes == len(PDF)
    assert len(files_in(settings.upload_dir)) == 1
    assert await db.scalar(select(AuditEntry).where(AuditEntry.action == "paper.upload"))

    participant = browser_factory(w.participant_a)
    lobby = await participant.get(f"/programmes/{w.programme.id}/sessions/{w.session.id}")
    assert "Reading for week 1" in lobby.text
    assert f"{len(PDF)} Bytes" in lobby.text  # the size, as Jinja's filesizeformat writes it
    assert "Add a file" not in lobby.text

    download = await participant.get(f"{papers_url(w)}/{paper.id}")
    assert download.status_code == 200
    assert download.content == PDF
    assert download.headers["content-type"] == "application/pdf"
    assert download.headers["x-content-type-options"] == "nosniff"
    disposition = download.headers["content-disposition"]
    assert disposition.startswith("attachment;")
    assert "filename*=UTF-8''" + quote("Résumé fdp.exe.pdf", safe="") in disposition
    assert 'filename="R_sum_ fdp.exe.pdf"' in disposition


async def test_pdf_that_is_really_html_is_refused_and_nothing_is_kept(
    db, browser_factory, settings
) -> None:
    w = await make_world(db)
    host = browser_factory(w.host)
    html = b"<!doctype html><script>alert(document.cookie)</script>"
    response = await host.submit(
        papers_url(w),
        {"kind": "pre_reading"},
        files={"file": ("paper.pdf", html, "application/pdf")},
    )
    assert response.status_code == 415
    assert "does not contain what its name says" in response.text
    assert "it is not a PDF file" in response.text
    assert files_in(settings.upload_dir) == []
    assert await _papers(db) == []


async def test_office_file_must_have_the_right_inside(db, browser_factory, settings) -> None:
    w = await make_world(db)
    host = browser_factory(w.host)
    # A ZIP that is not a Word document.
    fake = await host.submit(
        papers_url(w), {"kind": "pre_reading"}, files={"file": ("notes.docx", office_file("x.txt"))}
    )
    assert fake.status_code == 415
    assert files_in(settings.upload_dir) == []
    real = await host.submit(
        papers_url(w),
        {"kind": "pre_reading"},
        files={"file": ("notes.docx", office_file("word/document.xml"))},
    )
    assert real.status_code == 303
    [paper] = await _papers(db)
    assert paper.content_type.endswith("wordprocessingml.document")
    assert paper.title == "notes"


async def test_text_must_be_utf8_and_unknown_types_are_refused(db, browser_factory) -> None:
    w = await make_world(db)
    host = browser_factory(w.host)
    latin1 = await host.submit(
        papers_url(w),
        {"kind": "pre_reading"},
        files={"file": ("notes.txt", "café".encode("latin-1"))},
    )
    assert latin1.status_code == 415
    html = await host.submit(
        papers_url(w), {"kind": "pre_reading"}, files={"file": ("page.html", b"<p>hi</p>")}
    )
    assert html.status_code == 415 and "not a file type we accept" in html.text
    ok = await host.submit(
        papers_url(w), {"kind": "pre_reading"}, files={"file": ("notes.txt", "café ☕\n".encode())}
    )
    assert ok.status_code == 303
    [paper] = await _papers(db)
    download = await host.get(f"{papers_url(w)}/{paper.id}")
    assert download.headers["content-type"] == "text/plain; charset=utf-8"


async def test_oversize_paper_is_refused_and_nothing_is_kept(db, browser_factory, settings) -> None:
    w = await make_world(db)
    host = browser_factory(w.host)
    too_big = PDF + b"0" * (PAPER_MAX_BYTES + 1 - len(PDF))
    response = await host.submit(
        papers_url(w), {"kind": "pre_reading"}, files={"file": ("big.pdf", too_big)}
    )
    assert response.status_code == 413
    assert "larger than the 25 MB limit" in response.text
    assert files_in(settings.upload_dir) == []
    assert await _papers(db) == []


async def test_recording_files_are_sniffed(db, browser_factory) -> None:
    w = await make_world(db)
    host = browser_factory(w.host)
    mp4 = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2" + b"\x00" * 64
    ok = await host.submit(
        papers_url(w), {"kind": "recording"}, files={"file": ("session.mp4", mp4)}
    )
    assert ok.status_code == 303
    not_audio = await host.submit(
        papers_url(w), {"kind": "recording"}, files={"file": ("talk.mp3", PDF)}
    )
    assert not_audio.status_code == 415
    # A recording type is not accepted as pre-reading.
    wrong_kind = await host.submit(
        papers_url(w), {"kind": "pre_reading"}, files={"file": ("session.mp4", mp4)}
    )
    assert wrong_kind.status_code == 415
    [paper] = await _papers(db)
    assert (paper.kind, paper.content_type) == ("recording", "video/mp4")
    lobby = await host.get(f"/programmes/{w.programme.id}/sessions/{w.session.id}")
    assert "Download session.mp4" in lobby.text


async def test_host_deletes_paper_and_its_file(db, browser_factory, settings) -> None:
    w = await make_world(db)
    host = browser_factory(w.host)
    await host.submit(papers_url(w), {"kind": "pre_reading"}, files={"file": ("a.pdf", PDF)})
    [paper] = await _papers(db)
    participant = browser_factory(w.participant_a)
    assert (await participant.submit(f"{papers_url(w)}/{paper.id}/delete")).status_code == 403
    assert len(files_in(settings.upload_dir)) == 1

    response = await host.submit(f"{papers_url(w)}/{paper.id}/delete")
    assert response.status_code == 303
    assert await _papers(db) == []
    assert files_in(settings.upload_dir) == []
    entry = await db.scalar(select(AuditEntry).where(AuditEntry.action == "paper.delete"))
    assert entry is not None and entry.detail["filename"] == "a.pdf"
    assert (await participant.get(f"{papers_url(w)}/{paper.id}")).status_code == 404


async def test_deleting_a_session_removes_its_files(db, browser_factory, settings) -> None:
    w = await make_world(db)
    host = browser_factory(w.host)
    await host.submit(papers_url(w), {"kind": "pre_reading"}, files={"file": ("a.pdf", PDF)})
    assert len(files_in(settings.upload_dir)) == 1
    response = await host.api(
        "DELETE", f"/api/v1/programmes/{w.programme.id}/sessions/{w.session.id}"
    )
    assert response.status_code == 204
    assert files_in(settings.upload_dir) == []


async def test_access_to_papers(db, browser_factory) -> None:
    w = await make_world(db)
    host = browser_factory(w.host)
    await host.submit(papers_url(w), {"kind": "pre_reading"}, files={"file": ("a.pdf", PDF)})
    [paper] = await _papers(db)
    outsider = browser_factory(w.outsider)
    assert (await outsider.get(f"{papers_url(w)}/{paper.id}")).status_code == 404
    participant = browser_factory(w.participant_b)
    upload = await participant.submit(
        papers_url(w), {"kind": "pre_reading"}, files={"file": ("b.pdf", PDF)}
    )
    assert upload.status_code == 403
    # The paper exists, but not under another session's path.
    other = f"/programmes/{w.other_programme.id}/sessions/{w.other_session.id}/papers/{paper.id}"
    assert (await outsider.get(other)).status_code == 404


async def test_api_papers(db, browser_factory, settings) -> None:
    w = await make_world(db)
    host = browser_factory(w.host)
    base = f"/api/v1/programmes/{w.programme.id}/sessions/{w.session.id}/papers"
    created = await host.api(
        "POST",
        base,
        data={"kind": "pre_reading", "title": "Slides"},
        files={"file": ("s.pdf", PDF)},
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["title"] == "Slides" and body["size_bytes"] == len(PDF)
    assert body["download_url"].endswith(f"/sessions/{w.session.id}/papers/{body['id']}")

    refused = await host.api(
        "POST", base, data={"kind": "pre_reading"}, files={"file": ("s.pdf", b"<html></html>")}
    )
    assert refused.status_code == 415
    assert refused.json()["errors"][0]["field"] == "file"

    listed = await browser_factory(w.participant_a).get(base)
    assert [p["filename"] for p in listed.json()] == ["s.pdf"]
    assert (await browser_factory(w.outsider).get(base)).status_code == 404
    assert (
        await browser_factory(w.participant_a).api("DELETE", f"{base}/{body['id']}")
    ).status_code == 403
    assert (await host.api("DELETE", f"{base}/{body['id']}")).status_code == 204
    assert files_in(settings.upload_dir) == []


def test_safe_filename_and_disposition() -> None:
    assert safe_filename("C:\\Users\\me\\report.pdf") == "report.pdf"
    assert safe_filename("../../../etc/passwd") == "passwd"
    assert safe_filename("...") == "file"
    assert safe_filename("bell\x07\nname\u200f.txt") == "bellname.txt"
    long = safe_filename("a" * 300 + ".pdf")
    assert len(long) == 150 and long.endswith(".pdf")
    header = content_disposition('quote"semi;colon.pdf')
    assert header.startswith('attachment; filename="quote_semi_colon.pdf"; ')
    assert "filename*=UTF-8''quote%22semi%3Bcolon.pdf" in header


async def test_upload_without_a_file_or_with_unknown_kind(db, browser_factory, settings) -> None:
    w = await make_world(db)
    host = browser_factory(w.host)
    empty = await host.submit(
        papers_url(w),
        {"kind": "pre_reading"},
        files={"file": ("", b"", "application/octet-stream")},
    )
    assert empty.status_code == 400
    assert "Choose a file to upload." in empty.text
    bad_kind = await host.submit(
        papers_url(w), {"kind": "evidence"}, files={"file": ("a.pdf", PDF)}
    )
    assert bad_kind.status_code == 400
    assert "pre-reading or a recording" in bad_kind.text
    zero = await host.submit(papers_url(w), {"kind": "pre_reading"}, files={"file": ("a.pdf", b"")})
    assert zero.status_code == 400 and "is empty" in zero.text
    assert files_in(settings.upload_dir) == []
