"""A fault test: 50 people chat in the plenary; the server is killed (SIGKILL) mid-traffic
and started again; everyone reconnects with their last id and re-sends what was not
acknowledged. Then every client has every event exactly once, in order, and every
acknowledged message exactly once."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from app.config import to_async_url
from app.db import make_engine, make_sessionmaker
from app.live import channels
from app.models import Role, User
from realtime import log as event_log
from tests.factories import World, add_member, make_user, make_world
from tests.procs import AppProcess

pytestmark = pytest.mark.parametrize(
    "database_url", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)

PEOPLE = 50
# The chat allows 5 messages in 5 seconds per person. One every 1.5 s stays under it, with
# room for the one more each person sends just before the crash.
PACE_SECONDS = 1.5
CRASH_AFTER_SECONDS = 2.0
# A guard against a hang, not a figure: each message is the composer's form post (a
# request with its cookie, CSRF token and seat to check), which costs the server more than
# the WebSocket frame it once was, and on a shared 2-core machine the run took up to 30 s.
TEST_BUDGET_SECONDS = 45.0


class Participant:
    """One person's browser: a WebSocket that records every chat event of the plenary,
    sends messages with unique client ids (the composer's form post), and remembers which
    were acknowledged."""

    def __init__(self, n: int, user: User, server: AppProcess, path: str, channel: str) -> None:
        self.n = n
        self.user = user
        self.server = server
        self.path = path
        self.channel = channel
        self.ids: list[int] = []  # ids of the chat events received, in arrival order
        self.targets: list[str] = []  # their "m{message id}" targets
        self.htmls: list[str] = []
        self.acked: dict[str, int] = {}  # client id -> message id
        self.unacked: dict[str, str] = {}  # client id -> text, sent and not acknowledged
        self.unacked_at_crash: set[str] = set()
        self.sent = 0
        self._ws: Any = None
        self._reader: asyncio.Task[None] | None = None
        self._http: httpx.AsyncClient | None = None
        self._arrived = asyncio.Event()

    @property
    def cursor(self) -> int:
        return self.ids[-1] if self.ids else 0

    async def connect(self, *, attempts: int = 100) -> None:
        if self._http is not None:
            await self._http.aclose()  # its connections went with the server
        self._http = self.server.client(self.user)
        for attempt in range(attempts):
            try:
                self._ws = await websockets.connect(
                    self.server.ws + self.path + "/ws",
                    additional_headers={"Cookie": self.server.cookie_header(self.user)},
                    open_timeout=5,
                )
                break
            except (OSError, websockets.InvalidHandshake, TimeoutError):
                if attempt == attempts - 1:
                    raise
                await asyncio.sleep(0.1)
        await self._ws.send(json.dumps({"type": "hello", "cursors": {self.channel: self.cursor}}))
        hello = json.loads(await asyncio.wait_for(self._ws.recv(), 10))
        assert hello["t"] == "hello", hello
        self._reader = asyncio.create_task(self._read(self._ws))

    async def _read(self, ws: Any) -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            async for raw in ws:
                message = json.loads(raw)
                if message.get("t") == "chat.message" and message.get("c") == self.channel:
                    self.ids.append(message["i"])
                    self.targets.append(message["x"])
                    self.htmls.append(message["h"])
                    self._arrived.set()

    async def _post(self, client_id: str, text: str) -> httpx.Response:
        assert self._http is not None
        form = {"channel": self.channel, "text": text, "client_id": client_id}
        return await self._http.post(
            self.path + "/chat", data=form, headers={"HX-Request": "true"}, timeout=15
        )

    async def send(self, client_id: str, text: str) -> bool:
        """Send until acknowledged (a refusal for going too fast is retried); False if
        the connection dropped first, leaving the message unacknowledged."""
        self.unacked[client_id] = text
        while True:
            try:
                answer = await self._post(client_id, text)
            except httpx.TransportError:
                return False
            if answer.status_code == 204:
                self.acked[client_id] = int(answer.headers["x-message-id"])
                del self.unacked[client_id]
                return True
            assert answer.status_code == 429, (answer.status_code, answer.text)
            await asyncio.sleep(1.0)

    async def chat_steadily(self, stop: asyncio.Event) -> None:
        """One message every PACE_SECONDS until told to stop."""
        await asyncio.sleep(random.uniform(0, PACE_SECONDS))  # noqa: S311 - spreading load
        while not stop.is_set():
            self.sent += 1
            if not await self.send(f"p{self.n}-{self.sent}", f"Person {self.n}, line {self.sent}"):
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), PACE_SECONDS)

    def last_words(self) -> tuple[str, str]:
        self.sent += 1
        return f"p{self.n}-{self.sent}", f"Person {self.n}, last words {self.sent}"

    async def send_and_lose_the_ack(self, client_id: str, text: str) -> None:
        """A message whose acknowledgement never reaches the sender (the connection
        drops on its way back): the client must treat it as not sent."""
        self.unacked[client_id] = text
        await self._post(client_id, text)  # its answer is lost

    def has_seen(self, text: str) -> bool:
        return any(text in html for html in self.htmls)

    async def resume(self) -> None:
        """Reconnect with the last id, re-send what was not acknowledged, say one more."""
        if self._reader is not None:
            await self._reader
        self.unacked_at_crash = set(self.unacked)
        await self.connect()
        for client_id, text in list(self.unacked.items()):
            assert await self.send(client_id, text), "the restarted server dropped a client"
        await asyncio.sleep(random.uniform(0, 0.5))  # noqa: S311 - spreading load
        self.sent += 1
        assert await self.send(f"p{self.n}-{self.sent}", f"Person {self.n} is back")

    async def wait_until_at(self, head: int, timeout: float = 15.0) -> None:
        async with asyncio.timeout(timeout):
            while self.cursor < head:
                self._arrived.clear()
                await self._arrived.wait()

    async def close(self) -> None:
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            await self._reader
        if self._http is not None:
            await self._http.aclose()


async def seed(database_url: str) -> tuple[World, list[User]]:
    engine = make_engine(to_async_url(database_url))
    try:
        async with make_sessionmaker(engine)() as db:
            world = await make_world(db)
            people = []
            for n in range(PEOPLE):
                person = await make_user(db, name=f"Chatter {n}")
                await add_member(db, world.programme, person, Role.PARTICIPANT)
                people.append(person)
            await db.commit()
    finally:
        await engine.dispose()
    return world, people


async def stored_head(database_url: str, channel: str) -> int:
    engine = make_engine(to_async_url(database_url))
    try:
        async with make_sessionmaker(engine)() as db:
            return await event_log.head(db, channel)
    finally:
        await engine.dispose()


@pytest.fixture
async def server(database_url: str, tmp_path: Path) -> AsyncIterator[AppProcess]:
    process = AppProcess(database_url=database_url, workdir=tmp_path, name="crashing")
    yield process
    await process.stop()


async def test_after_a_crash_every_acknowledged_message_reaches_everyone_exactly_once(
    database_url: str, server: AppProcess
) -> None:
    async with asyncio.timeout(TEST_BUDGET_SECONDS):
        world, people = await seed(database_url)
        path = f"/programmes/{world.programme.id}/sessions/{world.session.id}/live"
        plenary = channels.plenary(world.session.id)
        await server.start_and_wait()
        everyone = [Participant(n, p, server, path, plenary) for n, p in enumerate(people)]
        await asyncio.gather(*(p.connect() for p in everyone))

        stop = asyncio.Event()
        chatting = [asyncio.create_task(p.chat_steadily(stop)) for p in everyone]
        await asyncio.sleep(CRASH_AFTER_SECONDS)
        # On a slow machine, go on until everyone has had a message acknowledged.
        async with asyncio.timeout(10):
            while not all(p.acked for p in everyone):
                await asyncio.sleep(0.05)
        stop.set()
        await asyncio.gather(*chatting)

        # The crash comes at the worst moment. A fifth of the people have a message stored
        # whose acknowledgement they never got...
        unlucky = everyone[::5]
        lost_acks = {p.n: p.last_words() for p in unlucky}
        for p in unlucky:
            await p.send_and_lose_the_ack(*lost_acks[p.n])
        observer = everyone[1]
        async with asyncio.timeout(10):
            while not all(observer.has_seen(text) for _cid, text in lost_acks.values()):
                await asyncio.sleep(0.01)
        # ...and everyone else has one on its way to the server.
        on_the_way = [
            asyncio.create_task(p.send(*p.last_words())) for p in everyone if p not in unlucky
        ]
        await asyncio.sleep(0.03)
        server.kill()
        await asyncio.gather(*on_the_way)  # acknowledged before the kill, or not sent
        stored_at_crash = await stored_head(database_url, plenary)
        acked_before_crash = {cid: mid for p in everyone for cid, mid in p.acked.items()}
        received_before_crash = {p.n: list(p.ids) for p in everyone}

        server.start()
        await server.wait_ready()
        await asyncio.gather(*(p.resume() for p in everyone))
        head = await stored_head(database_url, plenary)
        await asyncio.gather(*(p.wait_until_at(head) for p in everyone))
        await asyncio.sleep(0.3)  # anything extra (a duplicate) would arrive by now
        for p in everyone:
            await p.close()

    all_acked = {cid: mid for p in everyone for cid, mid in p.acked.items()}
    assert all(not p.unacked for p in everyone)
    assert all(lost_acks[p.n][0] in p.unacked_at_crash for p in unlucky)
    # The messages whose acks were lost were stored once, before the crash; sending them
    # again returned the stored message rather than a new one.
    event_of = dict(zip(observer.targets, observer.ids, strict=True))
    for p in unlucky:
        client_id, _text = lost_acks[p.n]
        assert event_of[f"m{all_acked[client_id]}"] <= stored_at_crash
    # Every acknowledged message is stored once, with one event: nothing lost, no twins.
    assert len(set(all_acked.values())) == len(all_acked)
    assert head == len(all_acked) > len(acked_before_crash) + len(unlucky)
    expected_targets = sorted(f"m{mid}" for mid in all_acked.values())
    for p in everyone:
        # Every event exactly once and in order, across the crash and the resume.
        assert p.ids == list(range(1, head + 1)), f"person {p.n} got ids {p.ids}"
        assert p.ids[: len(received_before_crash[p.n])] == received_before_crash[p.n]
        assert sorted(p.targets) == expected_targets, f"person {p.n} saw other messages"
