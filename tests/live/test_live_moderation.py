"""Moderation: pausing someone's chat, locking a room, slow mode; only in rooms one
moderates, each action audited and explained; private messages to a room's facilitators."""

from __future__ import annotations

from app.live import channels
from tests.factories import make_world
from tests.live_action_helpers import act, audit_actions, in_room, live_path, of_type, open_rooms
from tests.live_helpers import LiveClient


async def test_facilitator_pauses_and_restores_a_participants_chat(live_server, db) -> None:
    w = await make_world(db)
    path = live_path(w)
    room_a = channels.room(w.session.id, w.group_a.id)
    await open_rooms(live_server, w)
    alice = await in_room(live_server, w, w.participant_a, w.group_a.id)

    muted = await act(
        live_server,
        w.facilitator_a,
        path + "/mute",
        {"user_id": w.participant_a.id, "minutes": "5"},
    )
    assert muted.status_code == 200 and "paused until" in muted.text
    notice = await alice.wait_for(of_type("notice"))
    assert "paused your chat for 5 minutes" in notice["h"]
    refused = await alice.chat(room_a, "Can I still talk?", "m1")
    assert (
        refused["t"] == "error"
        and refused["status"] == 403
        and "paused your chat" in refused["message"]
    )

    unmuted = await act(
        live_server,
        w.facilitator_a,
        path + "/mute",
        {"user_id": w.participant_a.id, "action": "unmute"},
    )
    assert unmuted.status_code == 200
    assert "chat is on again" in (await alice.wait_for(of_type("notice")))["h"]
    assert (await alice.chat(room_a, "Thank you", "m2"))["t"] == "ack"

    for minutes in ("0", "121", "soon", ""):
        bad = await act(
            live_server,
            w.facilitator_a,
            path + "/mute",
            {"user_id": w.participant_a.id, "minutes": minutes},
        )
        assert bad.status_code == 400 and "1 to 120" in bad.text
    assert (
        await act(
            live_server, w.facilitator_a, path + "/mute", {"user_id": w.outsider.id, "minutes": "5"}
        )
    ).status_code == 404
    assert (
        await act(
            live_server, w.facilitator_a, path + "/mute", {"user_id": w.host.id, "minutes": "5"}
        )
    ).status_code == 403
    actions = await audit_actions(db, w.programme.id)
    assert actions.count("moderation.mute") == 1 and actions.count("moderation.unmute") == 1
    await alice.close()


async def test_locking_and_slow_mode(live_server, db) -> None:
    w = await make_world(db)
    path = live_path(w)
    room_a = channels.room(w.session.id, w.group_a.id)
    await open_rooms(live_server, w)
    alice = await in_room(live_server, w, w.participant_a, w.group_a.id)
    fola = await in_room(live_server, w, w.facilitator_a, w.group_a.id)

    locked = await act(
        live_server, w.facilitator_a, path + "/room-settings", {"channel": room_a, "locked": "on"}
    )
    assert locked.status_code == 200 and "locked" in locked.text
    settings = await alice.wait_for(of_type("room.settings"))
    assert settings["x"] == f"rs-{room_a}" and "locked" in settings["h"]
    assert "locked the chat" in (await alice.wait_for(of_type("notice")))["h"]
    refused = await alice.chat(room_a, "Hello?", "l1")
    assert refused["status"] == 403 and "locked this room's chat" in refused["message"]
    assert (await fola.chat(room_a, "Only me for a moment", "l2"))["t"] == "ack"

    slow = await act(
        live_server,
        w.facilitator_a,
        path + "/room-settings",
        {"channel": room_a, "slow_mode_seconds": "60"},
    )
    assert slow.status_code == 200 and "60 seconds" in slow.text
    assert "one message every 60 seconds" in (await alice.wait_for(of_type("room.settings")))["h"]
    assert (await alice.chat(room_a, "First", "s1"))["t"] == "ack"
    second = await alice.chat(room_a, "Second", "s2")
    assert second["status"] == 429 and "Slow mode is on" in second["message"]
    assert second["retry_after"] is not None and int(second["retry_after"]) > 0
    # Moderators are not slowed down.
    assert (await fola.chat(room_a, "One", "s3"))["t"] == "ack"
    assert (await fola.chat(room_a, "Two", "s4"))["t"] == "ack"

    for bad in ("301", "-1", "fast"):
        response = await act(
            live_server,
            w.facilitator_a,
            path + "/room-settings",
            {"channel": room_a, "slow_mode_seconds": bad},
        )
        assert response.status_code == 400 and "0 to 300" in response.text
    unknown = await act(live_server, w.host, path + "/room-settings", {"channel": "s999:g1"})
    assert unknown.status_code == 404
    # Hosts moderate the plenary too; facilitators do not.
    plenary = channels.plenary(w.session.id)
    assert (
        await act(
            live_server, w.host, path + "/room-settings", {"channel": plenary, "locked": "on"}
        )
    ).status_code == 200
    assert (
        await act(live_server, w.facilitator_a, path + "/room-settings", {"channel": plenary})
    ).status_code == 403
    assert (await audit_actions(db, w.programme.id)).count("moderation.room_settings") == 3
    await alice.close()
    await fola.close()


async def test_nobody_moderates_rooms_that_are_not_theirs(live_server, db) -> None:
    w = await make_world(db)
    path = live_path(w)
    room_a = channels.room(w.session.id, w.group_a.id)
    await open_rooms(live_server, w)
    cases = [
        (
            w.facilitator_b,
            "/mute",
            {"user_id": w.participant_a.id, "minutes": "5"},
            403,
            "rooms you facilitate",
        ),
        (
            w.facilitator_b,
            "/room-settings",
            {"channel": room_a, "locked": "on"},
            403,
            "this room's facilitators",
        ),
        (
            w.participant_b,
            "/mute",
            {"user_id": w.participant_a.id, "minutes": "5"},
            403,
            "facilitators and hosts",
        ),
        (
            w.participant_a,
            "/room-settings",
            {"channel": room_a, "locked": "on"},
            403,
            "facilitators and hosts",
        ),
        (
            w.it_support,
            "/mute",
            {"user_id": w.participant_a.id, "minutes": "5"},
            403,
            "facilitators and hosts",
        ),
        (
            w.facilitator_a,
            "/mute",
            {"user_id": w.facilitator_a.id, "minutes": "5"},
            400,
            "your own chat",
        ),
    ]
    for user, action, data, status, message in cases:
        response = await act(live_server, user, path + action, data)
        assert (response.status_code, message in response.text) == (status, True), (
            action,
            response.text,
        )
    # Without JavaScript a refusal is an error page.
    page = await act(
        live_server, w.facilitator_b, path + "/room-settings", {"channel": room_a}, hx=False
    )
    assert page.status_code == 403 and "<h1>" in page.text
    # Nothing was changed or recorded.
    assert not [a for a in await audit_actions(db, w.programme.id) if a.startswith("moderation.")]
    # A host may act on anyone in any room.
    assert (
        await act(
            live_server, w.host, path + "/mute", {"user_id": w.participant_a.id, "minutes": "1"}
        )
    ).status_code == 200


async def test_a_private_message_reaches_the_rooms_facilitators_once_and_is_audited(
    live_server, db
) -> None:
    """Private messages take the same write path as room messages (app/live/chat_writer.py):
    the same rules, the same retry with the same client id, one stored message."""
    w = await make_world(db)
    room_a = channels.room(w.session.id, w.group_a.id)
    plenary = channels.plenary(w.session.id)
    # Outside a breakout there is no room facilitator to write to.
    alice = await LiveClient.connect(live_server, w.participant_a, live_path(w), {plenary: None})
    refused = await alice.chat(plenary, "Anyone?", "pm0", private=True)
    assert refused["status"] == 400 and "not in a breakout room" in refused["message"]
    await alice.close()

    await open_rooms(live_server, w)
    alice = await in_room(live_server, w, w.participant_a, w.group_a.id)
    fola = await in_room(live_server, w, w.facilitator_a, w.group_a.id)
    finn = await in_room(live_server, w, w.facilitator_b, w.group_b.id)
    bob = await in_room(live_server, w, w.participant_b, w.group_b.id)
    sent = await alice.chat(room_a, "Could we slow down a little?", "pm1", private=True)
    assert sent["t"] == "ack"
    for client, user in ((alice, w.participant_a), (fola, w.facilitator_a)):
        event = await client.wait_for(of_type("chat.message"))
        assert event["c"] == channels.personal(user.id)
        assert "Could we slow down a little?" in event["h"] and "Group A facilitator" in event["h"]
    for client in (finn, bob):
        assert not [m for m in await client.quiet(0.3) if m.get("t") == "chat.message"]
    # Sent again (its answer was lost): the message stored the first time, and no new event.
    again = await alice.chat(room_a, "Could we slow down a little?", "pm1", private=True)
    assert again == sent
    assert not [m for m in await fola.quiet(0.3) if m.get("t") == "chat.message"]
    assert (await audit_actions(db, w.programme.id)).count("chat.private") == 1
    for client in (alice, fola, finn, bob):
        await client.close()
