"""Weak connections in real Chromium: the participant's room page is light on first load
and comes from the cache the second time, stays quiet while idle, can be joined and
written in quickly on a slow line, and has a text-only mode (bench/pageweight.py measures
the same things at length)."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from playwright.async_api import expect

from app.db import utcnow
from app.live.models import Breakout
from tests.e2e.axe import assert_no_serious_violations
from tests.e2e.conftest import signed_in_page
from tests.factories import World, make_world
from tests.live_action_helpers import act, live_path

pytestmark = pytest.mark.e2e

# The weak connection: 256 kbit/s down, 64 kbit/s up, 800 ms round trip.
THROTTLE = {
    "offline": False,
    "latency": 800,
    "downloadThroughput": 256_000 / 8,
    "uploadThroughput": 64_000 / 8,
}
# What the status line says once the live connection is up.
LIVE = re.compile(r"^Live( \(compatibility mode\))?$")


@dataclass
class Row:
    url: str
    kind: str = ""
    received: int = 0
    finished: bool = False
    from_cache: bool = False
    websocket: bool = False
    frames: list[int] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def over_network(self) -> bool:
        return self.websocket or (not self.from_cache and self.received > 0)


class Traffic:
    """What Chromium's DevTools protocol reports for one page: every request, the bytes
    received for it (headers and body as they crossed the wire) and WebSocket frames."""

    def __init__(self) -> None:
        self.rows: dict[str, Row] = {}

    @classmethod
    async def watch(cls, page: Any, throttle: bool = False) -> Traffic:
        traffic = cls()
        cdp = await page.context.new_cdp_session(page)
        cdp.on("Network.requestWillBeSent", traffic._sent)
        cdp.on("Network.responseReceived", traffic._response)
        cdp.on("Network.requestServedFromCache", traffic._cached)
        cdp.on("Network.dataReceived", traffic._data)
        cdp.on("Network.loadingFinished", traffic._finished)
        cdp.on("Network.webSocketCreated", traffic._ws)
        cdp.on("Network.webSocketFrameReceived", traffic._frame)
        await cdp.send("Network.enable")
        if throttle:
            await cdp.send("Network.emulateNetworkConditions", THROTTLE)
        return traffic

    def _sent(self, e: dict[str, Any]) -> None:
        self.rows[e["requestId"]] = Row(e["request"]["url"], e.get("type", ""))

    def _response(self, e: dict[str, Any]) -> None:
        row = self.rows.get(e["requestId"])
        if row is not None:
            response = e["response"]
            row.headers = {k.lower(): v for k, v in response.get("headers", {}).items()}
            row.received = int(response.get("encodedDataLength", 0))
            row.from_cache = bool(response.get("fromDiskCache") or response.get("fromMemoryCache"))

    def _cached(self, e: dict[str, Any]) -> None:
        if e["requestId"] in self.rows:
            self.rows[e["requestId"]].from_cache = True

    def _data(self, e: dict[str, Any]) -> None:
        row = self.rows.get(e["requestId"])
        if row is not None and not row.finished:
            row.received += int(e.get("encodedDataLength", 0))

    def _finished(self, e: dict[str, Any]) -> None:
        row = self.rows.get(e["requestId"])
        if row is not None:
            row.finished = True
            row.received = int(e.get("encodedDataLength", 0))

    def _ws(self, e: dict[str, Any]) -> None:
        self.rows[e["requestId"]] = Row(e["url"], "WebSocket", websocket=True)

    def _frame(self, e: dict[str, Any]) -> None:
        row = self.rows.get(e["requestId"])
        if row is not None:
            size = len(e["response"].get("payloadData", "").encode())
            row.frames.append(size)
            row.received += size + (2 if size < 126 else 4)

    def network(self) -> list[Row]:
        return [r for r in self.rows.values() if r.over_network]

    def received(self) -> int:
        return sum(r.received for r in self.network())

    def summary(self) -> str:
        return "\n".join(f"{r.received:>7} {r.kind:<10} {r.url}" for r in self.network())


async def world_in_breakout(plain_db: Any) -> World:
    """make_world with the breakout rooms open: participants are in their group's room."""
    w = await make_world(plain_db)
    now = utcnow()
    plain_db.add(Breakout(session_id=w.session.id, opened_at=now, ends_at=now + timedelta(hours=1)))
    await plain_db.commit()
    return w


async def say_something(live_server: Any, w: World, n: int) -> None:
    """A little chat history in group A's room, as a room has when someone joins late."""
    room = f"s{w.session.id}:g{w.group_a.id}"
    async with live_server.client(w.facilitator_a) as http:
        for i in range(n):
            form = {
                "text": f"Welcome, point {i} on the board",
                "channel": room,
                "client_id": f"h{i}",
            }
            response = await http.post(
                live_path(w) + "/chat", data=form, headers={"HX-Request": "true"}
            )
            assert response.status_code == 204, response.text


async def test_room_page_is_light_cached_and_quiet(
    live_server: Any, plain_db: Any, chromium: Any
) -> None:
    w = await world_in_breakout(plain_db)
    await say_something(live_server, w, 4)
    url = live_path(w)
    page = await signed_in_page(chromium, live_server, w.participant_a)

    # First visit, empty cache: at most 60 KB and 10 requests, the live connection included.
    first = await Traffic.watch(page)
    await page.goto(url)
    await expect(page.locator("#room-title")).to_have_text("Group A room")
    await expect(page.locator("#live-status")).to_have_text(LIVE)
    await expect(page.locator(".log .msg")).to_have_count(4)
    await page.wait_for_timeout(500)
    rows = first.network()
    assert first.received() <= 60_000, first.summary()
    assert len(rows) <= 10, first.summary()
    assert [r.kind for r in rows].count("WebSocket") == 1, first.summary()
    # Text comes compressed, and versioned static files may be kept for a year.
    for row in rows:
        if "/static/" in row.url:
            assert row.headers.get("content-encoding") == "gzip", row
            assert "immutable" in row.headers.get("cache-control", ""), row
        elif row.kind == "Document":
            assert row.headers.get("content-encoding") == "gzip", row
    # Nobody here has chosen to speak: the microphone's script is not loaded.
    assert not any("mic" in r.url for r in first.rows.values()), first.summary()

    # Idle: nothing is fetched, and the open connection carries at most a heartbeat.
    sockets = [r for r in rows if r.websocket]
    frames_before = len(sockets[0].frames)
    count_before = len(first.rows)
    await page.wait_for_timeout(6_000)
    assert len(first.rows) == count_before, first.summary()
    idle_frames = sockets[0].frames[frames_before:]
    assert len(idle_frames) <= 1 and all(size <= 32 for size in idle_frames), idle_frames

    assert page.js_errors == [], page.js_errors

    # Second visit in the same browser: static files come from the cache, unasked.
    context = page.context
    await page.close()
    again = await context.new_page()
    errors: list[str] = []
    again.on("pageerror", lambda exc: errors.append(str(exc)))
    second = await Traffic.watch(again)
    await again.goto(url)
    await expect(again.locator("#live-status")).to_have_text(LIVE)
    assert [r.url for r in second.network() if "/static/" in r.url] == [], second.summary()
    statics = [r for r in second.rows.values() if "/static/" in r.url]
    assert statics and all(r.from_cache for r in statics), second.summary()
    assert second.received() <= 12_000, second.summary()
    assert errors == [], errors


async def test_joining_and_writing_on_a_slow_line_takes_under_15_seconds(
    live_server: Any, plain_db: Any, chromium: Any
) -> None:
    w = await world_in_breakout(plain_db)
    await say_something(live_server, w, 2)
    page = await signed_in_page(chromium, live_server, w.participant_a)
    await Traffic.watch(page, throttle=True)

    started = time.monotonic()
    await page.goto(live_path(w), wait_until="commit", timeout=15_000)
    await expect(page.locator("#live-status")).to_have_text(LIVE, timeout=15_000)
    await page.locator("#chat-text").fill("Hello from the bus")
    await page.locator("#chat-text").press("Enter")
    mine = page.locator(".log .msg", has_text="Hello from the bus")
    await expect(mine).to_be_visible(timeout=15_000)
    # Acknowledged: the chat route answered and the composer is empty again.
    await expect(page.locator("#chat-text")).to_have_value("", timeout=15_000)
    took = time.monotonic() - started
    assert took <= 15.0, f"joined and wrote in {took:.1f} s"
    assert page.js_errors == [], page.js_errors


async def test_text_only_mode_shows_chat_and_captions_and_loads_nothing_else(
    live_server: Any, plain_db: Any, chromium: Any
) -> None:
    w = await make_world(plain_db)
    w.participant_a.low_bandwidth = True
    await plain_db.commit()
    url = live_path(w)

    # Priya asked for low bandwidth in her profile: her live page is text only.
    priya = await signed_in_page(chromium, live_server, w.participant_a)
    traffic = await Traffic.watch(priya)
    await priya.goto(url)
    await expect(priya.locator("#live-status")).to_have_text(LIVE)
    await expect(priya.get_by_role("heading", name="Plenary", level=1)).to_be_visible()
    await expect(priya.get_by_role("heading", name="Captions")).to_be_visible()
    await expect(priya.get_by_label("Message to Plenary")).to_be_visible()
    await expect(priya.locator("#mic")).to_have_count(0)
    await expect(priya.get_by_role("heading", name="People here")).to_have_count(0)
    await expect(priya.get_by_role("navigation", name="Main")).to_be_hidden()
    loaded = [r.url for r in traffic.rows.values()]
    assert not any("mic" in u for u in loaded), loaded
    assert not [r for r in traffic.rows.values() if r.kind == "Image"], traffic.summary()
    await assert_no_serious_violations(priya, "live page, text-only mode")
    # She writes as usual.
    await priya.get_by_label("Message to Plenary").fill("Reading along on my phone")
    await priya.get_by_label("Message to Plenary").press("Enter")
    await expect(priya.locator(".log .msg", has_text="Reading along")).to_be_visible()

    # Someone else arriving changes who is here; that is not shown, and not in her chat.
    bob = await signed_in_page(chromium, live_server, w.participant_b)
    await bob.goto(url)
    await expect(bob.locator("#live-status")).to_have_text(LIVE)
    await expect(bob.locator(".presence").first).to_contain_text("2 people here")
    await expect(priya.locator(".presence")).to_have_text("2 people here")
    await expect(priya.locator(".presence")).to_be_hidden()
    await expect(priya.locator(".chat .log > *")).to_have_count(1)

    # She can show everything for this visit without changing her profile...
    await priya.get_by_role("link", name=re.compile("Show everything")).click()
    await expect(priya.locator("#live-status")).to_have_text(LIVE)
    await expect(priya.get_by_role("heading", name="People here")).to_be_visible()
    await expect(priya.get_by_role("heading", name="Your microphone")).to_be_visible()
    await plain_db.refresh(w.participant_a)
    assert w.participant_a.low_bandwidth is True

    # ...and Bob, who has no such preference, can turn it on for this visit; it stays on
    # when the host opens the breakout rooms and his page moves him to his group's room.
    await expect(bob.locator("#mic")).to_have_count(1)
    await bob.get_by_role("link", name=re.compile("Text only")).click()
    await expect(bob.locator("#live-status")).to_have_text(LIVE)
    await expect(bob.locator("#mic")).to_have_count(0)
    response = await act(live_server, w.host, url + "/breakouts/open", {"minutes": 30})
    assert response.status_code == 200, response.text
    await expect(bob.locator("#room-title")).to_have_text("Group B room")
    await expect(bob.locator("#mic")).to_have_count(0)
    await expect(bob.get_by_role("heading", name="People here")).to_have_count(0)
    await expect(bob.get_by_role("link", name=re.compile("Show everything"))).to_be_visible()
    for page in (priya, bob):
        assert page.js_errors == [], page.js_errors
