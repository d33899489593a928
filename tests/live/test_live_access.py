"""Open live connections follow changes of access at once, even when the client says
nothing: moved to another room, no longer a facilitator of a group, signed out everywhere.
Over the WebSocket, Server-Sent Events and long-polling, and across two processes."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from websockets.exceptions import ConnectionClosed

from app.config import to_async_url
from app.db import make_engine, make_sessionmaker
from app.live import channels
from app.live.access import access_changed
from app.live.events import build_registry
from app.models import Membership, User
from app.templating import make_templates
from realtime.publish import Live
from realtime.redis_broker import RedisBroker
from tests.conftest import LiveServer, redis_url_or_skip
from tests.factories import World, make_world
from tests.live_action_helpers import act, live_path, of_type, open_rooms
from tests.live_helpers import LiveClient, chat_texts
from tests.live_streams import Poller, SseReader, poll
from tests.realtime.test_scale_out import Cluster, cluster  # noqa: F401 - the two-process fixture

CLOSED_WITHIN = 1.0


def server_live(server: LiveServer) -> Live:
    """The live server's own Live, whose broker reaches its connections."""
    live: Live = server.app_state.live
    return live


async def say(server: Any, user: User, path: str, channel: str, text: str) -> None:
    """A chat message posted as the page's form would."""
    client_id = uuid.uuid4().hex
    sent = await act(
        server, user, path + "/chat", {"channel": channel, "text": text, "client_id": client_id}
    )
    assert sent.status_code == 204, sent.text


async def sign_out_everywhere(db: AsyncSession, live: Live, user: User) -> None:
    """What "sign out everywhere" does: every earlier cookie stops working, then the
    person's connections are told to check themselves."""
    fresh = await db.get(User, user.id, populate_existing=True)
    assert fresh is not None
    fresh.auth_epoch += 1
    await db.commit()
    await access_changed(live, user_ids=[user.id], reason="signed out everywhere")


async def moved_to_b_in_breakout(server: Any, w: World) -> None:
    response = await act(
        server,
        w.host,
        live_path(w) + "/move",
        {"user_id": w.participant_a.id, "group_id": w.group_b.id},
    )
    assert response.status_code == 200, response.text


def rooms(w: World) -> tuple[str, str]:
    return channels.room(w.session.id, w.group_a.id), channels.room(w.session.id, w.group_b.id)


async def hears_room_b_not_a(server: Any, w: World, alice: LiveClient) -> None:
    """Alice's connection, moved to group B's room, has B's messages and no more of A's."""
    room_a, room_b = rooms(w)
    path = live_path(w)
    # The move reaches her connection through her own signal channel, and it follows B
    # from then on (a page, told it moved, also fetches B's panel with what came before).
    # On a loaded machine that takes a moment: B says welcome until she hears it.
    deadline = asyncio.get_running_loop().time() + 15
    while True:
        await say(server, w.participant_b, path, room_b, "Welcome to B")
        try:
            arrived = await alice.wait_for(of_type("chat.message"), timeout=1.0)
            break
        except TimeoutError:
            assert asyncio.get_running_loop().time() < deadline, "never heard room B"
    assert arrived["c"] == room_b and "Welcome to B" in arrived["h"]
    await say(server, w.facilitator_a, path, room_a, "Only for group A now")
    later = await alice.quiet(0.5)
    assert not [m for m in later if m.get("c") == room_a and m.get("t") == "chat.message"], later
    assert not [t for t in chat_texts(later) if "Welcome to B" not in t], later


# -- moves --


async def test_a_silent_websocket_follows_the_person_to_their_new_room(
    live_server: LiveServer, db: AsyncSession
) -> None:
    w = await make_world(db)
    path = live_path(w)
    room_a, _room_b = rooms(w)
    await open_rooms(live_server, w)
    # Alice's page says hello once and then nothing; it does not even follow her own
    # channel, where the notice that she moved arrives.
    alice = await LiveClient.connect(live_server, w.participant_a, path, {room_a: None})
    await say(live_server, w.facilitator_a, path, room_a, "Before the move, in A")
    assert "Before the move, in A" in (await alice.wait_for(of_type("chat.message")))["h"]

    await moved_to_b_in_breakout(live_server, w)
    await hears_room_b_not_a(live_server, w, alice)
    await alice.close()


async def test_a_stream_follows_the_person_to_their_new_room(
    live_server: LiveServer, db: AsyncSession
) -> None:
    w = await make_world(db)
    path = live_path(w)
    room_a, room_b = rooms(w)
    await open_rooms(live_server, w)
    stream = await SseReader(live_server, w.participant_a, path, {room_a: None}).open()

    await moved_to_b_in_breakout(live_server, w)
    # The stream follows room B from the moment it has checked itself after the move (just
    # after the move commits; longer on a busy machine): a message in B from then on reaches
    # it, and nothing of room A does.
    arrived = None
    for attempt in range(10):
        await say(live_server, w.participant_b, path, room_b, f"Welcome to B ({attempt})")
        with contextlib.suppress(TimeoutError):
            arrived = await stream.wait_for(of_type("chat.message"), timeout=1.0)
            break
    assert arrived is not None, "the stream never followed room B"
    assert arrived["c"] == room_b and "Welcome to B" in arrived["h"]
    # The stream's id carries the new room, so the browser's own reconnect resumes there.
    assert stream.last_id == f"{room_b}={arrived['i']}"
    await say(live_server, w.facilitator_a, path, room_a, "Only for group A now")
    await say(live_server, w.participant_b, path, room_b, "Second in B")
    await stream.wait_for(lambda e: "Second in B" in e.get("h", ""))
    assert {e["c"] for e in stream.events if e.get("t") == "chat.message"} == {room_b}
    await stream.close()


async def test_a_waiting_poll_ends_on_a_move_with_the_new_room_to_follow(
    live_server: LiveServer, db: AsyncSession
) -> None:
    w = await make_world(db)
    path = live_path(w)
    room_a, room_b = rooms(w)
    await open_rooms(live_server, w)
    poller = Poller(live_server, w.participant_a, path, {room_a: None}).start()
    await poller.wait_until(lambda: bool(poller.events))  # polling, and waiting again
    await asyncio.sleep(0.2)

    await moved_to_b_in_breakout(live_server, w)
    # The poll waiting then answers at once, with the new room to follow from now on.
    await poller.wait_until(lambda: set(poller.cursors) == {room_b}, timeout=CLOSED_WITHIN)
    await say(live_server, w.facilitator_a, path, room_a, "Only for group A now")
    await say(live_server, w.participant_b, path, room_b, "Welcome to B")
    await poller.wait_until(lambda: bool(chat_texts(poller.events)))
    await asyncio.sleep(0.3)
    await poller.stop()
    texts = chat_texts(poller.events)
    assert len(texts) == 1 and "Welcome to B" in texts[0]


async def test_moved_on_the_roster_page_the_connection_follows_the_new_group(
    live_server: LiveServer, db: AsyncSession
) -> None:
    """Moving someone to another group (the roster, not the live session) moves their
    open connection to that group's room too."""
    w = await make_world(db)
    path = live_path(w)
    room_a, _room_b = rooms(w)
    await open_rooms(live_server, w)
    alice = await LiveClient.connect(live_server, w.participant_a, path, {room_a: None})
    membership_id = await db.scalar(
        select(Membership.id).where(Membership.user_id == w.participant_a.id)
    )
    moved = await act(
        live_server,
        w.host,
        f"/programmes/{w.programme.id}/members/{membership_id}/move",
        {"group_id": str(w.group_b.id)},
        hx=False,
    )
    assert moved.status_code == 303, moved.text
    await hears_room_b_not_a(live_server, w, alice)
    await alice.close()


async def test_a_roster_import_that_changes_a_group_moves_the_connection(
    live_server: LiveServer, db: AsyncSession
) -> None:
    w = await make_world(db)
    path = live_path(w)
    room_a, _room_b = rooms(w)
    await open_rooms(live_server, w)
    alice = await LiveClient.connect(live_server, w.participant_a, path, {room_a: None})
    csv = f"name,email,role,group\r\nPriya Participant,{w.participant_a.email},participant,Group B\r\n"
    async with live_server.client(w.host) as http:
        imported = await http.post(
            f"/programmes/{w.programme.id}/roster/import",
            files={"file": ("roster.csv", csv.encode(), "text/csv")},
        )
    assert imported.status_code == 200 and "1 updated" in imported.text, imported.text
    await hears_room_b_not_a(live_server, w, alice)
    await alice.close()


async def test_a_new_role_takes_the_connection_out_of_the_group_room(
    live_server: LiveServer, db: AsyncSession
) -> None:
    """An observer is in no group: made one, Alice's connection leaves her group's room
    for the plenary."""
    w = await make_world(db)
    path = live_path(w)
    room_a, _room_b = rooms(w)
    plenary = channels.plenary(w.session.id)
    await open_rooms(live_server, w)
    alice = await LiveClient.connect(live_server, w.participant_a, path, {room_a: None})
    membership_id = await db.scalar(
        select(Membership.id).where(Membership.user_id == w.participant_a.id)
    )
    async with live_server.client(w.host) as http:
        changed = await http.patch(
            f"/api/v1/programmes/{w.programme.id}/members/{membership_id}",
            json={"role": "observer"},
        )
    assert changed.status_code == 200, changed.text
    await say(live_server, w.facilitator_a, path, room_a, "Only for group A now")
    await say(live_server, w.host, path, plenary, "Hello plenary")
    arrived = await alice.wait_for(of_type("chat.message"))
    assert arrived["c"] == plenary and "Hello plenary" in arrived["h"]
    assert not chat_texts(await alice.quiet(0.3))
    await alice.close()


# -- facilitators removed from a group --


async def remove_facilitator(server: Any, w: World, user: User, group_id: int) -> None:
    removed = await act(
        server,
        w.host,
        f"/programmes/{w.programme.id}/groups/{group_id}/facilitators/{user.id}/remove",
        hx=False,
    )
    assert removed.status_code == 303, removed.text


async def test_a_facilitator_removed_from_a_group_stops_hearing_its_room(
    live_server: LiveServer, db: AsyncSession
) -> None:
    w = await make_world(db)
    path = live_path(w)
    room_a, _room_b = rooms(w)
    plenary = channels.plenary(w.session.id)
    await open_rooms(live_server, w)
    fola = await LiveClient.connect(live_server, w.facilitator_a, path, {room_a: None})
    await say(live_server, w.participant_a, path, room_a, "Fola, can you hear me?")
    assert "can you hear me" in (await fola.wait_for(of_type("chat.message")))["h"]

    await remove_facilitator(live_server, w, w.facilitator_a, w.group_a.id)
    removed_at = time.monotonic()
    await say(live_server, w.participant_a, path, room_a, "Private to group A")
    # She is back in the plenary, where she may be.
    await say(live_server, w.host, path, plenary, "Hello plenary")
    arrived = await fola.wait_for(of_type("chat.message"), timeout=CLOSED_WITHIN)
    assert arrived["c"] == plenary and time.monotonic() - removed_at < CLOSED_WITHIN
    assert not chat_texts(await fola.quiet(0.5))
    # Asking to follow the room again is refused.
    await fola.send({"type": "hello", "cursors": {room_a: None}})
    refused = await fola.wait_for(of_type("error"))
    assert refused["code"] == "not_allowed" and room_a in refused["message"]
    await fola.close()


async def test_a_stream_of_a_removed_facilitator_stops_hearing_the_room(
    live_server: LiveServer, db: AsyncSession
) -> None:
    w = await make_world(db)
    path = live_path(w)
    room_a, _room_b = rooms(w)
    await open_rooms(live_server, w)
    stream = await SseReader(live_server, w.facilitator_a, path, {room_a: None}).open()
    await remove_facilitator(live_server, w, w.facilitator_a, w.group_a.id)
    await say(live_server, w.participant_a, path, room_a, "Private to group A")
    await say(live_server, w.participant_a, path, room_a, "Still private")
    await asyncio.sleep(0.5)
    assert not chat_texts(stream.events)
    assert room_a not in stream.last_id
    await stream.close()


# -- signed out everywhere --


async def told_to_sign_in_and_closed(client: LiveClient, started: float) -> None:
    """The page is told to reload, and the WebSocket closed for policy, within a second."""
    told = await client.wait_for(of_type("reload"), timeout=CLOSED_WITHIN)
    assert "sign in" in told["reason"]
    with pytest.raises(ConnectionClosed):
        await client.next(timeout=CLOSED_WITHIN)
    assert time.monotonic() - started < CLOSED_WITHIN
    assert client.ws.close_code == 1008 and "sign in" in client.ws.close_reason


async def test_signing_out_everywhere_closes_a_silent_websocket_at_once(
    live_server: LiveServer, db: AsyncSession
) -> None:
    w = await make_world(db)
    path = live_path(w)
    plenary = channels.plenary(w.session.id)
    alice = await LiveClient.connect(live_server, w.participant_a, path, {plenary: None})
    bob = await LiveClient.connect(live_server, w.participant_b, path, {plenary: None})

    started = time.monotonic()
    await sign_out_everywhere(db, server_live(live_server), w.participant_a)
    await told_to_sign_in_and_closed(alice, started)
    # Nobody else is affected.
    await say(live_server, w.participant_b, path, plenary, "Still here")
    assert "Still here" in (await bob.wait_for(of_type("chat.message")))["h"]
    await bob.close()


async def test_signing_out_everywhere_ends_a_stream_and_a_poll(
    live_server: LiveServer, db: AsyncSession
) -> None:
    w = await make_world(db)
    path = live_path(w)
    # Her own channel, where no presence comes and goes to end the poll first.
    own = channels.personal(w.participant_a.id)
    stream = await SseReader(live_server, w.participant_a, path, {own: None}).open()
    old_cookie = live_server.client(w.participant_a)
    waiting = asyncio.create_task(poll(old_cookie, path, {own: None}))
    await asyncio.sleep(0.3)
    assert not waiting.done()

    await sign_out_everywhere(db, server_live(live_server), w.participant_a)
    told = await stream.wait_for(of_type("reload"), timeout=CLOSED_WITHIN)
    assert "sign in" in told["reason"]
    await asyncio.wait_for(stream.ended.wait(), CLOSED_WITHIN)
    answer = await asyncio.wait_for(waiting, CLOSED_WITHIN)
    assert [e["t"] for e in answer["events"]] == ["reload"]
    assert "sign in" in answer["events"][0]["reason"]
    await stream.close()
    # And the old cookie opens nothing any more.
    refused = await old_cookie.get(path + "/sse", params={"cursors": f"{own}="})
    await old_cookie.aclose()
    assert refused.status_code == 303 and refused.headers["location"].startswith("/signin")


async def test_a_recheck_that_finds_nothing_changed_leaves_the_connection_alone(
    live_server: LiveServer, db: AsyncSession
) -> None:
    w = await make_world(db)
    path = live_path(w)
    plenary = channels.plenary(w.session.id)
    alice = await LiveClient.connect(live_server, w.participant_a, path, {plenary: None})
    await access_changed(server_live(live_server), user_ids=[w.participant_a.id], reason="test")
    await say(live_server, w.participant_b, path, plenary, "Still together")
    assert "Still together" in (await alice.wait_for(of_type("chat.message")))["h"]
    assert not [m for m in await alice.quiet(0.3) if m["t"] in ("reload", "error")]
    await alice.close()


# -- two processes, one Redis --


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_access_changes_made_through_one_process_reach_connections_on_the_other(
    cluster: Cluster,  # noqa: F811 - the fixture imported above
    database_url: str,
) -> None:
    a, b, w, path = cluster.a, cluster.b, cluster.w, cluster.path
    room_a, _room_b = rooms(w)
    plenary = channels.plenary(w.session.id)
    await open_rooms(a, w)
    alice = await LiveClient.connect(b, w.participant_a, path, {room_a: None})
    fola = await LiveClient.connect(b, w.facilitator_a, path, {room_a: None})

    # Moved through A: Alice's connection on B follows her to room B.
    await moved_to_b_in_breakout(a, w)
    await hears_room_b_not_a(a, w, alice)
    assert "Only for group A" in (await fola.wait_for(of_type("chat.message")))["h"]

    # Fola removed from group A through A: within a second her connection on B is out.
    await remove_facilitator(a, w, w.facilitator_a, w.group_a.id)
    started = time.monotonic()
    await say(a, w.host, path, plenary, "Hello plenary")
    arrived = await fola.wait_for(of_type("chat.message"), timeout=CLOSED_WITHIN)
    assert arrived["c"] == plenary and time.monotonic() - started < CLOSED_WITHIN

    # Signed out everywhere (from a third process): Alice's connection on B closes.
    engine = make_engine(to_async_url(database_url))
    broker = RedisBroker(redis_url_or_skip())
    try:
        live = Live(registry=build_registry(), broker=broker, env=make_templates().env)
        async with make_sessionmaker(engine)() as db:
            started = time.monotonic()
            await sign_out_everywhere(db, live, w.participant_a)
        await told_to_sign_in_and_closed(alice, started)
    finally:
        await broker.close()
        await engine.dispose()
    await fola.close()
