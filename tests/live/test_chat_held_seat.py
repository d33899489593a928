"""A chat post from a page with its live WebSocket open uses the seat that connection keeps
(app/live/seats.py: HeldSeats), instead of working it out from the database again; the
seat is never trusted once the person has been moved, a breakout has closed or they have
signed out everywhere: their very next post is decided on what is true now."""

from __future__ import annotations

from http.cookies import SimpleCookie

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.live import channels
from app.live.models import ChatMessage
from app.security import SESSION_COOKIE
from tests.conftest import LiveServer
from tests.factories import World, make_world
from tests.live.test_live_access import (
    moved_to_b_in_breakout,
    server_live,
    sign_out_everywhere,
)
from tests.live_action_helpers import act, in_room, live_path, of_type, open_rooms
from tests.live_helpers import LiveClient

pytestmark = pytest.mark.parametrize(
    "database_url", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)


def held_seat_of(server: LiveServer, w: World, client: LiveClient, cookie: str | None = None):  # type: ignore[no-untyped-def]
    """The seat this process's connections keep for a post carrying `cookie` (the
    client's own by default), if any."""
    if cookie is None:
        cookie = SimpleCookie(client.cookie)[SESSION_COOKIE].value
    return server.app_state.chat_writer.seats.find(
        cookie, w.programme.id, w.session.id, client.user.id
    )


async def stored(db: AsyncSession, text: str) -> int:
    await db.commit()  # see what the server has committed since
    return int(await db.scalar(select(func.count()).where(ChatMessage.body == text)) or 0)


async def test_a_connected_page_posts_on_its_kept_seat_and_a_move_counts_at_once(
    live_server: LiveServer, db: AsyncSession
) -> None:
    w = await make_world(db)
    room_a, room_b = (channels.room(w.session.id, g.id) for g in (w.group_a, w.group_b))
    await open_rooms(live_server, w)
    alice = await in_room(live_server, w, w.participant_a, w.group_a.id)
    # Her page's posts use the seat her connection keeps; another cookie of hers does not.
    seat = held_seat_of(live_server, w, alice)
    assert seat is not None and seat.current == room_a
    other = SimpleCookie(live_server.cookie_header(w.participant_a))[SESSION_COOKIE].value
    assert held_seat_of(live_server, w, alice, other) is None
    assert (await alice.chat(room_a, "Hello A", "c1"))["t"] == "ack"

    await moved_to_b_in_breakout(live_server, w)
    # At once, before her page has even heard of the move: room A refuses her, B takes her.
    refused = await alice.chat(room_a, "Still in A?", "c2")
    assert refused["t"] == "error" and refused["status"] == 403, refused
    assert "cannot send messages to that room" in refused["message"]
    assert (await alice.chat(room_b, "Hello B", "c3"))["t"] == "ack"
    assert await stored(db, "Still in A?") == 0
    assert await stored(db, "Hello B") == 1
    # Her connection has worked the new seat out, and it is used again.
    await alice.wait_for(of_type("room.changed"))
    await alice.chat(room_b, "Settled in B", "c4")
    seat = held_seat_of(live_server, w, alice)
    assert seat is not None and seat.current == room_b
    await alice.close()
    # A closed connection's seat is not used any more.
    assert held_seat_of(live_server, w, alice) is None


async def test_closing_the_breakout_refuses_the_room_at_once(
    live_server: LiveServer, db: AsyncSession
) -> None:
    w = await make_world(db)
    room_a = channels.room(w.session.id, w.group_a.id)
    plenary = channels.plenary(w.session.id)
    await open_rooms(live_server, w)
    alice = await in_room(live_server, w, w.participant_a, w.group_a.id)
    assert (await alice.chat(room_a, "In the room", "c1"))["t"] == "ack"

    closed = await act(
        live_server, w.host, live_path(w) + "/breakouts/close", {"warning_seconds": "0"}
    )
    assert closed.status_code == 200, closed.text
    refused = await alice.chat(room_a, "Room after closing", "c2")
    assert refused["t"] == "error" and refused["status"] == 403, refused
    assert (await alice.chat(plenary, "Back in plenary", "c3"))["t"] == "ack"
    assert await stored(db, "Room after closing") == 0
    await alice.close()


async def test_signed_out_everywhere_the_next_post_is_refused(
    live_server: LiveServer, db: AsyncSession
) -> None:
    w = await make_world(db)
    plenary = channels.plenary(w.session.id)
    alice = await LiveClient.connect(live_server, w.participant_a, live_path(w), {plenary: None})
    assert (await alice.chat(plenary, "Before", "c1"))["t"] == "ack"
    assert held_seat_of(live_server, w, alice) is not None

    await sign_out_everywhere(db, server_live(live_server), w.participant_a)
    refused = await alice.chat(plenary, "After signing out", "c2")
    # Sent to sign in again, as any page of hers now is.
    assert refused["t"] == "error" and refused["status"] == 303, refused
    assert await stored(db, "After signing out") == 0


async def test_the_rooms_rules_still_count_for_every_post_on_a_kept_seat(
    live_server: LiveServer, db: AsyncSession
) -> None:
    """Mutes, locks, slow mode and the rate limit are read for every message, in the same
    statement as the batch's retries (app/live/chat_rules.py), whatever the seat."""
    w = await make_world(db)
    path = live_path(w)
    room_a = channels.room(w.session.id, w.group_a.id)
    await open_rooms(live_server, w)
    alice = await in_room(live_server, w, w.participant_a, w.group_a.id)
    assert held_seat_of(live_server, w, alice) is not None

    slow = await act(
        live_server,
        w.facilitator_a,
        path + "/room-settings",
        {"channel": room_a, "slow_mode_seconds": "60"},
    )
    assert slow.status_code == 200, slow.text
    assert (await alice.chat(room_a, "First", "c1"))["t"] == "ack"
    # The same send again (the page's retry) is answered with the stored message.
    again = await alice.chat(room_a, "First", "c1")
    assert again["t"] == "ack" and await stored(db, "First") == 1
    waiting = await alice.chat(room_a, "Second", "c2")
    assert waiting["status"] == 429 and "Slow mode" in waiting["message"], waiting

    locked = await act(
        live_server, w.facilitator_a, path + "/room-settings", {"channel": room_a, "locked": "on"}
    )
    assert locked.status_code == 200, locked.text
    refused = await alice.chat(room_a, "Locked?", "c3")
    assert refused["status"] == 403 and "locked" in refused["message"], refused

    await act(live_server, w.facilitator_a, path + "/room-settings", {"channel": room_a})
    muted = await act(
        live_server,
        w.facilitator_a,
        path + "/mute",
        {"user_id": w.participant_a.id, "minutes": "5"},
    )
    assert muted.status_code == 200, muted.text
    paused = await alice.chat(room_a, "Muted?", "c4")
    assert paused["status"] == 403 and "paused your chat" in paused["message"], paused
    assert (
        await stored(db, "Second") + await stored(db, "Locked?") + await stored(db, "Muted?") == 0
    )
    await alice.close()
