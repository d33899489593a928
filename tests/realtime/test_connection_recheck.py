"""A live connection asked to check itself again (realtime/connection.py): the message on
its signal channel, what the app answers, and the check it makes now and then by itself."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Mapping
from typing import Any

import pytest

from app.state import AppState
from realtime import log as event_log
from realtime.broker import InProcessBroker
from realtime.connection import AccessEnded, Connection
from realtime.hub import RECHECK, Hub

SIGNALS = "u1"


@pytest.fixture
async def hub(app_and_state: tuple[Any, AppState]) -> AsyncIterator[Hub]:
    hub = Hub(InProcessBroker(), app_and_state[1].sessionmaker)
    await hub.start(heartbeat_seconds=0.05)
    yield hub
    await hub.stop()


async def publish(hub: Hub, channel: str, text: str) -> None:
    """Store an event in the channel's log and publish it, as an outbox does."""
    async with hub.sessionmaker() as db:
        seq = await event_log.next_id(db, channel)
        wire = json.dumps({"c": channel, "i": seq, "t": "chat.message", "h": text})
        db.add(event_log.LiveEvent(channel=channel, seq=seq, type="chat.message", wire=wire))
        await db.commit()
    await hub.broker.publish(channel, f"{seq}|{wire}")


async def texts(connection: Connection, seconds: float = 0.3) -> list[str]:
    out: list[str] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while (left := deadline - loop.time()) > 0:
        for wire in await connection.next(timeout=left) or []:
            event = json.loads(wire)
            if event.get("t") == "chat.message":
                out.append(event["h"])
    return out


async def test_a_recheck_moves_a_connection_that_does_not_follow_its_signal_channel(
    hub: Hub,
) -> None:
    asked: list[dict[str, int]] = []

    async def recheck(cursors: Mapping[str, int]) -> dict[str, int | None]:
        asked.append(dict(cursors))
        return {"s1:g2": None}

    connection = Connection(hub, member="1", signals=SIGNALS, recheck=recheck)
    await connection.follow({"s1:g1": None})
    await publish(hub, "s1:g1", "in room 1")
    assert await texts(connection) == ["in room 1"]

    await hub.broker.publish(SIGNALS, RECHECK)
    # The transport's sending side, waiting for the next thing to send, checks at once.
    assert await connection.next(timeout=1) == []
    await publish(hub, "s1:g1", "room 1 again")
    await publish(hub, "s1:g2", "in room 2")
    assert await texts(connection) == ["in room 2"]
    assert asked == [{"s1:g1": 1}]
    assert hub.listener_count("s1:g1") == 0
    await connection.close()
    assert hub.listener_count(SIGNALS) == 0 and hub.listener_count("s1:g2") == 0


async def test_a_recheck_that_ends_access_ends_the_connection(hub: Hub) -> None:
    async def recheck(cursors: Mapping[str, int]) -> dict[str, int | None]:
        raise AccessEnded("signed out: sign in again")

    connection = Connection(hub, member="1", signals=SIGNALS, recheck=recheck)
    await connection.follow({"s1:plenary": None})
    await hub.broker.publish(SIGNALS, RECHECK)
    with pytest.raises(AccessEnded, match="sign in again"):
        await connection.next(timeout=1)
    await connection.close()


async def test_a_connection_that_hears_nothing_checks_itself_now_and_then(hub: Hub) -> None:
    checks = 0

    async def recheck(cursors: Mapping[str, int]) -> Mapping[str, int | None]:
        nonlocal checks
        checks += 1
        return cursors

    connection = Connection(hub, member="1", recheck=recheck, recheck_every=0.2)
    await connection.follow({"s1:plenary": None})
    await texts(connection, 0.7)
    assert 2 <= checks <= 4
    await connection.close()


async def test_without_a_recheck_the_owner_sees_the_connection_is_stale(hub: Hub) -> None:
    """As the caption stream does: woken up with nothing to send, and `stale` set."""
    connection = Connection(hub, member="1")
    await connection.follow({SIGNALS: None})
    await hub.broker.publish(SIGNALS, RECHECK)
    assert await connection.next(timeout=1) == []
    assert connection.stale
    await connection.close()
