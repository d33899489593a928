"""The stage in real Chromium: the host presents a PDF deck; two viewers follow it, one on
the WebSocket and one with WebSockets blocked; a late joiner starts on the live slide; a
viewer looks back and returns to live; text-only mode reads the slide's text."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.async_api import expect

from tests.e2e import axe
from tests.e2e.conftest import signed_in_page
from tests.e2e.test_accessibility import reflow_problems
from tests.e2e.test_live_in_browser import block_websockets
from tests.factories import make_world
from tests.stage.slide_helpers import upload_deck

pytestmark = pytest.mark.e2e


async def shown_image(page: Any) -> dict[str, Any]:
    """The live slide's image as the page shows it: loaded, and how wide it was fetched."""
    return await page.locator("#stage-live img.slide-image").evaluate(
        "img => ({complete: img.complete, natural: img.naturalWidth, src: img.currentSrc})"
    )


async def test_viewers_follow_the_presenter_on_every_transport(
    live_server: Any, plain_db: Any, chromium: Any
) -> None:
    w = await make_world(plain_db)
    deck_id = await upload_deck(live_server, w.host, w, pages=4, title="Listening well")
    url = f"/programmes/{w.programme.id}/sessions/{w.session.id}/live"
    host = await signed_in_page(chromium, live_server, w.host)
    alice = await signed_in_page(chromium, live_server, w.participant_a)
    bob = await signed_in_page(chromium, live_server, w.participant_b)
    await block_websockets(bob)
    for page in (host, alice, bob):
        await page.goto(url)
    await expect(bob.locator("#live-status")).to_have_text(
        "Live (compatibility mode)", timeout=12_000
    )
    await expect(alice.locator("#live-status")).to_have_text("Live")
    # Nothing is shown yet: viewers see no stage at all.
    await expect(alice.locator("#stage")).to_be_hidden()

    await host.get_by_label("Deck").select_option(str(deck_id))
    await host.get_by_role("button", name="Show this deck").click()
    for page in (alice, bob):
        await expect(page.locator("#stage-live figcaption")).to_contain_text("Slide 1 of 4")
        await expect(page.locator("#stage-status")).to_have_text(
            re.compile(r"^Slide 1 of 4: Slide 1: Why we listen")
        )
    # The presenter steps with the arrow keys, the buttons and the list of slides; the focus
    # stays on the button they pressed.
    await expect(host.locator("#stage-controls")).to_have_attribute("data-number", "1")
    await expect(host.get_by_role("button", name="Show from the start")).to_be_focused()
    await host.keyboard.press("ArrowRight")
    await expect(host.locator("#stage-live")).to_have_attribute("data-number", "2")
    await expect(host.locator("#stage-controls")).to_have_attribute("data-number", "2")
    await host.get_by_role("button", name="Next slide").click()
    await expect(host.locator("#stage-controls")).to_have_attribute("data-number", "3")
    await expect(host.get_by_role("button", name="Next slide")).to_be_focused()
    await host.locator(".thumbnails button", has_text="Slide 4").click()
    for page in (host, alice, bob):
        await expect(page.locator("#stage-live")).to_have_attribute("data-number", "4")
    image = await shown_image(alice)
    assert image["complete"] and image["natural"] > 0 and "/slide-images/" in image["src"]
    await expect(host.locator(".thumbnails [aria-current=true]")).to_contain_text("Slide 4")

    # The stage passes the accessibility checks, for a viewer and for the presenter, and
    # reflows at 320 px and at 200 % text.
    await axe.assert_no_serious_violations(alice, "a viewer's live page with a slide")
    await axe.assert_no_serious_violations(host, "the presenter's live page with its controls")
    assert await reflow_problems(alice, "a viewer's live page with a slide") == []
    await expect(alice.locator("#stage-live")).to_have_attribute("data-number", "4")

    # Alice looks back while the host goes on; "Back to live" brings her to the live slide.
    await alice.get_by_role("button", name="Previous slide").click()
    await expect(alice.locator("#stage-look figcaption")).to_contain_text("Looking back: slide 3")
    await host.keyboard.press("ArrowLeft")
    await expect(bob.locator("#stage-live")).to_have_attribute("data-number", "3")
    await expect(alice.locator("#stage-look")).to_be_visible()
    await expect(alice.locator("#stage-live")).to_be_hidden()
    await alice.get_by_role("button", name="Back to live (slide 3)").click()
    await expect(alice.locator("#stage-live")).to_be_visible()
    await expect(alice.locator("#stage-look")).to_have_count(0)

    # A late joiner, in text-only mode: the slide's text, and no image fetched.
    late = await signed_in_page(chromium, live_server, w.observer)
    slide_images: list[str] = []
    late.on("request", lambda r: slide_images.append(r.url) if ".webp" in r.url else None)
    await late.goto(url + "?text=1")
    await expect(late.locator("#stage-live")).to_have_attribute("data-number", "3")
    await expect(late.locator("#stage-live .slide-text")).to_contain_text("Point 3. People know")
    await expect(late.locator("#stage-live img")).to_be_hidden()
    await late.wait_for_timeout(300)
    assert slide_images == []
    for page in (host, alice, bob, late):
        assert page.js_errors == [], page.js_errors
