"""Chat sent on the page's live WebSocket (app/live/chat_frames.py): the same message, the
same rules and refusals, and the same exactly-once retries as the composer's form post,
answered on the socket by an `ack` or `error` frame naming the client id."""

from __future__ import annotations

import asyncio

import pytest
import websockets
from sqlalchemy.ext.asyncio import AsyncSession

from app.live import channels
from tests.conftest import LiveServer
from tests.factories import make_world
from tests.live.test_chat_held_seat import stored
from tests.live.test_live_access import moved_to_b_in_breakout, server_live, sign_out_everywhere
from tests.live_action_helpers import act, in_room, live_path, of_type, open_rooms
from tests.live_helpers import LiveClient

pytestmark = pytest.mark.parametrize(
    "database_url", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)


async def test_a_chat_frame_is_stored_once_delivered_and_answered(
    live_server: LiveServer, db: AsyncSession
) -> None:
    w = await make_world(db)
    room_a, room_b = (channels.room(w.session.id, g.id) for g in (w.group_a, w.group_b))
    await open_rooms(live_server, w)
    alice = await in_room(live_server, w, w.participant_a, w.group_a.id)
    fola = await in_room(live_server, w, w.facilitator_a, w.group_a.id)
    bob = await in_room(live_server, w, w.participant_b, w.group_b.id)

    sent = await alice.chat_frame(room_a, "Hello <b>room</b> A", "f1")
    assert sent["t"] == "ack" and sent["id"] > 0, sent
    for client in (alice, fola):
        event = await client.wait_for(of_type("chat.message"))
        assert event["c"] == room_a and "Hello &lt;b&gt;room&lt;/b&gt; A" in event["h"]
    assert not [m for m in await bob.quiet(0.3) if m.get("t") == "chat.message"]

    # The answer was lost: the same frame again, or the form post with the same client id,
    # is answered with the message stored the first time, and nothing is sent twice.
    assert await alice.chat_frame(room_a, "Hello <b>room</b> A", "f1") == sent
    assert (await alice.chat(room_a, "Hello <b>room</b> A", "f1"))["id"] == sent["id"]
    assert not [m for m in await fola.quiet(0.3) if m.get("t") == "chat.message"]
    assert await stored(db, "Hello <b>room</b> A") == 1

    # Another group's room, an empty message, a bad client id: the post's refusals.
    other = await alice.chat_frame(room_b, "Over there?", "f2")
    assert other["t"] == "error" and other["code"] == "not_allowed", other
    assert "cannot send messages to that room" in other["message"]
    empty = await alice.chat_frame(room_a, "   ", "f3")
    assert empty["code"] == "empty" and empty["message"] == "Type a message first."
    bad_id = await alice.chat_frame(room_a, "Hi", "not a valid id!")
    assert bad_id["code"] == "bad_client_id"
    assert await stored(db, "Over there?") == 0
    for client in (alice, fola, bob):
        await client.close()


async def test_a_move_or_a_closed_breakout_counts_for_the_very_next_frame(
    live_server: LiveServer, db: AsyncSession
) -> None:
    w = await make_world(db)
    room_a, room_b = (channels.room(w.session.id, g.id) for g in (w.group_a, w.group_b))
    plenary = channels.plenary(w.session.id)
    await open_rooms(live_server, w)
    alice = await in_room(live_server, w, w.participant_a, w.group_a.id)
    assert (await alice.chat_frame(room_a, "In A", "m1"))["t"] == "ack"

    await moved_to_b_in_breakout(live_server, w)
    refused = await alice.chat_frame(room_a, "Still in A?", "m2")
    assert refused["t"] == "error" and refused["code"] == "not_allowed", refused
    assert (await alice.chat_frame(room_b, "Hello B", "m3"))["t"] == "ack"

    closed = await act(
        live_server, w.host, live_path(w) + "/breakouts/close", {"warning_seconds": "0"}
    )
    assert closed.status_code == 200, closed.text
    after = await alice.chat_frame(room_b, "Room after closing", "m4")
    assert after["t"] == "error" and after["code"] == "not_allowed", after
    assert (await alice.chat_frame(plenary, "Back in plenary", "m5"))["t"] == "ack"
    assert await stored(db, "Still in A?") + await stored(db, "Room after closing") == 0
    await alice.close()


async def test_the_rooms_rules_and_the_pace_are_refused_with_their_wait(
    live_server: LiveServer, db: AsyncSession
) -> None:
    w = await make_world(db)
    path = live_path(w)
    room_a = channels.room(w.session.id, w.group_a.id)
    plenary = channels.plenary(w.session.id)
    alice = await LiveClient.connect(live_server, w.participant_a, path, {plenary: None})
    answers = [await alice.chat_frame(plenary, f"quick {n}", f"q{n}") for n in range(6)]
    assert [a["t"] for a in answers] == ["ack"] * 5 + ["error"]
    assert answers[5]["code"] == "rate_limited" and answers[5]["retry_after"] == 5
    assert "wait a few seconds" in answers[5]["message"]
    await alice.close()

    await open_rooms(live_server, w)
    alice = await in_room(live_server, w, w.participant_a, w.group_a.id)
    await act(
        live_server, w.facilitator_a, path + "/room-settings", {"channel": room_a, "locked": "on"}
    )
    locked = await alice.chat_frame(room_a, "Locked?", "l1")
    assert locked["code"] == "locked" and "locked" in locked["message"], locked
    await act(live_server, w.facilitator_a, path + "/room-settings", {"channel": room_a})
    muted = await act(
        live_server,
        w.facilitator_a,
        path + "/mute",
        {"user_id": w.participant_a.id, "minutes": "5"},
    )
    assert muted.status_code == 200, muted.text
    paused = await alice.chat_frame(room_a, "Muted?", "l2")
    assert paused["code"] == "muted" and "paused your chat" in paused["message"], paused
    assert await stored(db, "Locked?") + await stored(db, "Muted?") == 0
    await alice.close()


async def test_a_private_frame_reaches_only_the_rooms_facilitators(
    live_server: LiveServer, db: AsyncSession
) -> None:
    w = await make_world(db)
    room_a = channels.room(w.session.id, w.group_a.id)
    await open_rooms(live_server, w)
    alice = await in_room(live_server, w, w.participant_a, w.group_a.id)
    fola = await in_room(live_server, w, w.facilitator_a, w.group_a.id)
    finn = await in_room(live_server, w, w.facilitator_b, w.group_b.id)
    sent = await alice.chat_frame(room_a, "A quiet word", "p1", private=True)
    assert sent["t"] == "ack", sent
    event = await fola.wait_for(of_type("chat.message"))
    assert event["c"] == channels.personal(w.facilitator_a.id) and "A quiet word" in event["h"]
    assert not [m for m in await finn.quiet(0.3) if m.get("t") == "chat.message"]
    for client in (alice, fola, finn):
        await client.close()


async def test_after_signing_out_everywhere_nothing_more_is_sent(
    live_server: LiveServer, db: AsyncSession
) -> None:
    w = await make_world(db)
    plenary = channels.plenary(w.session.id)
    alice = await LiveClient.connect(live_server, w.participant_a, live_path(w), {plenary: None})
    assert (await alice.chat_frame(plenary, "Before", "s1"))["t"] == "ack"
    await sign_out_everywhere(db, server_live(live_server), w.participant_a)
    # The frame sent at once is refused (the cookie no longer works) or meets the closed
    # connection (the page reloads and is asked to sign in); it is never stored.
    try:
        answer = await alice.chat_frame(plenary, "After signing out", "s2")
        assert answer["t"] == "error", answer
        assert answer["code"] == "signed_out" and "Reload the page" in answer["message"]
    except (websockets.ConnectionClosed, TimeoutError):
        assert alice.ws.close_code == 1008
    await asyncio.sleep(0.2)
    assert await stored(db, "After signing out") == 0
