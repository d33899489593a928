"""Uploading evidence in real Chromium: several files, each with its own progress bar and
its own image description; refusals shown next to the file."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.async_api import expect
from sqlalchemy import select

from app.evidence.models import EvidenceItem
from tests import evidence_files as ef
from tests.e2e.conftest import signed_in_page
from tests.factories import make_world

pytestmark = pytest.mark.e2e


async def test_several_files_with_progress_and_descriptions(
    live_server: Any, plain_db: Any, chromium: Any, tmp_path: Any
) -> None:
    w = await make_world(plain_db)
    await plain_db.commit()
    photo = tmp_path / "wall.jpg"
    photo.write_bytes(ef.jpeg_with_location())
    report = tmp_path / "report.pdf"
    report.write_bytes(ef.PDF[:-6] + b"\n" * (3 * 1024 * 1024) + b"%%EOF\n")
    fake = tmp_path / "fake.png"
    fake.write_bytes(ef.PDF + b"x")
    page = await signed_in_page(chromium, live_server, w.participant_a)
    await page.goto(f"/programmes/{w.programme.id}/groups/{w.group_a.id}/evidence/upload")
    await page.get_by_label("Files").set_input_files([str(photo), str(report), str(fake)])
    rows = page.locator(".upload-item")
    await expect(rows).to_have_count(3)
    # The photo needs a description before anything is sent.
    await page.get_by_role("button", name="Upload").click()
    description = page.get_by_label(re.compile("Describe wall.jpg"))
    await expect(description).to_be_focused()
    await expect(page.locator("[data-upload-status]")).to_contain_text("need attention")
    await description.fill("Sticky notes: be heard, be paid, be believed")
    await page.get_by_label(re.compile("Describe fake.png")).fill("Not really a picture")
    await page.get_by_label("Title").fill("Week 1 wall")
    await page.get_by_role("button", name="Upload").click()
    status = page.locator("[data-upload-status]")
    await expect(status).to_contain_text("2 of 3 uploaded", timeout=20_000)
    await expect(rows.nth(0).locator("progress")).to_have_attribute("value", "100")
    await expect(rows.nth(1).locator("progress")).to_have_attribute("value", "100")
    await expect(rows.nth(2)).to_contain_text("does not contain what its name says")
    await expect(status.get_by_role("link", name="See them on the board")).to_be_visible()
    assert page.js_errors == []

    rows_in_db = (await plain_db.scalars(select(EvidenceItem).order_by(EvidenceItem.id))).all()
    assert [(i.kind, i.title) for i in rows_in_db] == [
        ("image", "Week 1 wall (1 of 3)"),
        ("document", "Week 1 wall (2 of 3)"),
    ]
    assert rows_in_db[0].alt_text.startswith("Sticky notes")
