"""Everyone types in the chat at once, tried as a new user would, on the default SQLite
set-up: 24 people in one room, six of them in real Chromium pages and the others posting
over HTTP together. Every page shows every message, or a polite notice that says to slow
down and that the page is trying again by itself, never an error page. And while the
database is busy (another connection holds its write lock), the page says so in words
and sends the message once the database is free."""

from __future__ import annotations

import asyncio
import re
import sqlite3
from typing import Any

import httpx
import pytest
from playwright.async_api import expect

from app.config import Settings
from app.live import channels
from tests.e2e.conftest import signed_in_page
from tests.factories import add_participants, make_world

pytestmark = pytest.mark.e2e

PAGES = 6
OVER_HTTP = 18
MESSAGES_EACH = 7  # more than the 5 in 5 seconds the chat allows: the last ones wait
TOKEN = re.compile(r"burst-(\w+)-(\d+)-x")


@pytest.fixture
def settings(settings: Settings, request: pytest.FixtureRequest) -> Settings:
    if "busy" in request.node.name:
        # A write waits at most 0.3 s for the lock (then the chat writer's few retries).
        return settings.model_copy(update={"sqlite_busy_timeout_seconds": 0.3})
    return settings  # the default set-up


async def people(plain_db: Any, count: int) -> tuple[Any, list[Any]]:
    w = await make_world(plain_db)
    out = await add_participants(plain_db, w.programme, count, name="Typist")
    await plain_db.commit()
    return w, out


async def open_live(chromium: Any, live_server: Any, user: Any, url: str) -> Any:
    page = await signed_in_page(chromium, live_server, user)
    await page.goto(url)
    await expect(page.locator("#live-status")).to_have_text("Live", timeout=15_000)
    return page


async def type_quickly(page: Any, who: str, notices: set[str]) -> None:
    """Each message as soon as the composer is free again (a refused one stays in it,
    and the page sends it again by itself)."""
    box, error = page.locator("#chat-text"), page.locator("#composer-error")
    for n in range(MESSAGES_EACH):
        for _ in range(300):
            text = (await error.text_content() or "").strip()
            if text:
                notices.add(text)
            if await box.input_value() == "":
                break
            await page.wait_for_timeout(100)
        await box.fill(f"Hi, this is {who} burst-{who}-{n}-x")
        await box.press("Enter")
    await expect(box).to_have_value("", timeout=30_000)


async def post_over_http(client: httpx.AsyncClient, url: str, plenary: str, who: str) -> set[str]:
    async def one(n: int) -> str | None:
        response = await client.post(
            url + "/chat",
            data={"text": f"burst-{who}-{n}-x", "client_id": f"{who}n{n}", "channel": plenary},
            headers={"HX-Request": "true"},
        )
        assert response.status_code in (204, 429), (response.status_code, response.text)
        if response.status_code == 429:
            assert "very quickly" in response.text and response.headers["retry-after"]
            return None
        return f"burst-{who}-{n}-x"

    sent = await asyncio.gather(*(one(n) for n in range(MESSAGES_EACH)))
    return {token for token in sent if token}


async def tokens_on(page: Any) -> set[str]:
    texts = await page.locator(".log .msg").all_text_contents()
    return {m.group(0) for text in texts for m in TOKEN.finditer(text)}


def no_error_page(page: Any, url: str) -> None:
    assert page.url.endswith(url), page.url
    assert page.js_errors == [], page.js_errors


async def test_two_dozen_people_typing_at_once_see_every_message_or_a_polite_notice(
    live_server: Any, plain_db: Any, chromium: Any
) -> None:
    w, everyone = await people(plain_db, PAGES + OVER_HTTP)
    url = f"/programmes/{w.programme.id}/sessions/{w.session.id}/live"
    plenary = channels.plenary(w.session.id)
    async with asyncio.timeout(90):
        pages = [await open_live(chromium, live_server, p, url) for p in everyone[:PAGES]]
        notices: set[str] = set()
        clients = [live_server.client(p) for p in everyone[PAGES:]]
        try:
            results = await asyncio.gather(
                *(type_quickly(page, f"page{i}", notices) for i, page in enumerate(pages)),
                *(
                    post_over_http(client, url, plenary, f"http{i}")
                    for i, client in enumerate(clients)
                ),
            )
        finally:
            for client in clients:
                await client.aclose()
        from_http = set().union(*(r for r in results if isinstance(r, set)))
        from_pages = {f"burst-page{i}-{n}-x" for i in range(PAGES) for n in range(MESSAGES_EACH)}
        expected = from_pages | from_http
        for page in pages:
            for _ in range(100):
                if expected <= await tokens_on(page):
                    break
                await page.wait_for_timeout(100)
            assert expected <= await tokens_on(page), expected - await tokens_on(page)
            no_error_page(page, url)
        # The pages typed faster than allowed: told so, politely, and that they retry.
        slow_down = [n for n in notices if "sending messages very quickly" in n]
        assert slow_down, notices
        assert all("Trying again in" in n for n in slow_down), slow_down
        assert not any("went wrong" in n.lower() for n in notices), notices


async def test_while_the_database_is_busy_the_page_says_so_and_sends_later(
    live_server: Any, plain_db: Any, chromium: Any, settings: Settings
) -> None:
    w, everyone = await people(plain_db, 3)
    url = f"/programmes/{w.programme.id}/sessions/{w.session.id}/live"
    async with asyncio.timeout(60):
        pages = [await open_live(chromium, live_server, p, url) for p in everyone]
        lock = sqlite3.connect(settings.database_url.split("///", 1)[1], isolation_level=None)
        lock.execute("BEGIN IMMEDIATE")  # as a long write elsewhere would
        try:
            for i, page in enumerate(pages):
                await page.locator("#chat-text").fill(f"Waiting burst-busy{i}-0-x")
                await page.locator("#chat-text").press("Enter")
            for page in pages:
                notice = page.locator("#composer-error")
                await expect(notice).to_contain_text("not been sent yet", timeout=15_000)
                await expect(notice).to_contain_text(re.compile(r"Trying again in \d+ seconds"))
        finally:
            lock.execute("ROLLBACK")
            lock.close()
        expected = {f"burst-busy{i}-0-x" for i in range(len(pages))}
        for page in pages:
            await expect(page.locator("#chat-text")).to_have_value("", timeout=15_000)
            await expect(page.locator("#composer-error")).to_have_text("")
            for _ in range(100):
                if expected <= await tokens_on(page):
                    break
                await page.wait_for_timeout(100)
            assert expected <= await tokens_on(page)
            no_error_page(page, url)
