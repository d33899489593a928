"""Scale-out: two real app processes on different ports share PostgreSQL and Redis, as
behind a load balancer. What one process publishes reaches the clients of the other; a
client resumes on either; presence recorded by one is listed by the other."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis import asyncio as aioredis

from app.config import to_async_url
from app.db import make_engine, make_sessionmaker
from app.live import channels
from realtime.redis_broker import PRESENCE_PREFIX, RedisBroker
from tests.conftest import redis_url_or_skip
from tests.factories import World, make_world
from tests.live_helpers import LiveClient
from tests.procs import AppProcess

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.parametrize("database_url", ["postgres"], indirect=True),
]


class Cluster:
    def __init__(self, a: AppProcess, b: AppProcess, world: World) -> None:
        self.a = a
        self.b = b
        self.w = world
        self.path = f"/programmes/{world.programme.id}/sessions/{world.session.id}/live"
        self.plenary = channels.plenary(world.session.id)


@pytest.fixture
async def cluster(database_url: str, tmp_path: Path) -> AsyncIterator[Cluster]:
    """Processes A and B on one (reset and migrated) PostgreSQL database and one Redis."""
    redis_url = redis_url_or_skip()
    engine = make_engine(to_async_url(database_url))
    async with make_sessionmaker(engine)() as db:
        world = await make_world(db)
    await engine.dispose()
    # Ids restart with the database, so an earlier run's presence could name these rooms.
    redis = aioredis.from_url(redis_url)
    try:
        stale = [k async for k in redis.scan_iter(f"{PRESENCE_PREFIX}s{world.session.id}:*")]
        if stale:
            await redis.delete(*stale)
    finally:
        await redis.aclose()
    a = AppProcess(database_url=database_url, redis_url=redis_url, workdir=tmp_path, name="A")
    b = AppProcess(database_url=database_url, redis_url=redis_url, workdir=tmp_path, name="B")
    try:
        a.start()
        b.start()
        await asyncio.gather(a.wait_ready(), b.wait_ready())
        yield Cluster(a, b, world)
    finally:
        await asyncio.gather(a.stop(), b.stop())


class SseClient:
    """Reads a Server-Sent Events stream in the background, keeping each event's data."""

    def __init__(self, server: AppProcess, user: Any, path: str, cursors: str) -> None:
        self.events: list[dict[str, Any]] = []
        self.last_id = ""
        self._arrived = asyncio.Event()
        self._http = server.client(user)
        self._url = path + "/sse"
        self._cursors = cursors
        self._task: asyncio.Task[None] | None = None

    async def open(self) -> SseClient:
        hello = asyncio.get_running_loop().create_future()
        self._task = asyncio.create_task(self._read(hello))
        await asyncio.wait_for(hello, 10)
        return self

    async def _read(self, hello: asyncio.Future[None]) -> None:
        async with self._http.stream("GET", self._url, params={"cursors": self._cursors}) as r:
            assert r.status_code == 200, r.status_code
            async for line in r.aiter_lines():
                if line.startswith("id: "):
                    self.last_id = line.removeprefix("id: ")
                elif line.startswith("data: "):
                    event = json.loads(line.removeprefix("data: "))
                    if event.get("t") == "hello" and not hello.done():
                        hello.set_result(None)
                    self.events.append(event)
                    self._arrived.set()

    async def wait_for_chat(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        async with asyncio.timeout(timeout):
            while len(chat := [e for e in self.events if e.get("t") == "chat.message"]) < count:
                self._arrived.clear()
                await self._arrived.wait()
        return chat

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, httpx.HTTPError):
                await self._task
        await self._http.aclose()


def chat_ids(messages: list[dict[str, Any]]) -> list[int]:
    return [m["i"] for m in messages if m.get("t") == "chat.message"]


async def chat_events(
    client: LiveClient, count: int, timeout: float = 10.0
) -> list[dict[str, Any]]:
    return [
        await client.wait_for(lambda m: m.get("t") == "chat.message", timeout) for _ in range(count)
    ]


async def test_a_message_sent_through_one_process_reaches_clients_on_the_other(
    cluster: Cluster,
) -> None:
    w, plenary = cluster.w, cluster.plenary
    alice = await LiveClient.connect(cluster.a, w.participant_a, cluster.path, {plenary: None})
    bob = await LiveClient.connect(cluster.b, w.participant_b, cluster.path, {plenary: None})
    host = await SseClient(cluster.b, w.host, cluster.path, f"{plenary}=").open()

    ack = await alice.chat(plenary, "Hello from process A", "scale-1")
    assert ack["t"] == "ack"
    for client in (alice, bob):
        (event,) = await chat_events(client, 1)
        assert event["i"] == 1 and "Hello from process A" in event["h"]
        assert event["x"] == f"m{ack['id']}"
    (seen_by_host,) = await host.wait_for_chat(1)
    assert seen_by_host["i"] == 1 and "Hello from process A" in seen_by_host["h"]
    assert host.last_id == f"{plenary}=1"

    # And the other way round, with ids continuing across processes.
    ack = await bob.chat(plenary, "And hello from B", "scale-2")
    assert ack["t"] == "ack"
    for client in (alice, bob):
        (event,) = await chat_events(client, 1)
        assert event["i"] == 2 and "And hello from B" in event["h"]
    assert chat_ids(await host.wait_for_chat(2)) == [1, 2]

    # Exactly once each: nothing more arrives.
    for client in (alice, bob):
        assert chat_ids(await client.quiet(0.5)) == []
    assert chat_ids(host.events) == [1, 2]
    await host.close()
    for client in (alice, bob):
        await client.close()


async def test_a_client_resumes_on_the_other_process_with_exactly_what_it_missed(
    cluster: Cluster,
) -> None:
    w, plenary = cluster.w, cluster.plenary
    alice = await LiveClient.connect(cluster.a, w.participant_a, cluster.path, {plenary: None})
    bob = await LiveClient.connect(cluster.a, w.participant_b, cluster.path, {plenary: None})
    await alice.chat(plenary, "one", "resume-1")
    (seen,) = await chat_events(bob, 1)
    await bob.close()  # Bob's connection to A drops...

    for n, text in enumerate(["two", "three", "four"], start=2):
        assert (await alice.chat(plenary, text, f"resume-{n}"))["t"] == "ack"
    # ...and the load balancer sends him to B, with the last id he had.
    bob = await LiveClient.connect(cluster.b, w.participant_b, cluster.path, {plenary: seen["i"]})
    missed = await chat_events(bob, 3)
    assert [m["i"] for m in missed] == [2, 3, 4]
    assert ["two" in missed[0]["h"], "three" in missed[1]["h"], "four" in missed[2]["h"]] == [
        True
    ] * 3
    # Live again on B for what is then sent through A; no duplicates of the replay.
    await alice.chat(plenary, "five", "resume-5")
    (live,) = await chat_events(bob, 1)
    assert live["i"] == 5 and "five" in live["h"]
    assert chat_ids(await bob.quiet(0.5)) == []

    # The same over Server-Sent Events, resuming on B from the id Bob last had on A.
    sse = await SseClient(cluster.b, w.participant_b, cluster.path, f"{plenary}=3").open()
    assert chat_ids(await sse.wait_for_chat(2)) == [4, 5]
    await sse.close()
    await alice.close()
    await bob.close()


def people_here(event: dict[str, Any]) -> int:
    match = re.search(r"(\d+) (?:person|people) here", event.get("h", ""))
    assert match, event
    return int(match.group(1))


async def test_presence_recorded_through_one_process_is_listed_through_the_other(
    cluster: Cluster,
) -> None:
    w, plenary = cluster.w, cluster.plenary
    alice = await LiveClient.connect(cluster.a, w.participant_a, cluster.path, {plenary: None})
    first = await alice.wait_for(lambda m: m.get("t") == "presence", timeout=10)
    assert people_here(first) == 1

    # B knows Alice (connected to A) is here: its count when Bob arrives includes her,
    # and it reaches Alice on A too.
    bob = await LiveClient.connect(cluster.b, w.participant_b, cluster.path, {plenary: None})
    for client in (bob, alice):
        event = await client.wait_for(
            lambda m: m.get("t") == "presence" and people_here(m) == 2, timeout=10
        )
        assert event["c"] == plenary and event["i"] == 0
    # The host opening the page through B sees both (and herself).
    async with cluster.b.client(w.host) as http:
        page = await http.get(cluster.path)
    assert page.status_code == 200
    assert re.search(r"3\s+people here", page.text), page.text

    # Both are in the shared list, as each process recorded them.
    broker = RedisBroker(redis_url_or_skip())
    try:
        listed = await broker.presence_list(plenary)
    finally:
        await broker.close()
    assert listed == {
        str(w.participant_a.id): w.participant_a.name_with_pronouns,
        str(w.participant_b.id): w.participant_b.name_with_pronouns,
    }
    await alice.close()
    await bob.close()
