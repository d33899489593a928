"""A live session in real Chromium: breakouts open and close for everyone, people in the
same group chat, others see nothing of it — over WebSockets and with WebSockets blocked."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.async_api import expect

from tests.e2e.conftest import signed_in_page
from tests.factories import make_world

pytestmark = pytest.mark.e2e


async def block_websockets(page: Any) -> None:
    """As a corporate proxy would: every WebSocket is refused."""

    async def refuse(ws: Any) -> None:
        await ws.close(code=1006, reason="blocked")

    await page.route_web_socket(re.compile(r".*/live/ws$"), refuse)


@pytest.mark.parametrize("websockets_blocked", [False, True], ids=["websocket", "fallback"])
async def test_breakout_chat_and_return_in_the_browser(
    live_server: Any, plain_db: Any, chromium: Any, websockets_blocked: bool
) -> None:
    w = await make_world(plain_db)
    url = f"/programmes/{w.programme.id}/sessions/{w.session.id}/live"
    host = await signed_in_page(chromium, live_server, w.host)
    alice = await signed_in_page(chromium, live_server, w.participant_a)
    fola = await signed_in_page(chromium, live_server, w.facilitator_a)
    bob = await signed_in_page(chromium, live_server, w.participant_b)
    people = [alice, fola, bob]
    for page in [host, *people]:
        if websockets_blocked:
            await block_websockets(page)
        await page.goto(url)
        await expect(page.locator("#room-title")).to_have_text("Plenary")
        expected = "Live (compatibility mode)" if websockets_blocked else "Live"
        await expect(page.locator("#live-status")).to_have_text(expected, timeout=12_000)

    # The host opens breakout rooms; every page switches without a reload.
    await host.get_by_label(re.compile("Minutes", re.I)).first.fill("20")
    await host.get_by_role("button", name=re.compile("Open breakout rooms", re.I)).click()
    await expect(alice.locator("#room-title")).to_have_text("Group A room")
    await expect(fola.locator("#room-title")).to_have_text("Group A room")
    await expect(bob.locator("#room-title")).to_have_text("Group B room")
    await expect(alice.locator(".countdown")).to_have_text(re.compile(r"^(19|20):\d\d$"))

    # Alice writes in her room: her facilitator sees it, Bob in the other room does not.
    # On the WebSocket the message goes as a frame on it; without, as the form's post.
    posts: list[str] = []
    alice.on("request", lambda r: posts.append(r.url) if r.url.endswith("/live/chat") else None)
    await alice.locator("#chat-text").fill("Being heard is the hard part <b>here</b>")
    await alice.locator("#chat-text").press("Enter")
    message = fola.locator(".log .msg", has_text="Being heard is the hard part")
    await expect(message).to_be_visible()
    await expect(message).to_contain_text("<b>here</b>")  # shown as text, not markup
    await expect(alice.locator("#chat-text")).to_have_value("")
    assert len(posts) == (1 if websockets_blocked else 0), posts
    await bob.wait_for_timeout(500)
    await expect(bob.locator(".log .msg", has_text="Being heard")).to_have_count(0)

    # The host closes the rooms with no warning; everyone is back in the plenary.
    await host.get_by_label(re.compile("Warning", re.I)).first.fill("0")
    await host.get_by_role("button", name=re.compile("Close all rooms", re.I)).click()
    for page in people:
        await expect(page.locator("#room-title")).to_have_text("Plenary", timeout=15_000)
    for page in [host, *people]:
        assert page.js_errors == [], page.js_errors


async def test_a_chat_frame_whose_answer_is_lost_is_posted_once_more_and_stored_once(
    live_server: Any, plain_db: Any, chromium: Any
) -> None:
    """The page sends on its WebSocket; the answer never comes back (a proxy that drops it):
    the page posts the same message with the same client id, and it is shown once."""
    w = await make_world(plain_db)
    url = f"/programmes/{w.programme.id}/sessions/{w.session.id}/live"
    alice = await signed_in_page(chromium, live_server, w.participant_a)
    fola = await signed_in_page(chromium, live_server, w.facilitator_a)
    dropped: list[str] = []

    async def drop_answers(route: Any) -> None:
        server = route.connect_to_server()

        def to_page(message: Any) -> None:
            if isinstance(message, str) and message.startswith('{"t":"ack"'):
                dropped.append(message)
            else:
                route.send(message)

        server.on_message(to_page)
        route.on_message(server.send)

    await alice.route_web_socket(re.compile(r".*/live/ws$"), drop_answers)
    posts: list[str] = []
    alice.on("request", lambda r: posts.append(r.url) if r.url.endswith("/live/chat") else None)
    for page in (alice, fola):
        await page.goto(url)
        await expect(page.locator("#live-status")).to_have_text("Live", timeout=12_000)
    await alice.locator("#chat-text").fill("Is anyone there?")
    await alice.locator("#chat-text").press("Enter")
    # Stored and shown at once; the composer keeps it until an answer comes.
    await expect(fola.locator(".log .msg", has_text="Is anyone there?")).to_have_count(1)
    await expect(alice.locator("#chat-text")).to_have_value("Is anyone there?")
    await expect(alice.locator("#chat-text")).to_have_value("", timeout=20_000)
    assert len(dropped) == 1 and len(posts) == 1, (dropped, posts)
    await fola.wait_for_timeout(500)
    await expect(fola.locator(".log .msg", has_text="Is anyone there?")).to_have_count(1)
    await expect(alice.locator(".log .msg", has_text="Is anyone there?")).to_have_count(1)
    for page in (alice, fola):
        assert page.js_errors == [], page.js_errors
