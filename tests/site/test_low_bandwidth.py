"""Low bandwidth without a browser: the live page's text-only mode (the profile's
preference, or ?text= for one visit) and the Server-Sent Events heartbeat the page sees.
tests/e2e/test_low_bandwidth.py measures bytes and time in Chromium."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from datetime import timedelta
from typing import Any, cast

from app.db import utcnow
from app.live.models import Breakout
from realtime.connection import HEARTBEAT
from realtime.transport import sse_stream
from tests.factories import make_world


def live_url(w: Any) -> str:
    return f"/programmes/{w.programme.id}/sessions/{w.session.id}/live"


async def test_the_low_bandwidth_preference_makes_the_live_page_text_only(
    db: Any, browser_factory: Any
) -> None:
    w = await make_world(db)
    w.participant_a.low_bandwidth = True
    await db.commit()
    browser = browser_factory(w.participant_a)

    page = await browser.get(live_url(w))
    assert page.status_code == 200
    html = page.text
    assert 'class="pref-low-bandwidth text-only"' in html
    assert 'id="captions"' in html and 'id="composer"' in html
    assert 'id="mic"' not in html and "mic.js" not in html
    assert "People here" not in html and "Raise my hand" not in html
    assert f'href="{live_url(w)}?text=0"' in html
    assert "data-room-url" not in html  # no override: the room follows the profile

    # For this visit only, everything: the microphone and the people come back.
    page = await browser.get(live_url(w) + "?text=0")
    assert 'id="mic"' in page.text and "People here" in page.text
    assert "text-only" not in page.text.split("<body", 1)[1].split(">", 1)[0]
    assert f'data-room-url="{live_url(w)}/room?text=0"' in page.text
    await db.refresh(w.participant_a)
    assert w.participant_a.low_bandwidth is True


async def test_text_only_for_one_visit_survives_a_move_to_another_room(
    db: Any, browser_factory: Any
) -> None:
    w = await make_world(db)
    browser = browser_factory(w.participant_a)
    page = await browser.get(live_url(w))
    assert 'id="mic"' in page.text
    assert f'href="{live_url(w)}?text=1"' in page.text

    page = await browser.get(live_url(w) + "?text=1")
    assert 'id="mic"' not in page.text
    assert f'data-room-url="{live_url(w)}/room?text=1"' in page.text

    # Breakout rooms open: the page fetches its new room from data-room-url.
    now = utcnow()
    db.add(Breakout(session_id=w.session.id, opened_at=now, ends_at=now + timedelta(hours=1)))
    await db.commit()
    room = await browser.get(live_url(w) + "/room?text=1", headers={"HX-Request": "true"})
    assert room.status_code == 200
    assert "Group A room" in room.text
    assert 'id="mic"' not in room.text and 'id="composer"' in room.text
    room = await browser.get(live_url(w) + "/room", headers={"HX-Request": "true"})
    assert 'id="mic"' in room.text


async def test_only_0_or_1_is_a_text_mode(db: Any, browser_factory: Any) -> None:
    w = await make_world(db)
    response = await browser_factory(w.participant_a).get(live_url(w) + "?text=yes")
    assert response.status_code == 422


class QuietConnection:
    """A connection on which nothing happens but one heartbeat."""

    cursors = {"s1:plenary": 7}

    def __init__(self) -> None:
        self.closed = False

    async def next(self, timeout: float) -> list[str]:
        return [HEARTBEAT]

    async def close(self) -> None:
        self.closed = True


async def test_the_sse_heartbeat_is_an_event_the_page_sees() -> None:
    """EventSource hides comments from the page, whose script reconnects when it has seen
    nothing for a minute: the heartbeat must be an event (with no id, so the last id
    stands for a reconnect)."""
    connection = QuietConnection()
    stream = cast(AsyncGenerator[bytes, None], sse_stream(connection, [], max_seconds=60))  # type: ignore[arg-type]
    chunks = [await anext(stream) for _ in range(3)]
    await stream.aclose()
    assert chunks[0] == b"retry: 2000\n\n"
    assert chunks[1].startswith(b"id: s1:plenary=7\ndata: ")
    assert chunks[2] == b'data: {"t":"hb"}\n\n'
    assert len(chunks[2]) < 24
    assert connection.closed
