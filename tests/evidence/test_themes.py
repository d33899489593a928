"""The codebook (create, rename, nest one level, merge, delete), the theme overview with its
filters, and the CSV exports, as hosts, facilitators and others use them."""

from __future__ import annotations

import csv
import io
import re
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import utcnow
from app.evidence.models import Coding, EvidenceItem, Theme
from app.models import AuditEntry, ProgrammeSession, User
from app.themes import coding as coding_service
from app.themes.themes import PALETTE
from tests.evidence.test_coding import make_item, make_theme
from tests.factories import World, make_session, make_world


def base(w: World) -> str:
    return f"/programmes/{w.programme.id}/themes"


def theme_form(name: str, **fields: str) -> dict[str, str]:
    return {"name": name, "description": "", "colour": PALETTE[0].hex, "parent_id": "", **fields}


async def themes_of(db: AsyncSession, w: World) -> dict[str, Theme]:
    rows = await db.scalars(
        select(Theme)
        .where(Theme.programme_id == w.programme.id)
        .execution_options(populate_existing=True)
    )
    return {t.name: t for t in rows.all()}


async def audit_actions(db: AsyncSession) -> list[str]:
    return list((await db.scalars(select(AuditEntry.action).order_by(AuditEntry.id))).all())


async def code(
    db: AsyncSession,
    item: EvidenceItem,
    actor: User,
    *themes: Theme,
    excerpt: str = "",
    memo: str = "",
) -> list[Coding]:
    return await coding_service.code_item(
        db,
        item=item,
        actor=actor,
        theme_ids=[t.id for t in themes],
        memo=memo,
        source="note" if excerpt else None,
        start=None,
        end=None,
        excerpt=excerpt,
    )


def contrast(foreground: str, background: str) -> float:
    def luminance(hex_value: str) -> float:
        channels = [int(hex_value[i : i + 2], 16) / 255 for i in (1, 3, 5)]
        linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
        return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]

    light, dark = sorted([luminance(foreground), luminance(background)], reverse=True)
    return (light + 0.05) / (dark + 0.05)


def test_palette_colours_are_readable_and_styled() -> None:
    from app.config import PROJECT_ROOT

    css = (PROJECT_ROOT / "static" / "css" / "app.css").read_text()
    assert len({c.hex for c in PALETTE}) == len(PALETTE) >= 8
    for colour in PALETTE:
        assert contrast("#ffffff", colour.hex) >= 4.5, colour
        assert contrast("#f3f4f6", colour.hex) >= 4.5, colour  # on panels too
        assert f".theme-colour-{colour.key} {{ --theme-colour: {colour.hex}; }}" in css


async def test_host_and_facilitator_build_the_codebook(db, browser_factory) -> None:
    w = await make_world(db)
    host = browser_factory(w.host)
    facilitator = browser_factory(w.facilitator_a)
    created = await host.submit(
        base(w), theme_form("Power and hierarchy", description="Who decides", colour="#00703C")
    )
    assert created.status_code == 303
    assert created.headers["location"].startswith(f"{base(w)}?done=created#theme-")
    power = (await themes_of(db, w))["Power and hierarchy"]
    assert (power.description, power.colour, power.created_by_id) == (
        "Who decides",
        "#00703c",
        w.host.id,
    )
    child = await facilitator.submit(
        base(w), theme_form("  Being   heard ", parent_id=str(power.id), colour=PALETTE[3].hex)
    )
    assert child.status_code == 303
    heard = (await themes_of(db, w))["Being heard"]
    assert heard.parent_id == power.id

    page = await facilitator.get(base(w))
    assert page.status_code == 200
    assert "Sub-themes of Power and hierarchy" in page.text
    assert 'class="theme-chip theme-colour-purple">Being heard</span>' in page.text
    assert "Who decides" in page.text
    assert "Merge" not in page.text  # facilitators do not merge or delete
    assert f"{base(w)}/{power.id}/delete" not in page.text
    host_page = await host.get(base(w))
    assert f"{base(w)}/{power.id}/delete" in host_page.text
    assert f'action="{base(w)}/{heard.id}/merge"' in host_page.text

    # Rename and move to the top level: an edit.
    renamed = await facilitator.submit(
        f"{base(w)}/{heard.id}/edit", theme_form("Having a voice", description="Speaking up")
    )
    assert renamed.status_code == 303
    voice = (await themes_of(db, w))["Having a voice"]
    assert (voice.id, voice.parent_id, voice.description) == (heard.id, None, "Speaking up")
    update = await db.scalar(select(AuditEntry).where(AuditEntry.action == "theme.update"))
    assert update is not None and update.actor_id == w.facilitator_a.id
    assert update.detail["changes"]["name"] == {"from": "Being heard", "to": "Having a voice"}
    assert await audit_actions(db) == ["theme.create", "theme.create", "theme.update"]


async def test_codebook_refuses_bad_names_nesting_and_colours(db, browser_factory) -> None:
    w = await make_world(db)
    power = await make_theme(db, w.programme.id, "Power and hierarchy")
    heard = await make_theme(db, w.programme.id, "Being heard", parent=power)
    elsewhere = await make_theme(db, w.other_programme.id, "Elsewhere")
    host = browser_factory(w.host)

    async def refused(url: str, form: dict[str, str], field: str, message: str) -> None:
        response = await host.submit(url, form)
        assert response.status_code == 400, form
        assert message in response.text
        prefix = "new" if url == base(w) else f"theme-{url.split('/')[-2]}"
        assert f'aria-describedby="{prefix}-{field}-hint {prefix}-{field}-error"' in response.text
        assert f'href="#{prefix}-{field}"' in response.text  # the summary links to the field

    await refused(base(w), theme_form(""), "name", "Enter a name for the theme.")
    await refused(base(w), theme_form("x" * 81), "name", "at most 80 characters")
    await refused(base(w), theme_form("POWER AND hierarchy"), "name", "already a theme called")
    await refused(
        base(w),
        theme_form("being HEARD", parent_id=str(power.id)),
        "name",
        "There is already a theme called “Being heard” under “Power and hierarchy”.",
    )
    await refused(
        base(w), theme_form("Deeper", parent_id=str(heard.id)), "parent_id", "nest one level only"
    )
    await refused(
        base(w),
        theme_form("Abroad", parent_id=str(elsewhere.id)),
        "parent_id",
        "Choose a theme of this programme",
    )
    await refused(
        f"{base(w)}/{power.id}/edit",
        theme_form("Power and hierarchy", parent_id=str(power.id)),
        "parent_id",
        "cannot be its own sub-theme",
    )
    other_top = await make_theme(db, w.programme.id, "Belonging")
    await refused(
        f"{base(w)}/{power.id}/edit",
        theme_form("Power and hierarchy", parent_id=str(other_top.id)),
        "parent_id",
        "has sub-themes of its own",
    )
    response = await host.submit(base(w), theme_form("Red", colour="#ff0000"))
    assert response.status_code == 400
    assert "Choose one of the colours listed." in response.text
    # The same name under a different parent is fine.
    ok = await host.submit(base(w), theme_form("Being heard", parent_id=str(other_top.id)))
    assert ok.status_code == 303
    names = await db.scalars(
        select(Theme.name).where(Theme.programme_id == w.programme.id).order_by(Theme.name)
    )
    assert list(names.all()) == [
        "Being heard",
        "Being heard",
        "Belonging",
        "Power and hierarchy",
    ]


async def test_merge_moves_codings_and_sub_themes(db, browser_factory) -> None:
    w = await make_world(db)
    item = await make_item(db, w, w.group_a)
    second = await make_item(db, w, w.group_b, title="Poster notes")
    voice = await make_theme(db, w.programme.id, "Voice")
    voice_meetings = await make_theme(db, w.programme.id, "In meetings", parent=voice)
    voice_chairs = await make_theme(db, w.programme.id, "Chairs", parent=voice)
    power = await make_theme(db, w.programme.id, "Power")
    power_meetings = await make_theme(db, w.programme.id, "in meetings", parent=power)
    await code(db, item, w.host, voice, memo="Whole note")  # power already has this one
    await code(db, item, w.host, power)
    await code(db, item, w.host, voice, excerpt="Junior staff rarely speak first")
    await code(db, second, w.facilitator_b, voice)
    await code(db, item, w.host, voice_meetings)
    await code(db, item, w.host, power_meetings)

    host = browser_factory(w.host)
    facilitator = browser_factory(w.facilitator_a)
    url = f"{base(w)}/{voice.id}/merge"
    assert (await facilitator.submit(url, {"target_id": str(power.id)})).status_code == 403
    # A theme with sub-themes cannot go under a sub-theme.
    refused = await host.submit(url, {"target_id": str(power_meetings.id)})
    assert refused.status_code == 400
    assert "themes nest one level only" in refused.text
    assert (await host.submit(url, {"target_id": str(voice.id)})).status_code == 400
    assert (await host.submit(url, {"target_id": "x"})).status_code == 400

    merged = await host.submit(url, {"target_id": str(power.id)})
    assert merged.status_code == 303
    page = await host.get(merged.headers["location"])
    assert "2 codings moved, 2 duplicate codings left out, 2 sub-themes moved" in page.text

    themes = await themes_of(db, w)
    assert "Voice" not in themes
    assert themes["Chairs"].parent_id == power.id  # moved under the target
    assert "In meetings" not in themes  # merged into the target's "in meetings"
    rows = (
        await db.execute(
            select(Coding.item_id, Coding.theme_id, Coding.source, Coding.memo)
            .order_by(Coding.item_id, Coding.theme_id, Coding.id)
            .execution_options(populate_existing=True)
        )
    ).all()
    assert sorted(rows, key=str) == sorted(
        [
            (item.id, power.id, None, "Whole note"),  # the dropped duplicate's memo is kept
            (item.id, power.id, "note", ""),
            (second.id, power.id, None, ""),
            (item.id, power_meetings.id, None, ""),
        ],
        key=str,
    )
    entry = await db.scalar(select(AuditEntry).where(AuditEntry.action == "theme.merge"))
    assert entry is not None
    assert entry.detail["codings_moved"] == 2
    assert entry.detail["duplicates_dropped"] == 2
    assert entry.detail["merged_name"] == "Voice"
    assert voice_chairs.id == themes["Chairs"].id


async def test_delete_theme_with_its_codings_after_confirming(db, browser_factory) -> None:
    w = await make_world(db)
    item = await make_item(db, w, w.group_a)
    power = await make_theme(db, w.programme.id, "Power")
    heard = await make_theme(db, w.programme.id, "Being heard", parent=power)
    other = await make_theme(db, w.other_programme.id, "Elsewhere")
    await code(db, item, w.host, heard)
    host = browser_factory(w.host)
    facilitator = browser_factory(w.facilitator_a)
    assert (await facilitator.get(f"{base(w)}/{heard.id}/delete")).status_code == 403
    assert (await facilitator.submit(f"{base(w)}/{heard.id}/delete")).status_code == 403
    # A theme with sub-themes is not deleted (merging keeps them).
    parent_page = await host.get(f"{base(w)}/{power.id}/delete")
    assert "cannot be deleted" in parent_page.text
    assert (await host.submit(f"{base(w)}/{power.id}/delete")).status_code == 400
    confirm = await host.get(f"{base(w)}/{heard.id}/delete")
    assert confirm.status_code == 200
    assert "Delete the theme “Power › Being heard”?" in confirm.text
    assert "Delete the theme and its 1 coding" in confirm.text
    deleted = await host.submit(f"{base(w)}/{heard.id}/delete")
    assert deleted.status_code == 303
    assert "with 1 coding" in (await host.get(deleted.headers["location"])).text
    assert set(await themes_of(db, w)) == {"Power"}
    assert await db.get(Theme, other.id) is not None
    assert (await db.scalars(select(Coding))).all() == []
    entry = await db.scalar(select(AuditEntry).where(AuditEntry.action == "theme.delete"))
    assert entry is not None and entry.detail["codings_deleted"] == 1
    assert (await host.get(f"{base(w)}/{other.id}/delete")).status_code == 404


@pytest.mark.parametrize(
    "path",
    ["", "/overview", "/codings.csv", "/codebook.csv"],
    ids=["codebook", "overview", "codings", "codebook_csv"],
)
async def test_only_hosts_and_facilitators_see_themes(db, browser_factory, path: str) -> None:
    w = await make_world(db)
    url = base(w) + path
    for user in (w.participant_a, w.observer, w.it_support):
        assert (await browser_factory(user).get(url)).status_code == 403, user.display_name
    assert (await browser_factory(w.outsider).get(url)).status_code == 404
    anonymous = await browser_factory().get(url)
    assert anonymous.status_code == 303 and "/signin" in anonymous.headers["location"]
    for user in (w.host, w.facilitator_a, w.admin):
        assert (await browser_factory(user).get(url)).status_code == 200
    refused = await browser_factory(w.participant_a).submit(base(w), theme_form("Sneaky"))
    assert refused.status_code == 403
    assert await themes_of(db, w) == {}


async def overview_world(db: AsyncSession) -> tuple[World, ProgrammeSession, dict[str, Any]]:
    """Two groups, two sessions, trio and plenary items, a hidden item, themes with a child."""
    w = await make_world(db)
    week2 = await make_session(db, w.programme, title="Webinar 2", days_ahead=14)
    power = await make_theme(db, w.programme.id, "Power")
    heard = await make_theme(db, w.programme.id, "Being heard", parent=power)
    belonging = await make_theme(db, w.programme.id, "Belonging")
    a1 = await make_item(
        db, w, w.group_a, title="A trio note", session_id=w.session.id, from_trio=True
    )
    a2 = await make_item(db, w, w.group_a, title="A plenary note", session_id=week2.id)
    b1 = await make_item(
        db,
        w,
        w.group_b,
        title="B trio note",
        note='=HYPERLINK("http://x") was on the flipchart',
        session_id=w.session.id,
        from_trio=True,
    )
    hidden = await make_item(db, w, w.group_b, title="Hidden note")
    await code(db, a1, w.facilitator_a, power)
    await code(db, a1, w.facilitator_a, heard, excerpt="Junior staff rarely speak first")
    await code(db, a1, w.facilitator_a, heard, excerpt="Being heard depends on who chairs")
    await code(db, a2, w.host, belonging, memo="Plenary reflection")
    await code(db, b1, w.facilitator_b, heard, excerpt='=HYPERLINK("http://x")')
    await code(db, hidden, w.host, power)  # hidden items are left out everywhere
    # Coded while visible, hidden afterwards.
    hidden.hidden_at = utcnow()
    hidden.hidden_by_id = w.host.id
    await db.commit()
    themes = {"power": power, "heard": heard, "belonging": belonging}
    return w, week2, {"themes": themes, "items": {"a1": a1, "a2": a2, "b1": b1}}


class CountTable:
    """A counts table of the overview page as {row heading: {column heading: cell text}}."""

    def __init__(self, html: str, table_id: str) -> None:
        match = re.search(rf'<table class="theme-counts" id="{table_id}">(.*?)</table>', html, re.S)
        assert match, table_id
        table = match.group(1)

        def text(cell: str) -> str:
            return " ".join(re.sub(r"<[^>]+>", " ", cell).split())

        self.columns = [text(c) for c in re.findall(r'<th scope="col">(.*?)</th>', table, re.S)]
        self.rows: dict[str, dict[str, str]] = {}
        for row in re.findall(r"<tr[^>]*>(.*?)</tr>", table, re.S)[1:]:
            heading = text(re.search(r'<th scope="row">(.*?)</th>', row, re.S).group(1))  # type: ignore[union-attr]
            cells = [text(c) for c in re.findall(r"<td>(.*?)</td>", row, re.S)]
            self.rows[heading] = dict(zip(self.columns[1:], cells, strict=True))


@pytest.mark.parametrize(
    "database_url", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
async def test_overview_counts_by_group_and_session_with_filters(db, browser_factory) -> None:
    w, week2, data = await overview_world(db)
    host = browser_factory(w.host)
    page = await host.get(f"{base(w)}/overview")
    assert page.status_code == 200
    by_group = CountTable(page.text, "counts-by-group")
    assert by_group.columns == ["Theme", "Group A", "Group B", "Total"]
    # Cells read "items / excerpts"; Power counts its sub-theme Being heard.
    assert by_group.rows["Power"] == {
        "Group A": "1 item / 2 excerpts",
        "Group B": "1 item / 1 excerpt",
        "Total": "2 items / 3 excerpts",
    }
    assert by_group.rows["› Sub-theme: Being heard"] == {
        "Group A": "1 item / 2 excerpts",
        "Group B": "1 item / 1 excerpt",
        "Total": "2 items / 3 excerpts",
    }
    assert by_group.rows["Belonging"]["Group A"] == "1 item / 0 excerpts"
    assert by_group.rows["Belonging"]["Group B"] == "0 items"
    assert by_group.rows["All themes"] == {
        "Group A": "2 items / 2 excerpts",
        "Group B": "1 item / 1 excerpt",
        "Total": "3 items / 3 excerpts",
    }
    by_session = CountTable(page.text, "counts-by-session")
    assert by_session.columns == ["Theme", "Webinar 1", "Webinar 2", "Total"]
    assert by_session.rows["Power"]["Webinar 1"] == "2 items / 3 excerpts"
    assert by_session.rows["Belonging"]["Webinar 2"] == "1 item / 0 excerpts"
    assert "Hidden note" not in page.text
    assert "<caption>Items and excerpts coded with each theme, by group." in page.text
    # Passages under each theme, with links back to their items.
    a1 = data["items"]["a1"]
    assert (
        f'href="/programmes/{w.programme.id}/groups/{w.group_a.id}/evidence/{a1.id}"' in page.text
    )
    assert "Junior staff rarely speak first</blockquote>" in page.text
    assert "Plenary reflection" in page.text

    trio = CountTable((await host.get(f"{base(w)}/overview?trio=yes")).text, "counts-by-group")
    assert "Belonging" in trio.rows and trio.rows["Belonging"]["Total"] == "0 items"
    assert trio.rows["All themes"]["Total"] == "2 items / 3 excerpts"
    not_trio = CountTable((await host.get(f"{base(w)}/overview?trio=no")).text, "counts-by-group")
    assert not_trio.rows["All themes"]["Total"] == "1 item / 0 excerpts"

    week2_page = await host.get(f"{base(w)}/overview?session_id={week2.id}")
    week2_sessions = CountTable(week2_page.text, "counts-by-session")
    assert week2_sessions.columns == ["Theme", "Webinar 2", "Total"]
    assert week2_sessions.rows["All themes"]["Total"] == "1 item / 0 excerpts"

    group_b = await host.get(
        f"{base(w)}/overview?group_id={w.group_b.id}&session_id={w.session.id}"
    )
    only_b = CountTable(group_b.text, "counts-by-group")
    assert only_b.columns == ["Theme", "Group B", "Total"]
    assert only_b.rows["All themes"]["Total"] == "1 item / 1 excerpt"
    assert "Junior staff" not in group_b.text

    bad = await host.get(f"{base(w)}/overview?group_id={w.other_group.id}&trio=maybe")
    assert bad.status_code == 400
    assert "Choose one of the groups listed." in bad.text
    assert 'aria-describedby="filter-group_id-error"' in bad.text


async def test_facilitator_sees_only_their_groups(db, browser_factory) -> None:
    w, _week2, _data = await overview_world(db)
    facilitator = browser_factory(w.facilitator_a)
    page = await facilitator.get(f"{base(w)}/overview")
    table = CountTable(page.text, "counts-by-group")
    assert table.columns == ["Theme", "Group A", "Total"]
    assert "HYPERLINK" not in page.text and "B trio note" not in page.text
    assert "You see the groups you facilitate." in page.text
    other = await facilitator.get(f"{base(w)}/overview?group_id={w.group_b.id}")
    assert other.status_code == 400
    assert "B trio note" not in other.text
    exported = await facilitator.get(f"{base(w)}/codings.csv")
    rows = list(csv.DictReader(io.StringIO(exported.text.lstrip("\ufeff"))))
    assert {r["group"] for r in rows} == {"Group A"}
    assert (
        await facilitator.get(f"{base(w)}/codings.csv?group_id={w.group_b.id}")
    ).status_code == 400
    codebook = list(
        csv.DictReader(
            io.StringIO((await facilitator.get(f"{base(w)}/codebook.csv")).text.lstrip("\ufeff"))
        )
    )
    heard = next(r for r in codebook if r["theme"] == "Power › Being heard")
    assert (heard["items coded"], heard["excerpts coded"]) == ("1", "2")  # Group B's left out


async def test_codings_csv_has_one_row_per_coding_and_is_formula_safe(db, browser_factory) -> None:
    w, _week2, data = await overview_world(db)
    host = browser_factory(w.host)
    response = await host.get(f"{base(w)}/codings.csv")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.headers["content-disposition"].startswith(
        'attachment; filename="inclusive-leadership-codings-'
    )
    rows = list(csv.DictReader(io.StringIO(response.text.lstrip("\ufeff"))))
    assert len(rows) == 5  # the hidden item's coding is left out
    # The codebook's order: top-level themes by name, each followed by its sub-themes.
    assert [r["theme"] for r in rows] == [
        "Belonging",
        "Power",
        "Power › Being heard",
        "Power › Being heard",
        "Power › Being heard",
    ]
    a1 = data["items"]["a1"]
    first = rows[1]
    assert first == {
        "theme": "Power",
        "parent theme": "",
        "group": "Group A",
        "session": "Webinar 1",
        "item id": str(a1.id),
        "item title": "A trio note",
        "item kind": "Typed note",
        "from trio": "yes",
        "source": "The whole item",
        "excerpt": "",
        "memo": "",
        "coder": "Fola Facilitator",
        "coded at (UTC)": first["coded at (UTC)"],
        "item URL": f"http://testserver/programmes/{w.programme.id}/groups/{w.group_a.id}/evidence/{a1.id}",
    }
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", first["coded at (UTC)"])
    formula = next(r for r in rows if r["group"] == "Group B")
    assert formula["excerpt"] == '\'=HYPERLINK("http://x")'
    assert formula["parent theme"] == "Power"
    assert formula["source"] == "The note"

    filtered = await host.get(f"{base(w)}/codings.csv?trio=no")
    assert [r["theme"] for r in csv.DictReader(io.StringIO(filtered.text.lstrip("\ufeff")))] == [
        "Belonging"
    ]
    assert (await host.get(f"{base(w)}/codings.csv?session_id=abc")).status_code == 400


async def test_codebook_csv(db, browser_factory) -> None:
    w, _week2, data = await overview_world(db)
    data["themes"]["belonging"].description = "=cmd|' /C calc'!A0"
    await db.commit()
    response = await browser_factory(w.host).get(f"{base(w)}/codebook.csv")
    assert response.status_code == 200
    assert "codebook" in response.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(response.text.lstrip("\ufeff"))))
    assert rows == [
        ["theme", "parent", "description", "colour", "items coded", "excerpts coded"],
        ["Belonging", "", "'=cmd|' /C calc'!A0", "Blue", "1", "0"],
        ["Power", "", "", "Blue", "1", "0"],
        ["Power › Being heard", "Power", "", "Blue", "2", "3"],
    ]


async def test_empty_overview_explains_what_to_do(db, browser_factory) -> None:
    w = await make_world(db)
    host = browser_factory(w.host)
    empty = await host.get(f"{base(w)}/overview")
    assert "The codebook is empty." in empty.text
    await make_theme(db, w.programme.id, "Power")
    uncoded = await host.get(f"{base(w)}/overview")
    assert "Nothing has been coded yet." in uncoded.text
    filtered = await host.get(f"{base(w)}/overview?trio=yes")
    assert "Nothing coded matches these filters." in filtered.text


async def test_programme_page_links_to_themes_for_organisers(db, browser_factory) -> None:
    w = await make_world(db)
    link = f'href="{base(w)}/overview"'
    assert link in (await browser_factory(w.host).get(f"/programmes/{w.programme.id}")).text
    assert (
        link in (await browser_factory(w.facilitator_a).get(f"/programmes/{w.programme.id}")).text
    )
    assert (
        link
        not in (await browser_factory(w.participant_a).get(f"/programmes/{w.programme.id}")).text
    )
