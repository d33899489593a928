"""Back-pressure on the embedded default (SQLite): while another connection holds the
database's write lock, chat, hands and help wait a bounded time, then are refused with 503,
Retry-After and words, on every transport; a message whose commit only came late is stored
once when the page sends it again. Nothing is a 500, nothing waits 30 seconds.

The lock is a real one: a second SQLite connection in `BEGIN IMMEDIATE`."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import websockets
from sqlalchemy import func, select

from app.config import Settings
from app.live import channels
from app.live.models import ChatMessage
from tests.conftest import LiveServer
from tests.factories import World, make_world
from tests.live_action_helpers import act, live_path
from tests.live_helpers import LiveClient


@pytest.fixture
def settings(settings: Settings, request: pytest.FixtureRequest) -> Settings:
    # A write waits at most 0.3 s for the lock; a sender 5 s for their commit (longer than
    # the writer's retries take), or in the test of a late commit, 1 s (shorter). In the
    # test of an empty pool: one connection, waited for a tenth of a second.
    wait = 1.0 if "comes_late" in request.node.name else 5.0
    update: dict[str, Any] = {"sqlite_busy_timeout_seconds": 0.3, "chat_wait_seconds": wait}
    if "pool" in request.node.name:
        update |= {"db_pool_size": 1, "db_pool_overflow": 0, "db_pool_timeout_seconds": 0.1}
    return settings.model_copy(update=update)


@contextlib.contextmanager
def write_lock(settings: Settings) -> Iterator[sqlite3.Connection]:
    """Hold SQLite's write lock, as a long write by another process would."""
    path = settings.database_url.split("///", 1)[1]
    # (Taking the lock waits for the app's own writes, however slow a loaded machine is.)
    conn = sqlite3.connect(path, isolation_level=None, timeout=30)
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    finally:
        conn.execute("ROLLBACK")
        conn.close()


async def stored_once(db: Any, client_id: str) -> bool:
    await db.commit()  # a fresh read
    count = await db.scalar(
        select(func.count()).select_from(ChatMessage).where(ChatMessage.client_id == client_id)
    )
    return count == 1


async def test_while_the_database_is_locked_posts_are_refused_with_retry_after(
    live_server: LiveServer, db: Any, settings: Settings
) -> None:
    w: World = await make_world(db)
    path = live_path(w)
    plenary = channels.plenary(w.session.id)
    listener = await LiveClient.connect(live_server, w.host, path, {plenary: None})
    on_ws = await LiveClient.connect(live_server, w.participant_b, path, {plenary: None})
    message = {"text": "Hello all", "client_id": "locked-1", "channel": plenary}
    with write_lock(settings):
        started = time.monotonic()
        chat = await act(live_server, w.participant_a, path + "/chat", message)
        hand = await act(live_server, w.participant_a, path + "/hand", {"action": "raise"})
        help_ = await act(live_server, w.participant_a, path + "/help", {"note": "I am lost"})
        page = await act(
            live_server, w.participant_a, path + "/hand", {"action": "raise"}, hx=False
        )
        ws_answer = await on_ws.chat(plenary, "Hello over the socket", "locked-ws-1")
        waited = time.monotonic() - started
    # Bounded: the writer's three retries and each action's busy timeout, not 30 s.
    assert waited < 8, waited
    for response in (chat, hand, help_):
        assert response.status_code == 503, response.text
        assert response.headers["retry-after"] == "2"
        assert response.headers["content-type"].startswith("text/plain")
        # "... not done yet. Please try again ...", "... yours has not been sent yet."
        assert "yet" in response.text, response.text
    assert page.status_code == 503 and page.headers["retry-after"] == "2"
    assert "Very busy right now" in page.text and "try again in a few seconds" in page.text
    assert ws_answer["t"] == "error" and ws_answer["status"] == 503, ws_answer
    assert ws_answer["retry_after"] == "2" and "not been sent yet" in ws_answer["message"]

    # The lock gone, the page's retries (the same client ids) go through, once each.
    again = await act(live_server, w.participant_a, path + "/chat", message)
    assert again.status_code == 204, again.text
    assert (await on_ws.chat(plenary, "Hello over the socket", "locked-ws-1"))["t"] == "ack"
    raised = await act(live_server, w.participant_a, path + "/hand", {"action": "raise"})
    assert raised.status_code == 200, raised.text
    texts: list[str] = []
    async with asyncio.timeout(5):
        while len(texts) < 2:
            event = await listener.wait_for(lambda m: m.get("t") == "chat.message")
            texts.append(event["h"])
    assert "Hello all" in texts[0] and "Hello over the socket" in texts[1]
    assert [m for m in await listener.quiet(0.3) if m.get("t") == "chat.message"] == []
    assert await stored_once(db, "locked-1") and await stored_once(db, "locked-ws-1")
    await listener.close()
    await on_ws.close()


async def test_a_commit_that_comes_late_is_stored_once_and_the_retry_answered_with_it(
    live_server: LiveServer, db: Any, settings: Settings
) -> None:
    w: World = await make_world(db)
    path = live_path(w)
    plenary = channels.plenary(w.session.id)
    message = {"text": "Still there?", "client_id": "late-1", "channel": plenary}
    with write_lock(settings) as lock:
        # The sender stops waiting after one second; the writer goes on trying its batch
        # (each try waits 0.3 s for the lock, with pauses of 0.05, 0.2 and 0.5 s between:
        # about two seconds), and the lock is given up while it does. (Given up at a fixed
        # time instead, a slow request reached the writer late, and its sender was answered
        # from the commit.)
        first = await act(live_server, w.participant_a, path + "/chat", message)
        lock.execute("ROLLBACK")
        lock.execute("BEGIN")  # for the context manager's own ROLLBACK
    assert first.status_code == 503, first.text
    assert "taking a while" in first.text and first.headers["retry-after"] == "2"
    async with asyncio.timeout(5):
        while not await stored_once(db, "late-1"):
            await asyncio.sleep(0.05)
    again = await act(live_server, w.participant_a, path + "/chat", message)
    assert again.status_code == 204, again.text
    assert await stored_once(db, "late-1")


async def test_with_the_pool_empty_every_transport_is_refused_at_once_and_leaves_nothing(
    live_server: LiveServer, db: Any
) -> None:
    w: World = await make_world(db)
    await db.close()  # the test's own session is not the app's pool
    path = live_path(w)
    plenary = channels.plenary(w.session.id)
    state = live_server.app_state
    hub = state.hub
    following = len(hub.connections)
    async with state.engine.connect() as held, live_server.client(w.participant_a) as http:
        await held.exec_driver_sql("SELECT 1")  # the pool's one connection, held
        started = time.monotonic()
        answers = [
            await http.get(path + "/poll", params={"cursors": f"{plenary}=", "wait": 5}),
            await http.get(path + "/sse", params={"cursors": f"{plenary}="}),
            await http.get(path),
            await http.post(path + "/chat", data={"text": "hi", "client_id": "p1"}),
            await http.get(path + "/poll", headers={"HX-Request": "true"}),
        ]
        api = await http.get("/api/v1/me")
        with pytest.raises(websockets.ConnectionClosed):
            async with websockets.connect(
                live_server.ws + path + "/ws",
                additional_headers={"Cookie": live_server.cookie_header(w.participant_a)},
            ) as ws:
                await ws.send(json.dumps({"type": "hello", "cursors": {plenary: None}}))
                await ws.recv()
        refused_in = time.monotonic() - started
    assert ws.close_code == 1013 and "busy" in (ws.close_reason or "")
    assert refused_in < 5, refused_in  # a tenth of a second each, not 30
    for response in [*answers, api]:
        assert response.status_code == 503, (response.request.url, response.text[:200])
        assert response.headers["retry-after"] == "2"
    assert "Very busy right now" in answers[2].text  # a page, in words
    assert answers[4].text.startswith("So many people")  # the page's own request: a line
    assert "try again in a few seconds" in api.json()["detail"]
    # The connection free again, everything answers.
    async with live_server.client(w.participant_a) as http:
        assert (await http.get(path)).status_code == 200
        # Streams and polls all at once, for the one connection: each answered or refused,
        # and none of them is left following the room.
        streams = await asyncio.gather(
            *(
                http.get(path + "/poll", params={"cursors": f"{plenary}=", "wait": 0})
                for _ in range(30)
            ),
            *(
                http.get(path + "/sse", params={"cursors": f"{plenary}=", "duration": 0})
                for _ in range(30)
            ),
        )
    assert {r.status_code for r in streams} == {200, 503}, Counter(r.status_code for r in streams)
    assert len(hub.connections) == following


async def test_a_recheck_with_the_pool_empty_closes_for_a_reconnect_not_a_fault(
    live_server: LiveServer, db: Any
) -> None:
    """A WebSocket asked to check itself (someone was moved) while the database is too
    busy to say where its person is now closes with 1013, "try again later" (the page
    reconnects and is checked then): it does not go on sending what the person may no
    longer see, and it is not a server error (1011)."""
    w: World = await make_world(db)
    await db.close()
    path = live_path(w)
    plenary = channels.plenary(w.session.id)
    cookie = {"Cookie": live_server.cookie_header(w.participant_a)}
    hub = live_server.app_state.hub
    async with websockets.connect(live_server.ws + path + "/ws", additional_headers=cookie) as ws:
        await ws.send(json.dumps({"type": "hello", "cursors": {plenary: None}}))
        await asyncio.wait_for(ws.recv(), 5)
        async with live_server.app_state.engine.connect() as held:
            await held.exec_driver_sql("SELECT 1")  # the pool's one connection, held
            for connection in tuple(hub.connections):
                connection.recheck_soon()
            with pytest.raises(websockets.ConnectionClosed):
                while True:
                    await asyncio.wait_for(ws.recv(), 5)
    assert ws.close_code == 1013 and "busy" in (ws.close_reason or ""), ws.close_reason
