"""Breakout rooms: opening (everyone's page switches to their room), placing people with
no group, the countdown, adding time, broadcasting, closing with a warning, moving people
and entering rooms, each refused to those who may not."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from app.live import channels
from app.live.breakout_timer import close_due
from app.live.models import Breakout, RoomAssignment
from app.models import Role
from realtime import log as event_log
from tests.factories import add_member, make_programme, make_session, make_user, make_world
from tests.live_action_helpers import (
    act,
    audit_actions,
    follow,
    get_room,
    in_room,
    live_path,
    of_type,
    open_rooms,
)
from tests.live_helpers import LiveClient, chat_texts


@pytest.fixture
async def only_the_server_closes(app_and_state: Any) -> None:
    """The `db` fixture runs an app of its own, whose closer (with its own in-process
    broker) would otherwise race the live server's to close rooms on time."""
    await app_and_state[1].breakout_closer.stop()


async def test_breakouts_from_opening_to_closing(live_server, db, only_the_server_closes) -> None:
    w = await make_world(db)
    ama = await make_user(db, name="Ama Second")
    uma = await make_user(db, name="Uma Unplaced")
    await add_member(db, w.programme, ama, Role.PARTICIPANT, w.group_a)
    await add_member(db, w.programme, uma, Role.PARTICIPANT)
    await db.commit()
    path = live_path(w)
    plenary = channels.plenary(w.session.id)
    room_a = channels.room(w.session.id, w.group_a.id)
    room_b = channels.room(w.session.id, w.group_b.id)
    people = {"alice": w.participant_a, "ama": ama, "bob": w.participant_b, "uma": uma}
    clients = {
        name: await LiveClient.connect(
            live_server, user, path, {plenary: None, channels.personal(user.id): None}
        )
        for name, user in people.items()
    }

    opened = await act(live_server, w.host, path + "/breakouts/open", {"minutes": "20"})
    assert opened.status_code == 200 and "open for 20 minutes" in opened.text
    for client in clients.values():
        event = await client.wait_for(of_type("breakout.opened"))
        deadline = datetime.fromisoformat(event["d"]["deadline"])
        assert (
            timedelta(minutes=19)
            < deadline - datetime.now(deadline.tzinfo)
            <= timedelta(minutes=20)
        )
    # Someone without a group is placed in the least full group (B has one, A has two) and told.
    placed = await clients["uma"].wait_for(of_type("notice"))
    assert "Group B" in placed["h"] and placed["c"] == channels.personal(uma.id)
    assert (await clients["uma"].wait_for(of_type("room.changed")))["c"] == channels.personal(
        uma.id
    )
    assert not [m for m in await clients["alice"].quiet(0.2) if m.get("t") == "room.changed"]

    # Each page fetches its room: its own group's, with the countdown.
    expected = {"alice": room_a, "ama": room_a, "bob": room_b, "uma": room_b}
    for name, user in people.items():
        html = await get_room(live_server, user, path)
        assert f'data-room="{expected[name]}"' in html
        assert f'data-deadline="{deadline.isoformat()}"' in html
    assert "Group A room" in await get_room(live_server, w.participant_a, path)
    for name, client in clients.items():
        await follow(client, expected[name], channels.personal(people[name].id))

    # Room chat stays in the room.
    assert (await clients["alice"].chat(room_a, "Hello group A", "a1"))["t"] == "ack"
    assert "Hello group A" in (await clients["ama"].wait_for(of_type("chat.message")))["h"]
    assert not chat_texts(await clients["bob"].quiet(0.3))
    assert (await clients["alice"].chat(room_b, "Sneaking into B", "a2"))["t"] == "error"

    extended = await act(live_server, w.host, path + "/breakouts/extend", {"minutes": "5"})
    assert extended.status_code == 200
    for client in clients.values():
        event = await client.wait_for(of_type("breakout.extended"))
        assert datetime.fromisoformat(event["d"]["deadline"]) == deadline + timedelta(minutes=5)
        assert "added 5 minutes" in event["h"]

    sent = await act(
        live_server, w.host, path + "/broadcast", {"text": "Five minutes to go <b>now</b>"}
    )
    assert sent.status_code == 200
    for client in clients.values():
        event = await client.wait_for(of_type("broadcast"))
        assert (
            "Five minutes to go &lt;b&gt;now&lt;/b&gt;" in event["h"] and "Hana Host" in event["h"]
        )

    closing = await act(live_server, w.host, path + "/breakouts/close", {"warning_seconds": "1"})
    assert closing.status_code == 200
    for client in clients.values():
        warning = await client.wait_for(of_type("breakout.closing"))
        assert "Rooms close in 1 second " in warning["h"] and "wrapping up" in warning["h"]
        assert datetime.fromisoformat(warning["d"]["deadline"]) <= datetime.now(
            deadline.tzinfo
        ) + timedelta(seconds=1)
    for client in clients.values():
        await client.wait_for(of_type("breakout.closed"), timeout=5)
    for user in people.values():
        html = await get_room(live_server, user, path)
        assert f'data-room="{plenary}"' in html and "data-deadline" not in html
    await db.commit()  # see what the server committed since
    assert not (await db.scalars(select(RoomAssignment))).all()
    actions = await audit_actions(db, w.programme.id)
    for action in (
        "breakout.open",
        "breakout.extend",
        "breakout.broadcast",
        "breakout.close",
        "breakout.closed",
    ):
        assert action in actions, actions
    for client in clients.values():
        await client.close()


async def test_rooms_close_on_time_with_a_warning_first(app_and_state, db) -> None:
    w = await make_world(db)
    _app, state = app_and_state
    await state.breakout_closer.stop()
    start = datetime.now().astimezone()
    breakout = Breakout(
        session_id=w.session.id, opened_at=start, ends_at=start + timedelta(minutes=5)
    )
    db.add(breakout)
    await db.commit()
    maker, live = state.sessionmaker, state.live
    assert await close_due(maker, live, now=start + timedelta(minutes=3)) == 0
    # A minute before the end: the warning, with the end as its deadline.
    assert await close_due(maker, live, now=start + timedelta(minutes=4, seconds=1)) == 1
    assert await close_due(maker, live, now=start + timedelta(minutes=4, seconds=2)) == 0
    assert await close_due(maker, live, now=start + timedelta(minutes=5, seconds=1)) == 1
    # Several processes may race: only one closes.
    assert await close_due(maker, live, now=start + timedelta(minutes=6)) == 0
    await db.commit()
    plenary = channels.plenary(w.session.id)
    events = [json.loads(wire) for _seq, wire in await event_log.since(db, plenary, 0)]
    assert [e["t"] for e in events] == ["breakout.closing", "breakout.closed"]
    assert datetime.fromisoformat(events[0]["d"]["deadline"]) == breakout.ends_at
    room = channels.room(w.session.id, w.group_a.id)
    assert [json.loads(wire)["t"] for _s, wire in await event_log.since(db, room, 0)] == [
        "breakout.closing",
        "breakout.closed",
    ]
    await db.refresh(breakout)
    assert breakout.closed_at is not None
    assert "breakout.closed" in await audit_actions(db, w.programme.id)


async def test_adding_time_calls_off_an_announced_close(app_and_state, db, live_server) -> None:
    w = await make_world(db)
    await app_and_state[1].breakout_closer.stop()
    path = live_path(w)
    await open_rooms(live_server, w)
    assert (
        await act(live_server, w.host, path + "/breakouts/close", {"warning_seconds": "600"})
    ).status_code == 200
    assert (
        await act(live_server, w.host, path + "/breakouts/extend", {"minutes": "10"})
    ).status_code == 200
    await db.commit()
    breakout = await db.scalar(select(Breakout).where(Breakout.session_id == w.session.id))
    assert breakout is not None and breakout.closes_at is None and breakout.closed_at is None
    # With no warning the rooms close at once.
    closed = await act(live_server, w.host, path + "/breakouts/close", {"warning_seconds": "0"})
    assert closed.status_code == 200 and "closed" in closed.text
    again = await act(live_server, w.host, path + "/breakouts/close", {})
    assert again.status_code == 409 and "No breakout rooms are open" in again.text


async def test_opening_is_refused_clearly(live_server, db) -> None:
    w = await make_world(db)
    path = live_path(w)
    refused = await act(live_server, w.participant_a, path + "/breakouts/open", {"minutes": "10"})
    assert refused.status_code == 403 and "hosts" in refused.text
    refused = await act(live_server, w.facilitator_a, path + "/breakouts/open", {"minutes": "10"})
    assert refused.status_code == 403
    for bad in ("0", "181", "ten", ""):
        response = await act(live_server, w.host, path + "/breakouts/open", {"minutes": bad})
        assert response.status_code == 400 and "1 to 180" in response.text
    # Without JavaScript: an error page, not plain text.
    page = await act(live_server, w.host, path + "/breakouts/open", {"minutes": "999"}, hx=False)
    assert page.status_code == 400 and "<h1>" in page.text and "1 to 180" in page.text
    ok = await act(live_server, w.host, path + "/breakouts/open", {"minutes": "10"}, hx=False)
    assert ok.status_code == 303 and ok.headers["location"] == path
    twice = await act(live_server, w.host, path + "/breakouts/open", {"minutes": "10"})
    assert twice.status_code == 409 and "already open" in twice.text
    # A programme with no groups has no rooms to open.
    lonely = await make_programme(db, title="No groups yet")
    session = await make_session(db, lonely)
    await add_member(db, lonely, w.host, Role.HOST)
    await db.commit()
    empty = await act(
        live_server,
        w.host,
        f"/programmes/{lonely.id}/sessions/{session.id}/live/breakouts/open",
        {"minutes": "10"},
    )
    assert empty.status_code == 409 and "no groups" in empty.text
    # An administrator acts as a host.
    extended = await act(live_server, w.admin, path + "/breakouts/extend", {"minutes": "1"})
    assert extended.status_code == 200


async def test_host_moves_people_and_facilitators_enter_their_rooms(live_server, db) -> None:
    w = await make_world(db)
    path = live_path(w)
    early = await act(
        live_server,
        w.host,
        path + "/move",
        {"user_id": w.participant_b.id, "group_id": w.group_a.id},
    )
    assert early.status_code == 409 and "No breakout rooms" in early.text
    await open_rooms(live_server, w)
    bob = await in_room(live_server, w, w.participant_b, w.group_b.id)
    fola = await LiveClient.connect(
        live_server, w.facilitator_a, path, {channels.personal(w.facilitator_a.id): None}
    )

    refused = await act(
        live_server,
        w.participant_a,
        path + "/move",
        {"user_id": w.participant_b.id, "group_id": w.group_a.id},
    )
    assert refused.status_code == 403
    refused = await act(
        live_server,
        w.facilitator_a,
        path + "/move",
        {"user_id": w.participant_b.id, "group_id": w.group_a.id},
    )
    assert refused.status_code == 403
    outsider = await act(
        live_server, w.host, path + "/move", {"user_id": w.outsider.id, "group_id": w.group_a.id}
    )
    assert outsider.status_code == 404
    elsewhere = await act(
        live_server,
        w.host,
        path + "/move",
        {"user_id": w.participant_b.id, "group_id": w.other_group.id},
    )
    assert elsewhere.status_code == 404

    moved = await act(
        live_server,
        w.host,
        path + "/move",
        {"user_id": w.participant_b.id, "group_id": w.group_a.id},
    )
    assert moved.status_code == 200 and "Pat Participant" in moved.text
    await bob.wait_for(of_type("room.changed"))
    assert "moved you to Group A" in (await bob.wait_for(of_type("notice")))["h"]
    assert f'data-room="{channels.room(w.session.id, w.group_a.id)}"' in await get_room(
        live_server, w.participant_b, path
    )

    # A facilitator enters only the rooms of their own groups.
    wrong = await act(live_server, w.facilitator_a, path + "/enter", {"group_id": w.group_b.id})
    assert wrong.status_code == 403 and "groups you facilitate" in wrong.text
    it = await act(live_server, w.it_support, path + "/enter", {"group_id": w.group_a.id})
    assert it.status_code == 403
    entered = await act(live_server, w.facilitator_a, path + "/enter", {"group_id": "plenary"})
    assert entered.status_code == 200
    await fola.wait_for(of_type("room.changed"))
    assert f'data-room="{channels.plenary(w.session.id)}"' in await get_room(
        live_server, w.facilitator_a, path
    )
    entered = await act(live_server, w.facilitator_a, path + "/enter", {"group_id": w.group_a.id})
    assert entered.status_code == 200
    assert "Group A room" in await get_room(live_server, w.facilitator_a, path)
    # The host may go anywhere.
    host_in = await act(live_server, w.host, path + "/enter", {"group_id": w.group_b.id})
    assert host_in.status_code == 200
    assert "Group B room" in await get_room(live_server, w.host, path)

    actions = await audit_actions(db, w.programme.id)
    assert actions.count("breakout.move") == 1 and actions.count("breakout.enter") == 3
    await bob.close()
    await fola.close()


async def test_host_page_has_working_controls_without_javascript(live_server, db) -> None:
    w = await make_world(db)
    path = live_path(w)
    async with live_server.client(w.host) as http:
        page = (await http.get(path)).text
    assert f'action="{path}/breakouts/open"' in page and 'name="csrf_token"' in page
    assert 'for="bo-minutes"' in page and "Who is in each room now" in page
    await open_rooms(live_server, w)
    async with live_server.client(w.host) as http:
        page = (await http.get(path)).text
    for action in ("breakouts/extend", "breakouts/close", "move", "enter", "broadcast"):
        assert f'action="{path}/{action}"' in page, action
    assert 'hx-swap="none"' in page and "Group A" in page
    async with live_server.client(w.participant_a) as http:
        page = (await http.get(path)).text
    assert (
        "breakouts/open" not in page
        and "/broadcast" not in page
        and f'action="{path}/help"' in page
    )


async def test_a_participant_on_long_poll_follows_the_rooms(live_server, db) -> None:
    w = await make_world(db)
    ama = await make_user(db, name="Ama Second")
    await add_member(db, w.programme, ama, Role.PARTICIPANT, w.group_a)
    await db.commit()
    path = live_path(w)
    plenary = channels.plenary(w.session.id)
    room_a = channels.room(w.session.id, w.group_a.id)
    async with live_server.client(w.participant_a) as alice:

        async def poll_until(cursors: str, trigger: Any) -> list[dict[str, Any]]:
            """Poll as the page does (presence updates come too) until something else arrives."""
            waiting = asyncio.create_task(
                alice.get(path + "/poll", params={"cursors": cursors, "wait": 10})
            )
            await asyncio.sleep(0.3)
            await trigger()
            for _ in range(5):
                body = (await waiting).json()
                events = [e for e in body["events"] if e["t"] != "presence"]
                if events:
                    return events
                text = ",".join(f"{c}={i}" for c, i in body["cursors"].items())
                waiting = asyncio.create_task(
                    alice.get(path + "/poll", params={"cursors": text, "wait": 10})
                )
            raise AssertionError("nothing but presence arrived")

        events = await poll_until(f"{plenary}=", lambda: open_rooms(live_server, w))
        assert [e["t"] for e in events] == ["breakout.opened"] and events[0]["d"]["deadline"]
        # The page fetches its room and polls its channel from there.
        room = await alice.get(path + "/room", headers={"HX-Request": "true"})
        assert f'data-room="{room_a}"' in room.text

        async def ama_writes() -> None:
            async with live_server.client(ama) as ama_http:
                sent = await ama_http.post(
                    path + "/chat",
                    data={"text": "Over long-polling", "channel": room_a, "client_id": "lp-room"},
                    headers={"HX-Request": "true"},
                )
            assert sent.status_code == 204

        events = await poll_until(f"{room_a}=", ama_writes)
        assert [e["t"] for e in events] == ["chat.message"]
        assert "Over long-polling" in events[0]["h"]
