"""The owner of a live connection (realtime/live_connection.py), with an Access made up
here: what the app allows is followed, the rest refused; a client's text frames are
dispatched, binary frames (the slot for media) refused; a flood is closed; a recheck
follows what the app answers."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from typing import Any

import pytest

from app.state import AppState
from realtime.broker import InProcessBroker
from realtime.hub import RECHECK, Hub
from realtime.live_connection import (
    MAX_FRAMES_PER_10S,
    AccessEnded,
    Close,
    Cursors,
    LiveConnection,
)


@pytest.fixture
async def hub(app_and_state: tuple[Any, AppState]) -> AsyncIterator[Hub]:
    hub = Hub(InProcessBroker(), app_and_state[1].sessionmaker)
    await hub.start(heartbeat_seconds=60)
    yield hub
    await hub.stop()


class RoomAccess:
    """Follows the rooms in `allowed`; a recheck moves it to `moved_to`, or ends it."""

    member = "7"
    signals: str | None = "u7"
    stale_on: tuple[str, ...] = ()
    recheck_every: float | None = None

    def __init__(self, allowed: set[str]) -> None:
        self.allowed = allowed
        self.moved_to: str | None = None
        self.stale_seen: list[bool] = []

    async def authorize(self, cursors: Cursors, *, stale: bool) -> tuple[Cursors, list[str]]:
        self.stale_seen.append(stale)
        allowed = {c: i for c, i in cursors.items() if c in self.allowed}
        return allowed, [f"You cannot follow {c}." for c in cursors if c not in self.allowed]

    async def recheck(self, cursors: Mapping[str, int]) -> Cursors:
        if self.moved_to is None:
            raise AccessEnded("no longer here")
        return {self.moved_to: None}

    def audible(self, channels: set[str]) -> set[str]:
        return {c for c in channels if c.startswith("room")}

    def video_tile(self, channels: set[str]) -> tuple[str, str] | None:
        return None


def kinds(messages: list[str]) -> list[str]:
    return [json.loads(m)["t"] for m in messages]


async def test_hello_follows_what_the_app_allows_and_refuses_the_rest(hub: Hub) -> None:
    access = RoomAccess({"s1:g1"})
    live = LiveConnection(hub, access, transport="websocket")
    replies = await live.receive_text(
        json.dumps({"type": "hello", "cursors": {"s1:g1": None, "s1:g2": None}})
    )
    assert kinds(replies) == ["hello", "error"]
    assert json.loads(replies[0])["transport"] == "websocket"
    assert live.channels == {"s1:g1"} and hub.listener_count("s1:g1") == 1
    assert hub.listener_count("u7") == 1  # rechecks arrive whatever it follows
    assert await live.receive_text('{"type":"ping","n":3}') == ['{"t":"pong","n":3}']
    unknown = await live.receive_text('{"type":"chat.send","text":"hi"}')
    assert json.loads(unknown[0])["code"] == "unknown_type"
    await live.close()
    assert hub.listener_count("s1:g1") == 0 and hub.listener_count("u7") == 0


async def test_binary_frames_are_the_media_slot_refused_for_now(hub: Hub) -> None:
    live = LiveConnection(hub, RoomAccess(set()), transport="websocket")
    with pytest.raises(Close) as refused:
        await live.receive_media(b"\x00\x01")
    assert refused.value.code == 1003
    await live.close()


async def test_a_flood_of_frames_is_closed(hub: Hub) -> None:
    live = LiveConnection(hub, RoomAccess(set()), transport="websocket")
    for n in range(MAX_FRAMES_PER_10S):
        await live.receive_text(json.dumps({"type": "ping", "n": n}))
    with pytest.raises(Close) as closed:
        await live.receive_text('{"type":"ping"}')
    assert closed.value.code == 1008
    await live.close()


async def test_a_recheck_follows_what_the_app_answers_or_ends_the_connection(hub: Hub) -> None:
    access = RoomAccess({"s1:g1"})
    live = LiveConnection(hub, access, transport="sse")
    await live.open({"s1:g1": None})
    access.moved_to = "s1:g2"
    await hub.broker.publish("u7", RECHECK)
    assert await live.next(timeout=1) == []
    assert live.channels == {"s1:g2"} and not live.stale
    access.moved_to = None
    await hub.broker.publish("u7", RECHECK)
    with pytest.raises(AccessEnded, match="no longer here"):
        await live.next(timeout=1)
    await live.close()
