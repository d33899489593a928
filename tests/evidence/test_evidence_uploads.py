"""Uploading files as evidence: streamed, judged by content, cleaned, recorded together, and
refused clearly (with nothing left behind) when wrong."""

from __future__ import annotations

import io
import re
import tempfile
from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy import func, select

from app.evidence.models import EvidenceItem
from app.models import AuditEntry
from tests import evidence_files as ef
from tests.factories import make_world


def files_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def upload_url(w, group=None) -> str:  # type: ignore[no-untyped-def]
    group = group or w.group_a
    return f"/programmes/{w.programme.id}/groups/{group.id}/evidence/upload"


async def items(db) -> list[EvidenceItem]:  # type: ignore[no-untyped-def]
    rows = await db.scalars(
        select(EvidenceItem).order_by(EvidenceItem.id).execution_options(populate_existing=True)
    )
    return list(rows.all())


async def upload(client, url, files, data=None, json=False):  # type: ignore[no-untyped-def]
    headers = {"Accept": "application/json"} if json else {}
    return await client.submit(
        url, data or {}, files=[("files", f) for f in files], headers=headers
    )


async def test_photo_is_cleaned_of_location_turned_upright_and_thumbnailed(
    db, browser_factory, settings
) -> None:
    w = await make_world(db)
    participant = browser_factory(w.participant_a)
    photo = ef.jpeg_with_location(size=(64, 32), orientation=6)
    assert b"PhoneMaker" in photo
    response = await upload(
        participant,
        upload_url(w),
        [("IMG_2041.JPG", photo, "image/jpeg")],
        {
            "title": "Our wall of notes",
            "alt_text": "Sticky notes reading: be heard, be paid",
            "session_id": str(w.session.id),
            "from_trio": "1",
        },
    )
    assert response.status_code == 303, response.text
    assert response.headers["location"].endswith("/evidence?done=uploaded")
    [item] = await items(db)
    assert (item.kind, item.title, item.from_trio, item.session_id) == (
        "image",
        "Our wall of notes",
        True,
        w.session.id,
    )
    assert item.alt_text.startswith("Sticky notes")
    assert item.uploader_id == w.participant_a.id and item.group_id == w.group_a.id
    storage = settings.upload_dir
    with Image.open(next(p for p in files_in(storage) if p.name == item.storage_key)) as kept:
        # Orientation 6 means "rotate 90°": the stored picture is upright (portrait) and has
        # no EXIF at all, so no location and no camera.
        assert kept.size == (32, 64) and (item.width, item.height) == (32, 64)
        assert not kept.getexif()
    raw = next(p for p in files_in(storage) if p.name == item.storage_key).read_bytes()
    assert b"PhoneMaker" not in raw and b"GPS" not in raw
    with Image.open(next(p for p in files_in(storage) if p.name == item.thumbnail_key)) as thumb:
        assert thumb.format == "WEBP" and max(thumb.size) <= 480
    # The original's hash is kept (duplicates are found by what people upload).
    import hashlib

    assert item.sha256 == hashlib.sha256(photo).hexdigest()
    assert len(files_in(storage)) == 2  # the cleaned image and its thumbnail, nothing else
    assert await db.scalar(select(AuditEntry).where(AuditEntry.action == "evidence.upload"))


async def test_several_files_at_once_and_images_without_description_wait_for_one(
    db, browser_factory, settings
) -> None:
    w = await make_world(db)
    participant = browser_factory(w.participant_a)
    response = await upload(
        participant,
        upload_url(w),
        [
            ("a.png", ef.png(colour=(1, 2, 3)), "image/png"),
            ("b.webp", ef.image_bytes("WEBP"), "image/webp"),
            ("slides.pptx", ef.office("ppt/presentation.xml"), "application/octet-stream"),
            ("report.pdf", ef.PDF, "application/pdf"),
            ("minutes.odt", ef.odt(), "application/vnd.oasis.opendocument.text"),
            ("letter.docx", ef.office("word/document.xml"), ""),
        ],
        {"title": "Week 2"},
    )
    assert response.status_code == 303, response.text
    got = await items(db)
    assert [i.kind for i in got] == [
        "image",
        "image",
        "document",
        "document",
        "document",
        "document",
    ]
    assert [i.title for i in got][:2] == ["Week 2 (1 of 6)", "Week 2 (2 of 6)"]
    # Two images and no description each: both wait; the person is sent to describe one.
    assert [i.needs_alt_text for i in got] == [True, True, False, False, False, False]
    assert "#alt-text" in response.headers["location"]
    # Another member of the group does not see undescribed images on the board.
    assert all(i.content_type for i in got)


async def test_json_answer_for_the_page_script(db, browser_factory) -> None:
    w = await make_world(db)
    participant = browser_factory(w.participant_a)
    response = await upload(
        participant,
        upload_url(w),
        [("poster.png", ef.png(), "image/png")],
        {"kind": "poster", "alt_text": "A poster: Nothing about us without us"},
        json=True,
    )
    assert response.status_code == 201
    body = response.json()
    [entry] = body["items"]
    assert entry["kind"] == "poster" and entry["needs_alt_text"] is False
    assert entry["url"].endswith(f"/evidence/{entry['id']}")


async def test_duplicate_within_the_group_is_reported_but_other_groups_may_upload_it(
    db, browser_factory, settings
) -> None:
    w = await make_world(db)
    a = browser_factory(w.participant_a)
    first = await upload(a, upload_url(w), [("notes.pdf", ef.PDF, "application/pdf")])
    assert first.status_code == 303
    again = await upload(a, upload_url(w), [("copy of notes.pdf", ef.PDF, "application/pdf")])
    assert again.status_code == 409
    assert "already on this group" in again.text and "notes" in again.text
    b = browser_factory(w.participant_b)
    other = await upload(b, upload_url(w, w.group_b), [("notes.pdf", ef.PDF, "application/pdf")])
    assert other.status_code == 303
    assert len(await items(db)) == 2
    assert len(files_in(settings.upload_dir)) == 2


@pytest.mark.parametrize(
    ("name", "content", "status", "words"),
    [
        ("empty.png", b"", 400, "is empty"),
        ("notes.pdf", ef.png(), 415, "does not contain what its name says"),
        ("photo.jpg", ef.PDF, 415, "does not contain what its name says"),
        ("virus.exe", b"MZ\x90\x00" + b"\x00" * 200, 415, "not a type of file we accept"),
        ("page.html", b"<html><script>alert(1)</script></html>" * 4, 415, "not a type"),
        (
            "image.svg",
            b'<svg xmlns="http://www.w3.org/2000/svg"><script/></svg>' * 2,
            415,
            "not a type",
        ),
        ("archive.zip", ef.office("x.txt"), 415, "ZIP archive"),
        ("slides.pptx", ef.office("word/document.xml"), 415, "not a complete PowerPoint"),
        ("truncated.png", ef.png(size=(300, 300))[:-200], 400, "incomplete or damaged"),
        ("truncated.pdf", ef.PDF[:-8], 400, "incomplete PDF"),
        ("bomb.png", ef.png_bomb(), 400, "too many pixels"),
    ],
)
async def test_bad_files_are_refused_clearly_and_leave_nothing_behind(
    db, browser_factory, settings, name, content, status, words
) -> None:
    w = await make_world(db)
    participant = browser_factory(w.participant_a)
    response = await upload(
        participant, upload_url(w), [(name, content, "image/png")], {"alt_text": "x"}
    )
    assert response.status_code == status, response.text
    assert words in response.text
    assert 'aria-invalid="true"' in response.text  # the message is tied to the file field
    assert await items(db) == []
    assert files_in(settings.upload_dir) == []
    as_json = await upload(
        participant, upload_url(w), [(name, content, "image/png")], {"alt_text": "x"}, json=True
    )
    assert as_json.status_code == status and words in as_json.json()["detail"]


async def test_one_bad_file_refuses_the_whole_batch(db, browser_factory, settings) -> None:
    w = await make_world(db)
    participant = browser_factory(w.participant_a)
    response = await upload(
        participant,
        upload_url(w),
        [
            ("good.pdf", ef.PDF, "application/pdf"),
            ("good.png", ef.png(), "image/png"),
            ("bad.docx", ef.PDF, "application/pdf"),
        ],
    )
    assert response.status_code == 415 and "bad.docx" in response.text
    assert await items(db) == [] and files_in(settings.upload_dir) == []


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("../../etc/passwd.pdf", "must not contain folders"),
        ("..\\..\\boot.pdf", "must not contain folders"),
        (".htaccess.pdf", "start with a dot"),
        ("n" * 300 + ".pdf", "too long (304 characters"),
        ("n" * 5000 + ".pdf", "far too long"),
    ],
)
async def test_path_traversal_and_very_long_names_are_refused(
    db, browser_factory, settings, name, words
) -> None:
    w = await make_world(db)
    participant = browser_factory(w.participant_a)
    response = await upload(participant, upload_url(w), [(name, ef.PDF, "application/pdf")])
    assert response.status_code == 400, response.text
    assert words in response.text
    assert await items(db) == [] and files_in(settings.upload_dir) == []


async def test_odd_but_harmless_names_are_cleaned(db, browser_factory) -> None:
    w = await make_world(db)
    participant = browser_factory(w.participant_a)
    name = "Résumé \u202efdp.exe  notes.pdf"
    response = await upload(participant, upload_url(w), [(name, ef.PDF, "application/pdf")])
    assert response.status_code == 303, response.text
    [item] = await items(db)
    assert item.filename == "Résumé fdp.exe notes.pdf"  # no direction override, no doubles


async def test_over_size_upload_is_refused_while_streaming(db, browser_factory, settings) -> None:
    settings.max_upload_mb = 1  # the app reads it per request
    w = await make_world(db)
    participant = browser_factory(w.participant_a)
    big = ef.PDF[:-6] + b"\n" * (1024 * 1024) + b"%%EOF\n"
    response = await upload(participant, upload_url(w), [("big.pdf", big, "application/pdf")])
    assert response.status_code == 413
    assert "larger than the 1 MB limit" in response.text
    assert await items(db) == [] and files_in(settings.upload_dir) == []


async def test_malformed_multipart_bodies_are_refused(db, browser_factory, settings) -> None:
    w = await make_world(db)
    participant = browser_factory(w.participant_a)
    token = participant.csrf_token()
    cases = [
        ("multipart/form-data", b"--x\r\n"),
        ("multipart/form-data; boundary=xyz", b"garbage without any boundary"),
        (
            "multipart/form-data; boundary=xyz",
            b'--xyz\r\nContent-Disposition: form-data; name="csrf_token"\r\n\r\n'
            + token.encode()
            + b'\r\n--xyz\r\nContent-Disposition: form-data; name="files"; filename="a.pdf"\r\n\r\n'
            + ef.PDF,
        ),  # the body ends in the middle of the file: a cancelled upload
        (
            "multipart/form-data; boundary=xyz",
            b"--xyz\r\nContent-Disposition: form-data\r\n\r\nvalue\r\n--xyz--\r\n",
        ),
        ("application/json", b"{}"),
    ]
    for content_type, body in cases:
        response = await participant.post(
            upload_url(w),
            content=body,
            headers={"Content-Type": content_type, "X-CSRF-Token": token},
        )
        assert response.status_code == 400, (content_type, body[:60], response.text)
        assert "Traceback" not in response.text
    assert await items(db) == [] and files_in(settings.upload_dir) == []


async def test_forged_upload_is_refused_before_any_file_is_stored(
    db, browser_factory, settings
) -> None:
    w = await make_world(db)
    participant = browser_factory(w.participant_a)
    participant.csrf_token()
    response = await participant.post(
        upload_url(w), data={"csrf_token": "forged"}, files={"files": ("a.pdf", ef.PDF)}
    )
    assert response.status_code == 403
    response = await participant.post(upload_url(w), files={"files": ("a.pdf", ef.PDF)})
    assert response.status_code == 403
    assert await items(db) == [] and files_in(settings.upload_dir) == []


async def test_only_the_group_may_upload_to_its_board(db, browser_factory, settings) -> None:
    w = await make_world(db)
    for user, status in [
        (w.participant_b, 403),
        (w.facilitator_b, 403),
        (w.observer, 403),
        (w.it_support, 403),
        (w.outsider, 404),
    ]:
        response = await upload(
            browser_factory(user), upload_url(w), [("a.pdf", ef.PDF, "application/pdf")]
        )
        assert response.status_code == status, user.display_name
    for user in (w.participant_a, w.facilitator_a, w.host):
        response = await upload(
            browser_factory(user),
            upload_url(w),
            [(f"{user.id}.pdf", ef.PDF + str(user.id).encode(), "application/pdf")],
        )
        assert response.status_code == 303, user.display_name
    assert await db.scalar(select(func.count()).select_from(EvidenceItem)) == 3


async def test_upload_page_without_javascript(db, browser_factory) -> None:
    w = await make_world(db)
    participant = browser_factory(w.participant_a)
    page = await participant.get(upload_url(w))
    assert page.status_code == 200
    assert 'enctype="multipart/form-data"' in page.text and "multiple" in page.text
    # The token is the first field, so the server can check it before storing anything.
    form = page.text[page.text.index("<form") :]
    assert form.index('name="csrf_token"') < form.index('name="files"')
    assert w.session.title in page.text


async def test_heic_photo_is_kept_as_jpeg(db, browser_factory, settings) -> None:
    from pillow_heif import from_pillow

    w = await make_world(db)
    out = io.BytesIO()
    from_pillow(Image.new("RGB", (20, 10), (9, 9, 9))).save(out, quality=60)
    participant = browser_factory(w.participant_a)
    response = await upload(
        participant,
        upload_url(w),
        [("IMG_1.HEIC", out.getvalue(), "")],
        {"alt_text": "A dark photo"},
    )
    assert response.status_code == 303, response.text
    [item] = await items(db)
    assert item.content_type == "image/jpeg" and item.filename == "IMG_1.jpg"


async def test_cancelled_upload_over_a_real_connection_leaves_nothing(
    live_server, settings
) -> None:
    import asyncio

    from sqlalchemy.ext.asyncio import async_sessionmaker

    from app.db import make_engine

    engine = make_engine(settings.database_url)
    try:
        async with async_sessionmaker(engine, expire_on_commit=False)() as db:
            w = await make_world(db)
            await db.commit()
        boundary = "cancelled"
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="files"; '
            f'filename="long.pdf"\r\nContent-Type: application/pdf\r\n\r\n'
        ).encode() + ef.PDF
        reader, writer = await asyncio.open_connection("127.0.0.1", live_server.port)
        writer.write(
            (
                f"POST {upload_url(w)} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                f"Cookie: {live_server.cookie_header(w.participant_a)}\r\n"
                f"X-CSRF-Token: {live_server.csrf_token()}\r\n"
                f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
                f"Content-Length: {50 * 1024 * 1024}\r\n\r\n"
            ).encode()
            + head
            + b"\0" * (3 * 1024 * 1024)
        )
        await writer.drain()
        for _ in range(100):  # the server has started writing the file
            if any(p.name.endswith(".part") for p in files_in(settings.upload_dir)):
                break
            await asyncio.sleep(0.05)
        assert any(p.name.endswith(".part") for p in files_in(settings.upload_dir))
        writer.close()  # the person closes the tab
        for _ in range(100):
            if not files_in(settings.upload_dir):
                break
            await asyncio.sleep(0.05)
        assert files_in(settings.upload_dir) == []
        async with async_sessionmaker(engine)() as db:
            assert await items(db) == []
    finally:
        await engine.dispose()


@pytest.mark.parametrize(
    ("data", "field", "words"),
    [
        ({"session_id": "9" * 40}, "session_id", "Choose a session"),
        ({"session_id": "abc"}, "session_id", "Choose a session"),
        ({"visibility": "everyone"}, "visibility", "Choose who can see this"),
        ({"kind": "video"}, "kind", "poster"),
        ({"title": "t" * 201}, "title", "at most 200"),
        ({"alt_text": "a" * 1001}, "alt_text", "at most 1,000"),
    ],
)
async def test_bad_form_fields_are_refused_with_the_field_named(
    db, browser_factory, settings, data, field, words
) -> None:
    w = await make_world(db)
    participant = browser_factory(w.participant_a)
    response = await upload(
        participant, upload_url(w), [("a.pdf", ef.PDF, "application/pdf")], data
    )
    assert response.status_code == 400, response.text
    assert f'id="error-{field}"' in response.text and words in response.text
    assert await items(db) == [] and files_in(settings.upload_dir) == []


async def test_a_sound_file_declaring_1_hz_is_refused_at_upload(
    db, browser_factory, settings
) -> None:
    # 20 KB at "1 Hz" was once taken as a 10,000 s recording and held the transcription
    # queue for minutes.
    w = await make_world(db)
    participant = browser_factory(w.participant_a)
    response = await upload(
        participant, upload_url(w), [("note.wav", ef.wav(1), "audio/wav")], json=True
    )
    assert response.status_code == 400, response.text
    detail = response.json()["detail"]
    assert detail.startswith("“note.wav”: This sound file declares a sample rate of 1 Hz")
    assert "8 to 192 kHz" in detail
    assert await items(db) == [] and files_in(settings.upload_dir) == []
    # The lowest rate recordings have is taken.
    response = await upload(participant, upload_url(w), [("phone.wav", ef.wav(8000), "")])
    assert response.status_code == 303, response.text
    [item] = await items(db)
    assert item.duration_seconds == pytest.approx(1.25)


def heic_photo() -> bytes:
    from pillow_heif import from_pillow

    out = io.BytesIO()
    from_pillow(Image.new("RGB", (64, 48), (9, 90, 9))).save(out, quality=60)
    return out.getvalue()


def server_paths_in(text: str, settings, tmp_path: Path, *, keys: bool = True) -> list[str]:  # type: ignore[no-untyped-def]
    """Any part of a server path in an answer: the upload folder, the test's folders, and
    (with `keys`) the random names of stored files. Pages carry hex tokens of their own
    (the form's CSRF token), so they are checked without `keys`."""
    paths = (str(settings.upload_dir), str(tmp_path), tempfile.gettempdir(), ".part")
    found = [p for p in paths if p in text]
    return found + (re.findall(r"\b[0-9a-f]{32}\b", text) if keys else [])


async def test_errors_about_broken_files_never_show_a_server_path(
    db, browser_factory, settings, tmp_path
) -> None:
    w = await make_world(db)
    participant = browser_factory(w.participant_a)
    png = ef.png(size=(300, 300))
    broken = [
        # Cut inside its header: Pillow's message named the stored file's path.
        ("poster.png", png[:40]),
        ("flipchart.png", png[:-200]),
        ("photo.jpg", ef.jpeg_with_location()[:300]),
        ("photo.heic", heic_photo()[:200]),
        ("sketch.gif", ef.image_bytes("GIF", (200, 200))[:120]),
        ("wall.webp", ef.image_bytes("WEBP", (200, 200))[:60]),
        ("note.wav", ef.wav(1)),
        ("cut.wav", ef.wav(16000)[:-5000]),
        ("talk.mp3", b"ID3\x03\x00\x00\x00\x00\x00\x00" + b"\x00garbage" * 400),
        ("talk.ogg", b"OggS\x00\x02" + bytes(60) + b"junk" * 100),
        ("letter.docx", ef.office("x.xml")),
        ("minutes.odt", ef.office("content.xml")),
        ("report.pdf", ef.PDF[:-8]),
    ]
    for name, content in broken:
        for as_json in (True, False):
            response = await upload(
                participant, upload_url(w), [(name, content, "")], {"alt_text": "x"}, json=as_json
            )
            assert 400 <= response.status_code < 500, (name, response.status_code, response.text)
            text = response.json()["detail"] if as_json else response.text
            assert name in text, (name, text)
            assert server_paths_in(text, settings, tmp_path, keys=as_json) == [], (name, text)
    assert await items(db) == [] and files_in(settings.upload_dir) == []

    # A session's papers and recordings, through the page and the API.
    host = browser_factory(w.host)
    papers = f"/programmes/{w.programme.id}/sessions/{w.session.id}/papers"
    for name, kind, content in [
        ("agenda.docx", "pre_reading", ef.office("x.xml")),
        ("agenda.pdf", "pre_reading", png),
        ("slides.pptx", "pre_reading", b"PK\x03\x04" + bytes(100)),
        ("talk.mp3", "recording", b"not sound at all" * 10),
    ]:
        page = await host.submit(papers, {"kind": kind}, files={"file": (name, content)})
        assert 400 <= page.status_code < 500 and name in page.text, (name, page.text)
        assert server_paths_in(page.text, settings, tmp_path, keys=False) == [], page.text
        api = await host.api(
            "POST", f"/api/v1{papers}", data={"kind": kind}, files={"file": (name, content)}
        )
        assert 400 <= api.status_code < 500, (name, api.status_code, api.text)
        assert server_paths_in(api.text, settings, tmp_path) == [], (name, api.text)
    assert files_in(settings.upload_dir) == []
