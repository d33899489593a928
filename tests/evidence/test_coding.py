"""Coding evidence into themes: a whole item, or an excerpt found by positions or by its
words; refusals with clear messages; who may code which group's items; the item page's
coding panel; every coding audited."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.access import load_programme_context
from app.evidence.models import Coding, EvidenceItem, Theme
from app.models import AuditEntry, Group, User
from app.themes import coding as coding_service
from app.themes.coding import CodingRejected
from tests.factories import World, make_world

NOTE = (
    "We talked about **being heard** in meetings.\n\n"
    "- Junior staff rarely speak first\n"
    "- Being heard depends on who chairs\n"
)


async def make_item(
    db: AsyncSession,
    w: World,
    group: Group,
    *,
    title: str = "Notes from the trio",
    note: str = NOTE,
    transcript: str = "",
    **fields: Any,
) -> EvidenceItem:
    item = EvidenceItem(
        programme_id=group.programme_id,
        group_id=group.id,
        uploader_id=w.participant_a.id if group.id == w.group_a.id else w.participant_b.id,
        kind="note",
        title=title,
        note_markdown=note,
        transcript=transcript,
        search_text=f"{title} {note} {transcript}",
        **fields,
    )
    db.add(item)
    await db.commit()
    return item


async def make_theme(
    db: AsyncSession, programme_id: int, name: str, parent: Theme | None = None
) -> Theme:
    theme = Theme(programme_id=programme_id, name=name, parent_id=parent.id if parent else None)
    db.add(theme)
    await db.commit()
    return theme


def item_url(item: EvidenceItem) -> str:
    return f"/programmes/{item.programme_id}/groups/{item.group_id}/evidence/{item.id}"


async def codings_of(db: AsyncSession, item: EvidenceItem) -> list[Coding]:
    rows = await db.scalars(
        select(Coding)
        .where(Coding.item_id == item.id)
        .order_by(Coding.id)
        .execution_options(populate_existing=True)
    )
    return list(rows.all())


def redirect_query(response: Any) -> dict[str, list[str]]:
    assert response.status_code == 303, response.text
    location = urlsplit(response.headers["location"])
    assert location.fragment == "coding"
    return parse_qs(location.query)


async def test_host_codes_whole_item_with_two_themes_and_a_memo(db, browser_factory) -> None:
    w = await make_world(db)
    item = await make_item(db, w, w.group_a)
    power = await make_theme(db, w.programme.id, "Power and hierarchy")
    heard = await make_theme(db, w.programme.id, "Being heard", parent=power)
    host = browser_factory(w.host)
    response = await host.submit(
        f"{item_url(item)}/codings",
        {"theme_ids": [str(power.id), str(heard.id)], "memo": "Key for week 2", "source": ""},
    )
    assert response.headers["location"].startswith(item_url(item) + "?")
    assert redirect_query(response) == {"coding_done": ["added"]}
    codings = await codings_of(db, item)
    assert [(c.theme_id, c.source, c.excerpt, c.memo, c.coder_id) for c in codings] == [
        (power.id, None, "", "Key for week 2", w.host.id),
        (heard.id, None, "", "Key for week 2", w.host.id),
    ]
    entry = await db.scalar(select(AuditEntry).where(AuditEntry.action == "coding.add"))
    assert entry is not None
    assert entry.actor_id == w.host.id
    assert entry.programme_id == w.programme.id
    assert entry.detail["theme_ids"] == [power.id, heard.id]

    # The same coding again is refused rather than counted twice.
    again = await host.submit(f"{item_url(item)}/codings", {"theme_ids": str(power.id)})
    assert redirect_query(again) == {"coding_error": ["already_coded"]}
    assert len(await codings_of(db, item)) == 2


async def test_facilitator_codes_excerpt_by_offsets_and_by_words(db, browser_factory) -> None:
    w = await make_world(db)
    item = await make_item(db, w, w.group_a, transcript="Um, I never get asked what I think.")
    theme = await make_theme(db, w.programme.id, "Being heard")
    facilitator = browser_factory(w.facilitator_a)
    start = NOTE.index("Junior staff")
    end = start + len("Junior staff rarely speak first")
    by_offsets = await facilitator.submit(
        f"{item_url(item)}/codings",
        {"theme_ids": str(theme.id), "source": "note", "start": str(start), "end": str(end)},
    )
    assert redirect_query(by_offsets) == {"coding_done": ["added"]}
    by_words = await facilitator.submit(
        f"{item_url(item)}/codings",
        {"theme_ids": str(theme.id), "source": "transcript", "excerpt": "  never get asked  "},
    )
    assert redirect_query(by_words) == {"coding_done": ["added"]}
    first, second = await codings_of(db, item)
    assert (first.source, first.start_offset, first.end_offset, first.excerpt) == (
        "note",
        start,
        end,
        "Junior staff rarely speak first",
    )
    assert (second.source, second.excerpt) == ("transcript", "never get asked")
    assert item.transcript[second.start_offset : second.end_offset] == "never get asked"
    assert second.coder_id == w.facilitator_a.id


async def test_words_selected_in_rendered_markdown_are_found_in_the_source(db) -> None:
    """A browser's selection loses the Markdown (** and bullets) and counts characters
    differently; the words are still found, nearest the position the page gave."""
    w = await make_world(db)
    item = await make_item(db, w, w.group_a)
    theme = await make_theme(db, w.programme.id, "Being heard")
    rendered = "being heard in meetings.\nJunior staff"
    [coding] = await coding_service.code_item(
        db,
        item=item,
        actor=w.host,
        theme_ids=[theme.id],
        memo="",
        source="note",
        start=14,
        end=14 + len(rendered),
        excerpt=rendered,
    )
    assert coding.excerpt == "being heard** in meetings.\n\n- Junior staff"
    # The same words twice: the occurrence nearest the highlight's position is taken.
    [second] = await coding_service.code_item(
        db,
        item=item,
        actor=w.host,
        theme_ids=[theme.id],
        memo="",
        source="note",
        start=NOTE.index("Being heard depends"),
        end=None,
        excerpt="being heard",
    )
    assert second.start_offset == NOTE.index("Being heard depends")
    assert second.excerpt == "Being heard"


@pytest.mark.parametrize(
    ("form", "code"),
    [
        ({"source": "note", "start": "10", "end": "5"}, "offsets"),
        ({"source": "note", "start": "0", "end": "100000"}, "offsets"),
        ({"source": "note", "start": "-1", "end": "5"}, "offsets"),
        ({"source": "note", "start": "3"}, "offsets"),
        ({"source": "note", "excerpt": "words that are not there"}, "excerpt_not_found"),
        (
            {
                "source": "note",
                "start": str(NOTE.index("\n\n")),
                "end": str(NOTE.index("\n\n") + 2),
            },
            "excerpt_blank",
        ),
        ({"source": "note"}, "excerpt_needed"),
        ({"source": "transcript", "excerpt": "anything"}, "empty_source"),
        ({"source": "search_text", "excerpt": "heard"}, "unknown_source"),
        ({"source": "", "excerpt": "heard"}, "unknown_source"),
        ({"source": "", "memo": "x" * 2001}, "memo_too_long"),
    ],
)
async def test_bad_excerpts_are_refused_with_a_clear_message(
    db, browser_factory, form: dict[str, str], code: str
) -> None:
    w = await make_world(db)
    item = await make_item(db, w, w.group_a)
    theme = await make_theme(db, w.programme.id, "Being heard")
    host = browser_factory(w.host)
    response = await host.submit(f"{item_url(item)}/codings", {"theme_ids": str(theme.id), **form})
    assert redirect_query(response) == {"coding_error": [code]}
    assert await codings_of(db, item) == []
    assert coding_service.error_message(code)  # the item page can say what went wrong


async def test_themes_of_another_programme_or_none_are_refused(db, browser_factory) -> None:
    w = await make_world(db)
    item = await make_item(db, w, w.group_a)
    ours = await make_theme(db, w.programme.id, "Being heard")
    theirs = await make_theme(db, w.other_programme.id, "Elsewhere")
    host = browser_factory(w.host)
    mixed = await host.submit(
        f"{item_url(item)}/codings", {"theme_ids": [str(ours.id), str(theirs.id)]}
    )
    assert redirect_query(mixed) == {"coding_error": ["unknown_theme"]}
    junk = await host.submit(f"{item_url(item)}/codings", {"theme_ids": "1; drop"})
    assert redirect_query(junk) == {"coding_error": ["unknown_theme"]}
    none = await host.submit(f"{item_url(item)}/codings", {"memo": "no themes"})
    assert redirect_query(none) == {"coding_error": ["no_theme"]}
    assert await codings_of(db, item) == []

    with pytest.raises(CodingRejected) as refused:
        await coding_service.code_item(
            db,
            item=item,
            actor=w.host,
            theme_ids=[theirs.id],
            memo="",
            source=None,
            start=None,
            end=None,
        )
    assert refused.value.field == "theme_ids"
    assert "not in this programme's codebook" in refused.value.message


async def test_hidden_items_cannot_be_coded(db) -> None:
    w = await make_world(db)
    from app.db import utcnow

    item = await make_item(db, w, w.group_a, hidden_at=utcnow(), hidden_by_id=w.host.id)
    theme = await make_theme(db, w.programme.id, "Being heard")
    with pytest.raises(CodingRejected, match="hidden"):
        await coding_service.code_item(
            db,
            item=item,
            actor=w.host,
            theme_ids=[theme.id],
            memo="",
            source=None,
            start=None,
            end=None,
        )


async def test_only_the_groups_organisers_code_its_items(db, browser_factory) -> None:
    w = await make_world(db)
    item = await make_item(db, w, w.group_a)
    theme = await make_theme(db, w.programme.id, "Being heard")
    url = f"{item_url(item)}/codings"
    form = {"theme_ids": str(theme.id)}
    # Facilitator of another group and IT support: not their group's space.
    assert (await browser_factory(w.facilitator_b).submit(url, form)).status_code == 403
    assert (await browser_factory(w.it_support).submit(url, form)).status_code == 403
    # The group's own participant sees the item but is no organiser.
    assert (await browser_factory(w.participant_a).submit(url, form)).status_code == 403
    assert (await browser_factory(w.outsider).submit(url, form)).status_code == 404
    # The item through another group's address is not found.
    wrong_group = f"/programmes/{w.programme.id}/groups/{w.group_b.id}/evidence/{item.id}/codings"
    assert (await browser_factory(w.facilitator_b).submit(wrong_group, form)).status_code == 404
    assert await codings_of(db, item) == []
    # An administrator acts as a host.
    admin = await browser_factory(w.admin).submit(url, form)
    assert redirect_query(admin) == {"coding_done": ["added"]}


async def test_remove_coding_is_audited_and_limited_to_the_item(db, browser_factory) -> None:
    w = await make_world(db)
    item = await make_item(db, w, w.group_a)
    other = await make_item(db, w, w.group_a, title="Another note")
    theme = await make_theme(db, w.programme.id, "Being heard")
    [coding] = await coding_service.code_item(
        db,
        item=item,
        actor=w.facilitator_a,
        theme_ids=[theme.id],
        memo="",
        source=None,
        start=None,
        end=None,
    )
    host = browser_factory(w.host)
    wrong_item = await host.submit(f"{item_url(other)}/codings/{coding.id}/delete")
    assert wrong_item.status_code == 404
    as_participant = await browser_factory(w.participant_a).submit(
        f"{item_url(item)}/codings/{coding.id}/delete"
    )
    assert as_participant.status_code == 403
    assert len(await codings_of(db, item)) == 1
    removed = await host.submit(f"{item_url(item)}/codings/{coding.id}/delete")
    assert redirect_query(removed) == {"coding_done": ["removed"]}
    assert await codings_of(db, item) == []
    entry = await db.scalar(select(AuditEntry).where(AuditEntry.action == "coding.remove"))
    assert entry is not None
    assert entry.detail["coding_id"] == coding.id
    assert entry.detail["coder_id"] == w.facilitator_a.id


async def _render_panel(app_and_state, db, item, user: User, **codes: str) -> str:  # type: ignore[no-untyped-def]
    ctx = await load_programme_context(db, user, item.programme_id)
    context = await coding_service.coding_panel_context(db, item=item, ctx=ctx, **codes)
    templates = app_and_state[1].templates
    template = templates.env.get_template("themes/coding_panel.html")
    return str(template.render(item=item, csrf_token="tok", **context))


async def test_coding_panel_lists_codings_and_offers_the_form(db, app_and_state) -> None:
    w = await make_world(db)
    item = await make_item(db, w, w.group_a)
    power = await make_theme(db, w.programme.id, "Power and hierarchy")
    heard = await make_theme(db, w.programme.id, "Being heard", parent=power)
    await coding_service.code_item(
        db,
        item=item,
        actor=w.facilitator_a,
        theme_ids=[heard.id],
        memo="Chair matters",
        source="note",
        start=None,
        end=None,
        excerpt="Being heard depends on who chairs",
    )
    html = await _render_panel(app_and_state, db, item, w.facilitator_a, done_code="added")
    assert "The coding has been added." in html
    # The chip shows the colour and the full name; the coder, memo and excerpt are listed.
    assert 'class="theme-chip theme-colour-blue">Power and hierarchy › Being heard</span>' in html
    assert "Chair matters" in html
    assert "Coded by Fola Facilitator" in html
    assert "Being heard depends on who chairs</blockquote>" in html
    assert f'action="{item_url(item)}/codings/' in html and "/delete" in html
    # The form: a checkbox per theme, sources that have text, excerpt and positions.
    assert f'name="theme_ids" value="{power.id}"' in html
    assert f'name="theme_ids" value="{heard.id}"' in html
    assert '<option value="note">An excerpt of the note</option>' in html
    assert 'value="transcript"' not in html  # this note has no transcript
    assert 'name="excerpt"' in html and 'name="start"' in html
    assert "js/excerpt.js" in html

    refused = await _render_panel(app_and_state, db, item, w.host, error_code="excerpt_not_found")
    assert "We could not find that excerpt" in refused
    assert 'aria-describedby="coding-excerpt-hint coding-excerpt-error"' in refused
    # Participants never see the organisers' codings and memos, even if the page includes it.
    assert "Chair matters" not in await _render_panel(app_and_state, db, item, w.participant_a)
    assert "Chair matters" not in await _render_panel(app_and_state, db, item, w.facilitator_b)
    # An unknown code shows nothing (no text from the address reaches the page).
    spoofed = await _render_panel(app_and_state, db, item, w.host, error_code="<b>Call us</b>")
    assert "Call us" not in spoofed
    assert "was not added" not in spoofed


async def test_item_codings_loads_theme_parent_and_coder(db) -> None:
    w = await make_world(db)
    item = await make_item(db, w, w.group_a)
    power = await make_theme(db, w.programme.id, "Power and hierarchy")
    heard = await make_theme(db, w.programme.id, "Being heard", parent=power)
    await coding_service.code_item(
        db,
        item=item,
        actor=w.host,
        theme_ids=[heard.id],
        memo="",
        source=None,
        start=None,
        end=None,
    )
    db.expunge_all()  # nothing may be lazy-loaded afterwards
    [coding] = await coding_service.item_codings(db, item_id=item.id)
    assert coding.theme.parent is not None
    assert coding.theme.parent.name == "Power and hierarchy"
    assert coding.coder is not None and coding.coder.display_name == "Hana Host"


async def test_item_page_shows_the_panel_and_what_went_wrong(db, browser_factory) -> None:
    """Through the evidence item page, which includes templates/themes/coding_panel.html."""
    w = await make_world(db)
    item = await make_item(db, w, w.group_a)
    theme = await make_theme(db, w.programme.id, "Being heard")
    facilitator = browser_factory(w.facilitator_a)
    refused = await facilitator.submit(
        f"{item_url(item)}/codings",
        {"theme_ids": str(theme.id), "source": "note", "excerpt": "not in the note"},
    )
    page = await facilitator.get(refused.headers["location"])
    assert page.status_code == 200
    assert "We could not find that excerpt in the chosen text." in page.text
    added = await facilitator.submit(
        f"{item_url(item)}/codings",
        {"theme_ids": str(theme.id), "source": "note", "excerpt": "Junior staff"},
    )
    page = await facilitator.get(added.headers["location"])
    assert "The coding has been added." in page.text
    assert "Junior staff</blockquote>" in page.text
    participant = await browser_factory(w.participant_a).get(item_url(item))
    assert participant.status_code == 200
    assert "Add a coding" not in participant.text
    assert "Junior staff</blockquote>" not in participant.text
