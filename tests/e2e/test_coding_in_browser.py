"""Coding an excerpt in real Chromium: words highlighted in the rendered note fill the
coding form (static/js/excerpt.js) and the coding keeps the note's own words."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.async_api import expect
from sqlalchemy import select

from app.evidence.models import Coding, EvidenceItem, Theme
from tests.e2e.conftest import signed_in_page
from tests.factories import make_world

pytestmark = pytest.mark.e2e

NOTE = "We talked about **being heard**.\n\n- Junior staff *rarely* speak first\n- Chairs matter\n"


async def test_highlighting_words_in_the_note_codes_that_excerpt(
    live_server: Any, plain_db: Any, chromium: Any
) -> None:
    w = await make_world(plain_db)
    item = EvidenceItem(
        programme_id=w.programme.id,
        group_id=w.group_a.id,
        uploader_id=w.participant_a.id,
        kind="note",
        title="Trio notes",
        note_markdown=NOTE,
        search_text=NOTE,
    )
    theme = Theme(programme_id=w.programme.id, name="Being heard")
    plain_db.add_all([item, theme])
    await plain_db.commit()
    page = await signed_in_page(chromium, live_server, w.facilitator_a)
    await page.goto(f"/programmes/{w.programme.id}/groups/{w.group_a.id}/evidence/{item.id}")
    # Rendered, the bullet reads "Junior staff rarely speak first": no asterisks, no dash.
    await page.locator('[data-excerpt-source="note"] li').first.click(click_count=3)
    form = page.locator("#coding-form")
    await expect(form.get_by_label("What are you coding?")).to_have_value("note")
    await expect(form.get_by_label("Excerpt", exact=True)).to_have_value(
        "Junior staff rarely speak first"
    )
    await expect(page.locator("#coding-selection")).to_contain_text("Excerpt taken from the note")
    await form.get_by_label("Being heard").check()
    await form.get_by_label("Memo").fill("Seniority decides who speaks")
    await form.get_by_role("button", name="Add the coding").click()
    await expect(page.locator("#coding")).to_contain_text("The coding has been added.")
    assert page.js_errors == []

    coding = await plain_db.scalar(select(Coding).where(Coding.item_id == item.id))
    assert coding is not None
    assert coding.excerpt == "Junior staff *rarely* speak first"
    assert NOTE[coding.start_offset : coding.end_offset] == coding.excerpt
    assert coding.memo == "Seniority decides who speaks"
