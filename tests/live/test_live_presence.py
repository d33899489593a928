"""Presence: who is in which room, for the people in it and for the host."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from app.live import channels, presence
from app.live.events import build_registry
from app.templating import make_templates
from realtime.broker import InProcessBroker
from realtime.publish import Live
from tests.factories import make_world
from tests.live_action_helpers import in_room, live_path, open_rooms
from tests.live_helpers import LiveClient


@pytest.fixture
def quick_presence(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(presence, "LEAVE_GRACE_SECONDS", 0.2)
    monkeypatch.setattr(presence, "COALESCE_SECONDS", 0.3)


def names_in(event: dict[str, Any]) -> str:
    return event["h"]


async def test_people_in_a_room_see_who_is_there(live_server, db, quick_presence) -> None:
    w = await make_world(db)
    path = live_path(w)
    room_a = channels.room(w.session.id, w.group_a.id)
    await open_rooms(live_server, w)
    alice = await in_room(live_server, w, w.participant_a, w.group_a.id)
    fola = await in_room(live_server, w, w.facilitator_a, w.group_a.id)
    bob = await in_room(live_server, w, w.participant_b, w.group_b.id)

    both = await alice.wait_for(
        lambda m: m.get("t") == "presence" and "Fola Facilitator" in m["h"] and "Priya" in m["h"]
    )
    assert both["c"] == room_a and both["x"] == f"presence-{room_a}" and both["i"] == 0
    assert "2 people here" in both["h"] and "Priya Participant (she/her)" in both["h"]
    assert not [m for m in await bob.quiet(0.4) if m.get("t") == "presence" and "Priya" in m["h"]]

    # The host sees how many are in each room.
    async with live_server.client(w.host) as http:
        table = await http.get(path + "/occupancy", headers={"HX-Request": "true"})
    assert table.status_code == 200 and '<th scope="row">Group A</th><td>2</td>' in table.text
    async with live_server.client(w.participant_a) as http:
        assert (await http.get(path + "/occupancy")).status_code == 403

    await fola.close()
    one = await alice.wait_for(
        lambda m: m.get("t") == "presence" and "Fola" not in m["h"], timeout=5
    )
    assert "1 person here" in one["h"] and "Priya Participant" in one["h"]
    # The page is drawn with the room's presence in place for events to replace.
    async with live_server.client(w.participant_a) as http:
        page = (await http.get(path)).text
    assert f'id="presence-{room_a}"' in page and "Priya Participant (she/her)" in page
    await alice.close()
    await bob.close()


async def test_the_plenary_shows_a_count_not_names(live_server, db, quick_presence) -> None:
    w = await make_world(db)
    plenary = channels.plenary(w.session.id)
    path = live_path(w)
    clients = [
        await LiveClient.connect(live_server, user, path, {plenary: None})
        for user in (w.participant_a, w.participant_b, w.observer)
    ]
    event = await clients[0].wait_for(lambda m: m.get("t") == "presence" and "3 people" in m["h"])
    assert "Priya" not in event["h"] and "<li>" not in event["h"]
    for client in clients:
        await client.close()


class Recorder:
    """Collects what is published on one channel of an in-process broker."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def __call__(self, channel: str, message: str) -> None:
        self.events.append(json.loads(message.partition("|")[2]))


async def make_presence(app_and_state: Any) -> tuple[presence.Presence, InProcessBroker, Recorder]:
    broker = InProcessBroker()
    recorder = Recorder()

    async def nothing() -> None:
        return None

    await broker.start(recorder, nothing)
    live = Live(registry=build_registry(), broker=broker, env=make_templates().env)
    tracker = presence.Presence(
        broker=broker, live=live, sessionmaker=app_and_state[1].sessionmaker
    )
    return tracker, broker, recorder


async def test_joins_together_make_one_event_and_a_reload_makes_none(
    app_and_state, db, monkeypatch
) -> None:
    w = await make_world(db)
    monkeypatch.setattr(presence, "LEAVE_GRACE_SECONDS", 0.3)
    monkeypatch.setattr(presence, "COALESCE_SECONDS", 0.3)
    tracker, broker, recorder = await make_presence(app_and_state)
    room = channels.room(w.session.id, w.group_a.id)
    await broker.subscribe(room)
    people = [w.participant_a, w.facilitator_a, w.host, w.observer]
    for user in people:
        await tracker.joined(str(user.id), {room, channels.personal(user.id)})
    await asyncio.sleep(0.3)
    assert len(recorder.events) == 1 and "4 people here" in recorder.events[0]["h"]
    # A reload: gone and back within the grace; nobody is told anything.
    await tracker.left(str(w.host.id), {room})
    await tracker.joined(str(w.host.id), {room})
    await asyncio.sleep(0.5)
    assert len(recorder.events) == 1
    # Two tabs: closing one leaves the person here.
    await tracker.joined(str(w.observer.id), {room})
    await tracker.left(str(w.observer.id), {room})
    await asyncio.sleep(0.5)
    assert len(recorder.events) == 1
    await tracker.left(str(w.observer.id), {room})
    await asyncio.sleep(0.5)
    assert len(recorder.events) == 2 and "3 people here" in recorder.events[1]["h"]
    assert "Olu Observer" not in recorder.events[1]["h"]
    await tracker.stop()
    assert await broker.presence_list(room) == {}


async def test_a_process_that_dies_takes_its_people_with_it(app_and_state, db, monkeypatch) -> None:
    w = await make_world(db)
    monkeypatch.setattr(presence, "PRESENCE_TTL", 0.4)
    monkeypatch.setattr(presence, "REFRESH_SECONDS", 0.1)
    tracker, broker, _recorder = await make_presence(app_and_state)
    tracker.start()
    room = channels.room(w.session.id, w.group_a.id)
    await tracker.joined(str(w.participant_a.id), {room})
    await asyncio.sleep(0.8)
    # Refreshed while connected, beyond its time to live.
    assert list((await broker.presence_list(room)).values()) == ["Priya Participant (she/her)"]
    # The process stops refreshing without saying goodbye (it crashed).
    assert tracker._refresher is not None
    tracker._refresher.cancel()
    await asyncio.sleep(0.5)
    assert await broker.presence_list(room) == {}
    tracker._here.clear()
    await tracker.stop()
