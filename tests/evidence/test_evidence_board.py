"""A group's evidence board: who sees what, grouping, filters, search on SQLite and
PostgreSQL, hiding, describing images, deleting, serving files safely, and the ZIP."""

from __future__ import annotations

import csv
import io
import re
import zipfile
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from sqlalchemy import select

from app.db import utcnow
from app.evidence.models import Coding, EvidenceItem, Theme
from app.evidence.searchtext import refresh_search_text
from app.models import AuditEntry, Role, User
from tests.factories import World, add_member, make_session, make_user, make_world

PDF = b"%PDF-1.7\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"
WEBM = b"\x1a\x45\xdf\xa3" + bytes(range(256)) * 8


def png_bytes(size: tuple[int, int] = (40, 30)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(out, "PNG")
    return out.getvalue()


def webp_bytes(size: tuple[int, int] = (40, 30)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (30, 30, 200)).save(out, "WEBP")
    return out.getvalue()


def board(w: World, group: Any = None) -> str:
    return f"/programmes/{w.programme.id}/groups/{(group or w.group_a).id}/evidence"


async def save_bytes(storage: Any, data: bytes) -> Any:
    async def chunks():  # type: ignore[no-untyped-def]
        yield data

    return await storage.save(chunks(), max_bytes=len(data) + 1)


async def add_item(
    db: Any,
    w: World,
    *,
    uploader: User,
    kind: str = "note",
    title: str = "An item",
    group: Any = None,
    storage: Any = None,
    data: bytes | None = None,
    filename: str = "",
    content_type: str = "",
    thumbnail: bytes | None = None,
    **fields: Any,
) -> EvidenceItem:
    """An item written straight to the database (files through the app's storage), as an
    upload would leave it."""
    item = EvidenceItem(
        programme_id=w.programme.id,
        group_id=(group or w.group_a).id,
        uploader_id=uploader.id,
        kind=kind,
        title=title,
        **fields,
    )
    if data is not None:
        stored = await save_bytes(storage, data)
        item.storage_key = stored.key
        item.sha256 = stored.sha256
        item.size_bytes = stored.size
        item.filename = filename
        item.content_type = content_type
    if thumbnail is not None:
        item.thumbnail_key = (await save_bytes(storage, thumbnail)).key
    refresh_search_text(item)
    db.add(item)
    await db.commit()
    return item


@pytest.fixture
def storage(app_and_state: Any) -> Any:
    return app_and_state[1].storage


async def teammate_of(db: Any, w: World) -> User:
    """A second participant in group A."""
    user = await make_user(db, name="Tess Teammate", pronouns="they/them")
    await add_member(db, w.programme, user, Role.PARTICIPANT, w.group_a)
    await db.commit()
    return user


def positions(page: str, *needles: str) -> list[int]:
    found = [page.find(n) for n in needles]
    assert -1 not in found, [n for n, p in zip(needles, found, strict=True) if p == -1]
    return found


async def test_board_groups_items_by_session_then_kind(db, browser_factory, storage) -> None:
    w = await make_world(db)
    later = await make_session(db, w.programme, title="Webinar 2", days_ahead=14)
    await add_item(db, w, uploader=w.participant_a, title="Loose note", note_markdown="loose")
    await add_item(
        db,
        w,
        uploader=w.participant_a,
        title="Second note",
        session_id=later.id,
        note_markdown="second",
    )
    await add_item(
        db,
        w,
        uploader=w.participant_a,
        kind="document",
        title="Agenda PDF",
        session_id=w.session.id,
        storage=storage,
        data=PDF,
        filename="agenda.pdf",
        content_type="application/pdf",
    )
    await add_item(
        db,
        w,
        uploader=w.participant_a,
        title="First note",
        session_id=w.session.id,
        note_markdown="first",
        from_trio=True,
    )
    await add_item(
        db,
        w,
        uploader=w.participant_a,
        kind="link",
        title="A site",
        session_id=w.session.id,
        link_url="https://example.org/",
    )
    page = (await browser_factory(w.participant_a).get(board(w))).text
    assert "<h1>Evidence: Group A</h1>" in page
    # Sessions in programme order, then items tied to none; kinds in a fixed order.
    positions_found = positions(
        page,
        'id="session-' + str(w.session.id) + '">Webinar 1',
        "First note",
        "Agenda PDF",
        "A site",
        'id="session-' + str(later.id) + '">Webinar 2',
        "Second note",
        'id="session-none">Not about one session',
        "Loose note",
    )
    assert positions_found == sorted(positions_found)
    assert ">Typed notes</h4>" in page and ">Documents</h4>" in page and ">Links</h4>" in page
    assert "From a trio" in page
    # A document: a text icon, its type and size, and a download link.
    assert '<span class="evidence-doc-icon" aria-hidden="true">PDF</span>' in page
    assert f"PDF, {len(PDF)} Bytes" in page
    assert "/file?download=1" in page
    assert "Priya Participant (she/her)" in page  # the uploader, with pronouns
    # The upload form, the note and link pages and the voice recorder are offered.
    assert 'action="' + board(w) + '/upload"' in page
    assert f'href="{board(w)}/notes/new"' in page and f'href="{board(w)}/links/new"' in page
    assert "data-voice-note" in page and "js/voice-note.js" in page


async def test_empty_board_says_how_to_start(db, browser_factory) -> None:
    w = await make_world(db)
    page = (await browser_factory(w.participant_a).get(board(w))).text
    assert "Nothing here yet." in page
    assert "0 items." in page
    assert "export.zip" not in page


async def test_filters_by_session_kind_and_trio(db, browser_factory, storage) -> None:
    w = await make_world(db)
    await add_item(
        db,
        w,
        uploader=w.participant_a,
        title="Trio note",
        from_trio=True,
        session_id=w.session.id,
        note_markdown="a",
    )
    await add_item(db, w, uploader=w.participant_a, title="Plain note", note_markdown="b")
    await add_item(
        db,
        w,
        uploader=w.participant_a,
        kind="link",
        title="Session link",
        session_id=w.session.id,
        link_url="https://example.org/",
    )
    browser = browser_factory(w.participant_a)

    def titles(page: str) -> set[str]:
        return set(re.findall(r'class="evidence-card-title"><a href="[^"]+">([^<]+)</a>', page))

    assert titles((await browser.get(board(w))).text) == {"Trio note", "Plain note", "Session link"}
    assert titles((await browser.get(board(w), params={"kind": "note"})).text) == {
        "Trio note",
        "Plain note",
    }
    assert titles((await browser.get(board(w), params={"trio": "yes"})).text) == {"Trio note"}
    assert titles((await browser.get(board(w), params={"trio": "no"})).text) == {
        "Plain note",
        "Session link",
    }
    by_session = await browser.get(board(w), params={"session": str(w.session.id)})
    assert titles(by_session.text) == {"Trio note", "Session link"}
    assert titles((await browser.get(board(w), params={"session": "none"})).text) == {"Plain note"}
    nothing = await browser.get(board(w), params={"kind": "audio"})
    assert "Nothing matches these filters." in nothing.text
    # Values that are not ours are ignored (and said to be), never an error.
    odd = await browser.get(
        board(w), params={"session": str(w.other_session.id), "kind": "<script>", "trio": "x"}
    )
    assert odd.status_code == 200
    assert "That session is not one of this programme&#39;s" in odd.text
    assert "<script>" not in odd.text.split("<main")[1].split("voice-note.js")[0]
    assert titles(odd.text) == {"Trio note", "Plain note", "Session link"}


SEARCH_DB = pytest.mark.parametrize(
    "database_url", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
HOSTILE_QUERIES = [
    "AND (",
    '"',
    '"unclosed phrase',
    "*",
    "gard*",
    "NEAR(",
    "NEAR(a b, 2)",
    "title:garden",
    "search_text:x",
    "-garden",
    "OR",
    "NOT",
    "a AND OR NOT b",
    "^garden",
    "((((",
    "'; DROP TABLE evidence_items; --",
    "x\x00y",
    "{garden}",
    "garden +",
    "ünïcödé 漢字",
    "…",
    "a" * 400,
    " ".join(["word"] * 60),
]


@SEARCH_DB
async def test_search_finds_notes_transcripts_titles_and_descriptions(
    db, browser_factory, storage
) -> None:
    w = await make_world(db)
    teammate = await teammate_of(db, w)
    await add_item(
        db,
        w,
        uploader=w.participant_a,
        title="Flip chart",
        note_markdown="We planted a community **garden** together.",
    )
    await add_item(
        db,
        w,
        uploader=w.participant_a,
        kind="audio",
        title="Recording one",
        storage=storage,
        data=WEBM,
        filename="one.webm",
        content_type="audio/webm",
        transcript="the allotment needs more volunteers on sundays",
        transcript_status="done",
    )
    await add_item(
        db,
        w,
        uploader=w.participant_a,
        kind="link",
        title="Volunteering guide",
        link_url="https://example.org/",
    )
    await add_item(
        db,
        w,
        uploader=w.participant_a,
        kind="link",
        title="Other",
        description="A <b>greenhouse</b> full of tomatoes",
        link_url="https://e.org/",
    )
    # Not for a teammate's eyes: the organisers' only, and a hidden one.
    await add_item(
        db,
        w,
        uploader=w.participant_a,
        title="Private garden note",
        note_markdown="garden secrets",
        visibility="organisers",
    )
    await add_item(
        db,
        w,
        uploader=w.facilitator_a,
        title="Hidden garden note",
        note_markdown="garden gossip",
        hidden_at=utcnow(),
        hidden_reason="off topic",
    )
    # Another group's garden never shows.
    await add_item(
        db,
        w,
        uploader=w.participant_b,
        group=w.group_b,
        title="Group B garden",
        note_markdown="garden in group B",
    )

    member = browser_factory(teammate)
    page = (await member.get(board(w), params={"q": "garden"})).text
    assert "1 result for “garden”" in page
    assert "Flip chart" in page
    for unseen in ("Private garden note", "Hidden garden note", "Group B garden"):
        assert unseen not in page
    # Where it matched, highlighted, with the note's Markdown taken out.
    assert "community <mark>garden</mark> together." in page

    transcript = (await member.get(board(w), params={"q": "volunteers sundays"})).text
    assert "Recording one" in transcript and "<mark>volunteers</mark>" in transcript
    assert "Volunteering guide" not in transcript  # every word must match

    titled = (await member.get(board(w), params={"q": "volunteering"})).text
    assert "Volunteering guide" in titled

    described = (await member.get(board(w), params={"q": "greenhouse"})).text
    # Highlights are built from text: the description's tags stay text.
    assert "A &lt;b&gt;<mark>greenhouse</mark>&lt;/b&gt; full of tomatoes" in described

    organiser = browser_factory(w.facilitator_a)
    everything = (await organiser.get(board(w), params={"q": "garden"})).text
    assert "3 results for “garden”" in everything
    assert "Private garden note" in everything and "Hidden garden note" in everything
    assert "Group B garden" not in everything

    for query in HOSTILE_QUERIES:
        response = await member.get(board(w), params={"q": query})
        assert response.status_code == 200, query
        assert "result" in response.text


@SEARCH_DB
async def test_members_see_the_group_and_their_own_organisers_only_items(
    db, browser_factory, storage
) -> None:
    """Organisers-only items: the uploader, the group's facilitators and the hosts."""
    w = await make_world(db)
    teammate = await teammate_of(db, w)
    private = await add_item(
        db,
        w,
        uploader=w.participant_a,
        kind="document",
        title="For organisers only",
        visibility="organisers",
        storage=storage,
        data=PDF,
        filename="private.pdf",
        content_type="application/pdf",
    )
    shared = await add_item(
        db, w, uploader=w.participant_a, title="For everyone", note_markdown="hello"
    )
    url = f"{board(w)}/{private.id}"

    teammate_board = (await browser_factory(teammate).get(board(w))).text
    assert "For everyone" in teammate_board and "For organisers only" not in teammate_board
    for path in (url, f"{url}/file"):
        assert (await browser_factory(teammate).get(path)).status_code == 404

    for person in (w.participant_a, w.facilitator_a, w.host, w.admin):
        browser = browser_factory(person)
        page = (await browser.get(board(w))).text
        assert "For organisers only" in page, person.display_name
        assert "Only organisers" in page
        assert (await browser.get(url)).status_code == 200
        assert (await browser.get(f"{url}/file")).content == PDF
    assert shared.id


async def test_other_groups_and_other_roles_never_reach_a_groups_evidence(
    db, browser_factory, storage
) -> None:
    w = await make_world(db)
    image = await add_item(
        db,
        w,
        uploader=w.participant_a,
        kind="image",
        title="Group A photo",
        storage=storage,
        data=png_bytes(),
        filename="photo.png",
        content_type="image/png",
        thumbnail=webp_bytes(),
        alt_text="A red square",
        width=40,
        height=30,
    )
    url = f"{board(w)}/{image.id}"
    paths = [
        board(w),
        f"{board(w)}/notes/new",
        f"{board(w)}/links/new",
        f"{board(w)}/export.zip",
        url,
        f"{url}/file",
        f"{url}/thumbnail",
        f"{url}/delete",
    ]
    for person in (w.participant_b, w.facilitator_b, w.observer, w.it_support, w.outsider):
        browser = browser_factory(person)
        for path in paths:
            response = await browser.get(path)
            assert response.status_code in (403, 404), (person.display_name, path)
            assert b"A red square" not in response.content
        posted = await browser.submit(f"{board(w)}/notes", {"title": "x", "markdown": "y"})
        assert posted.status_code in (403, 404)
        for action in ("hide", "edit", "alt-text", "delete"):
            response = await browser.submit(f"{url}/{action}", {"reason": "x", "title": "x"})
            assert response.status_code in (403, 404), (person.display_name, action)
    # Group B's own board does not reach group A's item through its address.
    other_route = f"{board(w, w.group_b)}/{image.id}"
    for path in (other_route, f"{other_route}/file", f"{other_route}/thumbnail"):
        assert (await browser_factory(w.participant_b).get(path)).status_code == 404
    anonymous = await browser_factory().get(board(w))
    assert anonymous.status_code == 303 and "/signin" in anonymous.headers["location"]
    items = (await db.scalars(select(EvidenceItem))).all()
    assert [(i.title, i.hidden_at) for i in items] == [("Group A photo", None)]


async def test_hidden_items_are_kept_audited_and_shown_only_to_organisers(
    db, browser_factory, storage
) -> None:
    w = await make_world(db)
    item = await add_item(
        db,
        w,
        uploader=w.participant_a,
        kind="document",
        title="Rude poster",
        storage=storage,
        data=PDF,
        filename="rude.pdf",
        content_type="application/pdf",
    )
    url = f"{board(w)}/{item.id}"
    participant = browser_factory(w.participant_a)
    facilitator = browser_factory(w.facilitator_a)

    assert (await participant.submit(f"{url}/hide", {"reason": "mine"})).status_code == 403
    no_reason = await facilitator.submit(f"{url}/hide", {"reason": "  "})
    assert no_reason.status_code == 400 and "Say why, for the record." in no_reason.text

    hidden = await facilitator.submit(f"{url}/hide", {"reason": "Names a person"})
    assert hidden.status_code == 303
    entry = await db.scalar(select(AuditEntry).where(AuditEntry.action == "evidence.hide"))
    assert entry is not None and entry.actor_id == w.facilitator_a.id
    assert entry.detail["reason"] == "Names a person" and entry.target == f"evidence:{item.id}"

    # The uploader and the group no longer see it, on the board or by address.
    assert "Rude poster" not in (await participant.get(board(w))).text
    for path in (url, f"{url}/file"):
        assert (await participant.get(path)).status_code == 404
    # Organisers do, marked, with who hid it and why.
    for person in (w.facilitator_a, w.host):
        browser = browser_factory(person)
        page = (await browser.get(board(w))).text
        assert "Rude poster" in page and ">Hidden</li>" in page and "is-hidden" in page
        item_page = (await browser.get(url)).text
        assert "Hidden from the group." in item_page
        assert "Fola Facilitator" in item_page and "Reason: Names a person" in item_page
        assert (await browser.get(f"{url}/file")).status_code == 200

    again = await facilitator.submit(f"{url}/hide", {"reason": "twice"})
    assert again.status_code == 409

    shown = await facilitator.submit(f"{url}/unhide", {"reason": "Discussed with the group"})
    assert shown.status_code == 303
    assert await db.scalar(select(AuditEntry).where(AuditEntry.action == "evidence.unhide"))
    assert "Rude poster" in (await participant.get(board(w))).text


async def test_files_are_served_safely(db, browser_factory, storage) -> None:
    w = await make_world(db)
    html = b"<!doctype html><script>alert(document.cookie)</script>"
    disguised = await add_item(
        db,
        w,
        uploader=w.participant_a,
        kind="document",
        title="Sneaky",
        storage=storage,
        data=html,
        filename="page.html",
        content_type="text/html",
    )
    svg = await add_item(
        db,
        w,
        uploader=w.participant_a,
        kind="image",
        title="Vector",
        storage=storage,
        data=b"<svg onload=alert(1)>",
        filename="x.svg",
        content_type="image/svg+xml",
    )
    pdf = await add_item(
        db,
        w,
        uploader=w.participant_a,
        kind="document",
        title="Paper",
        storage=storage,
        data=PDF,
        filename="Résumé \u202efdp.pdf",
        content_type="application/pdf",
    )
    image = await add_item(
        db,
        w,
        uploader=w.participant_a,
        kind="image",
        title="Photo",
        storage=storage,
        data=png_bytes(),
        filename="photo.png",
        content_type="image/png",
        thumbnail=webp_bytes(),
        alt_text="A red square",
        width=40,
        height=30,
    )
    sound = await add_item(
        db,
        w,
        uploader=w.participant_a,
        kind="audio",
        title="Voice",
        storage=storage,
        data=WEBM,
        filename="voice-note.webm",
        content_type="audio/webm",
    )
    browser = browser_factory(w.participant_a)

    def common(response: Any) -> None:
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["content-security-policy"] == "default-src 'none'; sandbox"
        assert response.headers["cache-control"].startswith("private")

    for item in (disguised, svg):
        response = await browser.get(f"{board(w)}/{item.id}/file")
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/octet-stream"
        assert response.headers["content-disposition"].startswith("attachment;")
        common(response)

    document = await browser.get(f"{board(w)}/{pdf.id}/file")
    assert document.content == PDF
    assert document.headers["content-type"] == "application/pdf"
    assert document.headers["content-disposition"].startswith('attachment; filename="R_sum_')
    common(document)

    picture = await browser.get(f"{board(w)}/{image.id}/file")
    assert picture.headers["content-type"] == "image/png"
    assert picture.headers["content-disposition"].startswith('inline; filename="photo.png"')
    common(picture)
    download = await browser.get(f"{board(w)}/{image.id}/file", params={"download": "1"})
    assert download.headers["content-disposition"].startswith("attachment;")

    thumbnail = await browser.get(f"{board(w)}/{image.id}/thumbnail")
    assert thumbnail.headers["content-type"] == "image/webp"
    assert thumbnail.headers["content-disposition"].startswith("inline;")
    assert thumbnail.content == webp_bytes()
    common(thumbnail)
    # Only pictures have thumbnails.
    assert (await browser.get(f"{board(w)}/{pdf.id}/thumbnail")).status_code == 404

    audio = await browser.get(f"{board(w)}/{sound.id}/file")
    assert audio.headers["content-type"] == "audio/webm"
    assert audio.headers["content-disposition"].startswith("inline;")
    common(audio)
    part = await browser.get(f"{board(w)}/{sound.id}/file", headers={"Range": "bytes=0-99"})
    assert part.status_code == 206 and part.content == WEBM[:100]

    page = (await browser.get(board(w))).text
    assert (
        f'<img class="evidence-thumb" src="{board(w)}/{image.id}/thumbnail" alt="A red square" '
        'loading="lazy" width="40" height="30">' in page
    )
    assert f'<audio controls preload="none" src="{board(w)}/{sound.id}/file"' in page
    item_page = (await browser.get(f"{board(w)}/{image.id}")).text
    assert f'src="{board(w)}/{image.id}/file" alt="A red square"' in item_page


async def test_images_wait_for_a_description_before_the_group_sees_them(
    db, browser_factory, storage
) -> None:
    w = await make_world(db)
    teammate = await teammate_of(db, w)
    image = await add_item(
        db,
        w,
        uploader=w.participant_a,
        kind="image",
        title="Wall of notes",
        storage=storage,
        data=png_bytes(),
        filename="wall.png",
        content_type="image/png",
        thumbnail=webp_bytes(),
        width=40,
        height=30,
    )
    url = f"{board(w)}/{image.id}"
    assert "Wall of notes" not in (await browser_factory(teammate).get(board(w))).text
    assert (await browser_factory(teammate).get(f"{url}/thumbnail")).status_code == 404

    uploader = browser_factory(w.participant_a)
    page = (await uploader.get(board(w))).text
    assert "Describe your image" in page
    assert f'<label for="describe-{image.id}">Describe this image: Wall of notes</label>' in page

    empty = await uploader.submit(f"{url}/alt-text", {"alt_text": "  ", "return_to": "board"})
    assert empty.status_code == 400
    assert "Describe the image for people who cannot see it." in empty.text
    too_long = await uploader.submit(f"{url}/alt-text", {"alt_text": "x" * 1001})
    assert too_long.status_code == 400
    # Someone else in the group cannot describe it for them.
    assert (
        await browser_factory(teammate).submit(f"{url}/alt-text", {"alt_text": "x"})
    ).status_code == 404

    saved = await uploader.submit(
        f"{url}/alt-text", {"alt_text": "Sticky notes: trust, time, money", "return_to": "board"}
    )
    assert saved.status_code == 303 and saved.headers["location"].startswith(board(w) + "?done=")
    team_page = (await browser_factory(teammate).get(board(w))).text
    assert "Wall of notes" in team_page and 'alt="Sticky notes: trust, time, money"' in team_page
    assert "Describe your image" not in (await uploader.get(board(w))).text
    # The description is searchable.
    found = (await browser_factory(teammate).get(board(w), params={"q": "sticky"})).text
    assert "1 result" in found

    note = await add_item(db, w, uploader=w.participant_a, title="A note", note_markdown="n")
    refused = await uploader.submit(f"{board(w)}/{note.id}/alt-text", {"alt_text": "x"})
    assert refused.status_code == 400


async def test_deleting_items(db, browser_factory, storage, settings) -> None:
    w = await make_world(db)
    teammate = await teammate_of(db, w)
    document = await add_item(
        db,
        w,
        uploader=w.participant_a,
        kind="document",
        title="Draft",
        storage=storage,
        data=PDF,
        filename="draft.pdf",
        content_type="application/pdf",
    )
    coded = await add_item(
        db, w, uploader=w.participant_a, title="Coded note", note_markdown="trust matters"
    )
    theme = Theme(programme_id=w.programme.id, name="Trust")
    db.add(theme)
    await db.flush()
    db.add(Coding(item_id=coded.id, theme_id=theme.id, coder_id=w.facilitator_a.id))
    await db.commit()
    file_path = storage.path(document.storage_key)
    assert file_path.is_file()

    uploader = browser_factory(w.participant_a)
    for person in (teammate, w.facilitator_a):
        response = await browser_factory(person).submit(f"{board(w)}/{document.id}/delete")
        assert response.status_code == 403, person.display_name
    confirm = await uploader.get(f"{board(w)}/{document.id}/delete")
    assert confirm.status_code == 200 and "Delete “Draft”?" in confirm.text
    deleted = await uploader.submit(f"{board(w)}/{document.id}/delete")
    assert deleted.status_code == 303
    assert not file_path.exists()
    entry = await db.scalar(select(AuditEntry).where(AuditEntry.action == "evidence.delete"))
    assert entry is not None and entry.detail["filename"] == "draft.pdf"

    # Once coded, only a host may delete it (and the codings go with it).
    refused = await uploader.submit(f"{board(w)}/{coded.id}/delete")
    assert refused.status_code == 403 and "only a host can delete it" in refused.text
    assert "only a host can delete it" in (await uploader.get(f"{board(w)}/{coded.id}")).text
    assert (
        await browser_factory(w.host).submit(f"{board(w)}/{coded.id}/delete")
    ).status_code == 303
    assert (await db.scalars(select(EvidenceItem))).all() == []
    assert (await db.scalars(select(Coding))).all() == []


def read_zip(content: bytes) -> tuple[zipfile.ZipFile, list[dict[str, str]]]:
    archive = zipfile.ZipFile(io.BytesIO(content))
    manifest = list(csv.DictReader(io.StringIO(archive.read("manifest.csv").decode("utf-8"))))
    return archive, manifest


async def test_zip_export_has_a_manifest_safe_names_and_only_what_the_person_sees(
    db, browser_factory, storage
) -> None:
    w = await make_world(db)
    document = await add_item(
        db,
        w,
        uploader=w.participant_a,
        kind="document",
        title='=HYPERLINK("http://x")',
        storage=storage,
        data=PDF,
        filename="../../../etc/passwd.pdf",
        content_type="application/pdf",
        session_id=w.session.id,
        from_trio=True,
        description="Our plan",
    )
    note = await add_item(
        db,
        w,
        uploader=w.participant_a,
        title="../../Notes/on A\\B",
        note_markdown="**Trust** first",
    )
    sound = await add_item(
        db,
        w,
        uploader=w.participant_a,
        kind="audio",
        title="Voice note",
        storage=storage,
        data=WEBM,
        filename="voice.webm",
        content_type="audio/webm",
        transcript="hello there",
        transcript_status="done",
    )
    hidden = await add_item(
        db,
        w,
        uploader=w.participant_a,
        title="Hidden one",
        note_markdown="x",
        hidden_at=utcnow(),
        hidden_reason="duplicate",
    )
    await add_item(
        db,
        w,
        uploader=w.participant_b,
        group=w.group_b,
        title="Other group",
        note_markdown="not yours",
    )

    response = await browser_factory(w.facilitator_a).get(f"{board(w)}/export.zip")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/zip"
    assert response.headers["content-disposition"].startswith(
        'attachment; filename="Group A evidence.zip"'
    )
    archive, manifest = read_zip(response.content)
    names = archive.namelist()
    for name in names:
        assert not name.startswith(("/", "\\")) and ".." not in name.split("/"), name
        assert "\\" not in name
        assert Path(name).parts[0] in ("manifest.csv", "files", "notes", "transcripts")
    assert f"files/{document.id}-passwd.pdf" in names
    assert archive.read(f"files/{document.id}-passwd.pdf") == PDF
    note_name = f"notes/{note.id}-Notes-on A-B.md"
    assert note_name in names
    assert archive.read(note_name).decode() == "# ../../Notes/on A\\B\n\n**Trust** first\n"
    assert archive.read(f"transcripts/{sound.id}-Voice note.txt") == b"hello there\n"
    assert archive.read(f"files/{sound.id}-voice.webm") == WEBM

    by_id = {row["id"]: row for row in manifest}
    assert set(by_id) == {str(document.id), str(note.id), str(sound.id), str(hidden.id)}
    row = by_id[str(document.id)]
    assert row["title"] == '\'=HYPERLINK("http://x")'  # a spreadsheet will not run it
    assert row["session"] == "Webinar 1" and row["from_trio"] == "yes"
    assert row["uploader"] == "Priya Participant (she/her)"
    assert row["filename_in_zip"] == f"files/{document.id}-passwd.pdf"
    assert row["size_bytes"] == str(len(PDF)) and len(row["sha256"]) == 64
    assert by_id[str(hidden.id)]["hidden"] == "yes"
    assert by_id[str(hidden.id)]["hidden_reason"] == "duplicate"
    assert by_id[str(sound.id)]["transcript_in_zip"] == f"transcripts/{sound.id}-Voice note.txt"
    assert await db.scalar(select(AuditEntry).where(AuditEntry.action == "evidence.export"))

    # A participant's ZIP holds what they can see: nothing hidden, no hidden column values.
    mine = await browser_factory(w.participant_a).get(f"{board(w)}/export.zip")
    _archive, manifest = read_zip(mine.content)
    assert {row["id"] for row in manifest} == {str(document.id), str(note.id), str(sound.id)}
    assert {row["hidden"] for row in manifest} == {""}


async def test_every_form_posts_with_the_pages_csrf_token(db, browser_factory, storage) -> None:
    w = await make_world(db)
    image = await add_item(
        db,
        w,
        uploader=w.facilitator_a,
        kind="image",
        title="Photo",
        storage=storage,
        data=png_bytes(),
        filename="photo.png",
        content_type="image/png",
        thumbnail=webp_bytes(),
        width=40,
        height=30,
    )
    browser = browser_factory(w.facilitator_a)
    token = browser.csrf_token()
    url = f"{board(w)}/{image.id}"
    for page_url in (
        board(w),
        url,
        f"{url}/delete",
        f"{board(w)}/notes/new",
        f"{board(w)}/links/new",
    ):
        page = (await browser.get(page_url)).text
        forms = re.findall(r'<form method="post".*?</form>', page, re.S)
        assert forms, page_url
        for form in forms:
            assert f'<input type="hidden" name="csrf_token" value="{token}">' in form, form[:200]
