"""Typed notes and links on a group's evidence board: Markdown shown safely, validated
forms, editing and deleting."""

from __future__ import annotations

import re

from sqlalchemy import select

from app.evidence.models import EvidenceItem
from app.evidence.notes import NOTE_MAX, note_plain_text, note_preview, render_note
from app.models import AuditEntry, Role
from tests.factories import add_member, make_session, make_user, make_world


def board(w, group=None) -> str:  # type: ignore[no-untyped-def]
    return f"/programmes/{w.programme.id}/groups/{(group or w.group_a).id}/evidence"


async def items(db) -> list[EvidenceItem]:  # type: ignore[no-untyped-def]
    rows = await db.scalars(
        select(EvidenceItem).order_by(EvidenceItem.id).execution_options(populate_existing=True)
    )
    return list(rows.all())


def note_form(**fields: str) -> dict[str, str]:
    return {
        "title": "Our flip chart",
        "markdown": "We talked about **trust**.",
        "description": "",
        "session_id": "",
        "visibility": "group",
        **fields,
    }


HOSTILE_NOTE = """# Plan

<script>alert('note')</script>

[click me](javascript:alert(1)) and [data](data:text/html;base64,PHNjcmlwdD4=)
and [vb](VBScript:msgbox) and [relative](/signout) and [fine](https://example.org/a?b=1&c=2)

<img src=x onerror=alert(2)> ![tracker](https://tracker.example/pixel.png)

<a href="javascript:alert(3)">raw link</a> <iframe src="https://evil.example"></iframe>
"""


async def test_note_with_script_and_javascript_links_is_shown_sanitised(
    db, browser_factory
) -> None:
    w = await make_world(db)
    participant = browser_factory(w.participant_a)
    response = await participant.submit(
        f"{board(w)}/notes", note_form(title="Plan <b>bold</b>", markdown=HOSTILE_NOTE)
    )
    assert response.status_code == 303, response.text
    [item] = await items(db)
    assert item.kind == "note"
    assert item.note_markdown.startswith("# Plan")  # kept as written; sanitised when shown
    assert await db.scalar(select(AuditEntry).where(AuditEntry.action == "evidence.create"))

    for url in (board(w), f"{board(w)}/{item.id}"):
        page = (await browser_factory(w.facilitator_a).get(url)).text
        assert "<script>alert('note')" not in page
        assert "&lt;script&gt;alert" in page  # shown as the text it is
        hrefs = [h.lower() for h in re.findall(r'<a\s[^>]*href="([^"]*)"', page)]
        assert hrefs
        assert not [h for h in hrefs if h.startswith(("javascript:", "data:", "vbscript:"))]
        assert "/signout" not in hrefs
        assert "<img src=x" not in page and '<img src="x"' not in page
        assert "&lt;img src=x onerror=alert(2)&gt;" in page
        assert "<iframe" not in page
        assert 'src="https://tracker.example' not in page  # no pictures from elsewhere
        assert (
            '<a href="https://example.org/a?b=1&amp;c=2" rel="noopener noreferrer nofollow">'
            "fine</a>" in page
        )
        assert "Plan &lt;b&gt;bold&lt;/b&gt;" in page  # the title is escaped too


async def test_markdown_is_rendered_with_headings_below_the_page() -> None:
    html = str(
        render_note(
            "# Big\n\n## Less\n\nSome **bold** and *italic* and `code`.\n\n"
            "- one\n- two\n\n1. first\n\n> quoted\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n"
            "~~gone~~\n\n---\n\n[mail](mailto:team@example.org)"
        )
    )
    assert "<h3>Big</h3>" in html and "<h4>Less</h4>" in html
    assert "<h1>" not in html and "<h2>" not in html
    assert "<strong>bold</strong>" in html and "<em>italic</em>" in html
    assert "<code>code</code>" in html
    assert "<ul>\n<li>one</li>" in html and "<ol>\n<li>first</li>" in html
    assert "<blockquote>" in html and "<hr>" in html and "<s>gone</s>" in html
    assert "<td>1</td>" in html
    assert '<a href="mailto:team@example.org" rel="noopener noreferrer nofollow">mail</a>' in html


def test_plain_text_and_previews() -> None:
    assert note_plain_text("# Title\n\nA *b* `c`\nd\n\n- x\n- y") == "Title\nA b c d\nx\ny"
    short, shortened = note_preview("# Heading\n\nJust **this**.")
    assert not shortened and "<strong>this</strong>" in short
    assert "<h6>Heading</h6>" in short  # below the card's own heading
    long_note = "Start <b>here</b>. " + "word " * 300 + "THE-END"
    preview, shortened = note_preview(long_note)
    assert shortened
    assert "THE-END" not in preview
    assert "&lt;b&gt;here&lt;/b&gt;" in preview  # raw HTML stays text in previews too
    assert preview.endswith("…</p>")


async def test_board_shows_a_preview_and_the_item_page_the_whole_note(db, browser_factory) -> None:
    w = await make_world(db)
    participant = browser_factory(w.participant_a)
    long_note = "First paragraph. " + "more words here " * 100 + "\n\nFinal-sentence-marker."
    await participant.submit(f"{board(w)}/notes", note_form(markdown=long_note))
    [item] = await items(db)
    page = (await participant.get(board(w))).text
    assert "First paragraph." in page
    assert "Final-sentence-marker" not in page
    assert "Read the whole note" in page
    full = (await participant.get(f"{board(w)}/{item.id}")).text
    assert "Final-sentence-marker" in full
    assert 'data-excerpt-source="note"' in full


async def test_note_form_errors_are_tied_to_their_fields_and_nothing_is_saved(
    db, browser_factory
) -> None:
    w = await make_world(db)
    participant = browser_factory(w.participant_a)
    url = f"{board(w)}/notes"

    empty_title = await participant.submit(url, note_form(title="   "))
    assert empty_title.status_code == 400
    assert '<p class="error" id="error-title">Enter a title.</p>' in empty_title.text
    assert re.search(r'id="field-title"[^>]*aria-describedby="\s*error-title"', empty_title.text)
    assert "We talked about **trust**." in empty_title.text  # what they wrote is kept

    # Every problem is listed at once, each linked to its field.
    several = await participant.submit(
        url, note_form(title="", markdown="", visibility="everyone", description="d" * 2001)
    )
    assert several.status_code == 400
    assert "There are 4 problems" in several.text
    for name in ("title", "markdown", "visibility", "description"):
        assert f'href="#field-{name}"' in several.text
        assert f'id="field-{name}"' in several.text

    too_long = await participant.submit(url, note_form(markdown="x" * (NOTE_MAX + 1)))
    assert too_long.status_code == 400
    assert "The note must be at most 20,000 characters" in too_long.text

    empty_note = await participant.submit(url, note_form(markdown=" \n "))
    assert empty_note.status_code == 400 and "Write the note." in empty_note.text

    other_session = await participant.submit(url, note_form(session_id=str(w.other_session.id)))
    assert other_session.status_code == 400
    assert "Choose a session of this programme" in other_session.text

    bad_session = await participant.submit(url, note_form(session_id="1 OR 1=1"))
    assert bad_session.status_code == 400

    bad_visibility = await participant.submit(url, note_form(visibility="everyone"))
    assert bad_visibility.status_code == 400 and "Choose who can see this." in bad_visibility.text

    long_title = await participant.submit(url, note_form(title="t" * 201))
    assert long_title.status_code == 400

    assert await items(db) == []

    # Whitespace in a title is tidied; exactly 200 characters and 20,000 are fine.
    ok = await participant.submit(
        url,
        note_form(
            title="  Our \t  plan " + "t" * 186,
            markdown="y" * NOTE_MAX,
            session_id=str(w.session.id),
            from_trio="1",
        ),
    )
    assert ok.status_code == 303, ok.text
    [item] = await items(db)
    assert item.title == "Our plan " + "t" * 186
    assert item.session_id == w.session.id and item.from_trio
    assert item.uploader_id == w.participant_a.id and item.group_id == w.group_a.id


async def test_links_must_be_web_addresses(db, browser_factory) -> None:
    w = await make_world(db)
    participant = browser_factory(w.participant_a)
    url = f"{board(w)}/links"
    for bad in (
        "javascript:alert(1)",
        "data:text/html,hi",
        "ftp://example.org/file",
        "https://",
        "example.org",
        "https://exa mple.org",
        "https://example.org/" + "a" * 2000,
    ):
        response = await participant.submit(
            url, {"title": "A link", "url": bad, "visibility": "group"}
        )
        assert response.status_code == 400, bad
    assert await items(db) == []
    ok = await participant.submit(
        url, {"title": "Report", "url": "https://example.org/report?x=1", "visibility": "group"}
    )
    assert ok.status_code == 303
    [item] = await items(db)
    page = (await participant.get(board(w))).text
    assert (
        '<a href="https://example.org/report?x=1" rel="noopener noreferrer nofollow">'
        "https://example.org/report?x=1</a>" in page
    )
    assert item.kind == "link"


async def test_editing_a_note_updates_what_search_finds(db, browser_factory) -> None:
    w = await make_world(db)
    session = await make_session(db, w.programme, title="Webinar 2")
    await db.commit()
    participant = browser_factory(w.participant_a)
    await participant.submit(f"{board(w)}/notes", note_form(markdown="about gardens"))
    [item] = await items(db)
    item_url = f"{board(w)}/{item.id}"

    # Another member of the group may read it but not change it.
    teammate = await make_user(db, name="Tess Teammate")
    await add_member(db, w.programme, teammate, Role.PARTICIPANT, w.group_a)
    await db.commit()
    other = browser_factory(teammate)
    assert (await other.get(item_url)).status_code == 200
    assert (await other.submit(f"{item_url}/edit", {"title": "Mine now"})).status_code == 403

    edited = await participant.submit(
        f"{item_url}/edit",
        {
            "title": "Renamed",
            "markdown": "about orchards",
            "description": "described",
            "session_id": str(session.id),
            "visibility": "organisers",
        },
    )
    assert edited.status_code == 303, edited.text
    [item] = await items(db)
    assert (item.title, item.note_markdown, item.visibility) == (
        "Renamed",
        "about orchards",
        "organisers",
    )
    assert item.session_id == session.id and not item.from_trio
    assert "orchards" in item.search_text and "gardens" not in item.search_text
    entry = await db.scalar(select(AuditEntry).where(AuditEntry.action == "evidence.update"))
    assert entry is not None and "note_markdown" in entry.detail["fields"]

    found = (await participant.get(board(w), params={"q": "orchards"})).text
    assert "1 result for" in found and "Renamed" in found
    assert "0 results" in (await participant.get(board(w), params={"q": "gardens"})).text

    bad = await participant.submit(
        f"{item_url}/edit", {"title": "", "markdown": "x", "visibility": "group"}
    )
    assert bad.status_code == 400 and "Enter a title." in bad.text

    # The group's facilitator may edit it too.
    facilitator = browser_factory(w.facilitator_a)
    by_facilitator = await facilitator.submit(
        f"{item_url}/edit", {"title": "Tidied", "markdown": "about orchards", "visibility": "group"}
    )
    assert by_facilitator.status_code == 303
