"""Hands and help requests: who sees them, claiming and resolving, and who may not."""

from __future__ import annotations

from sqlalchemy import func, select

from app.live import channels
from app.live.models import HelpRequest
from tests.factories import make_world
from tests.live_action_helpers import act, audit_actions, in_room, live_path, of_type, open_rooms
from tests.live_helpers import LiveClient


def desk_of(w, user) -> str:  # type: ignore[no-untyped-def]
    """IT support and hosts follow the whole help desk; a facilitator their own desk."""
    if user in (w.facilitator_a, w.facilitator_b):
        return channels.facilitator_desk(w.session.id, user.id)
    return channels.helpdesk(w.session.id)


def desk_client_cursors(w, user) -> dict[str, None]:  # type: ignore[no-untyped-def]
    return {desk_of(w, user): None, channels.personal(user.id): None}


async def test_help_reaches_the_facilitator_and_it_support_only(live_server, db) -> None:
    w = await make_world(db)
    path = live_path(w)
    await open_rooms(live_server, w)
    alice = await in_room(live_server, w, w.participant_a, w.group_a.id)
    bob = await in_room(live_server, w, w.participant_b, w.group_b.id)
    fola = await LiveClient.connect(
        live_server, w.facilitator_a, path, desk_client_cursors(w, w.facilitator_a)
    )
    ian = await LiveClient.connect(
        live_server, w.it_support, path, desk_client_cursors(w, w.it_support)
    )

    asked = await act(
        live_server, w.participant_a, path + "/help", {"note": "My microphone <b>is</b> silent"}
    )
    assert asked.status_code == 200 and "help desk" in asked.text
    for staff, user in ((fola, w.facilitator_a), (ian, w.it_support)):
        update = await staff.wait_for(of_type("help.update"))
        assert update["c"] == desk_of(w, user)
        assert "Priya Participant (she/her)" in update["h"] and "Group A" in update["h"]
        assert "My microphone &lt;b&gt;is&lt;/b&gt; silent" in update["h"]
        assert update["x"].startswith("h") and 'data-act="claim"' in update["h"]
    assert "help desk have been told" in (await alice.wait_for(of_type("notice")))["h"]
    help_id = int(update["x"][1:])

    # Someone of another group, and a facilitator of another group, may not act on it.
    assert (
        await act(live_server, w.participant_b, f"{path}/help/{help_id}/claim")
    ).status_code == 403
    refused = await act(live_server, w.facilitator_b, f"{path}/help/{help_id}/claim")
    assert refused.status_code == 403 and "facilitator of that room" in refused.text
    assert (await act(live_server, w.observer, f"{path}/help/{help_id}/resolve")).status_code == 403

    claimed = await act(live_server, w.facilitator_a, f"{path}/help/{help_id}/claim")
    assert claimed.status_code == 200
    for staff in (fola, ian):
        update = await staff.wait_for(of_type("help.update"))
        assert "Fola Facilitator is helping" in update["h"] and update["x"] == f"h{help_id}"
    assert "Fola Facilitator is coming to help" in (await alice.wait_for(of_type("notice")))["h"]
    again = await act(live_server, w.it_support, f"{path}/help/{help_id}/claim")
    assert again.status_code == 200 and "already helping" in again.text

    resolved = await act(live_server, w.it_support, f"{path}/help/{help_id}/resolve", hx=False)
    assert resolved.status_code == 303 and resolved.headers["location"] == path
    update = await fola.wait_for(of_type("help.update"))
    assert "Resolved." in update["h"] and 'data-act="claim"' not in update["h"]
    assert (
        "marked your request for help as resolved" in (await alice.wait_for(of_type("notice")))["h"]
    )

    assert not [
        m for m in await bob.quiet(0.3) if m.get("t") in ("help.update", "hand.update", "notice")
    ]
    actions = await audit_actions(db, w.programme.id)
    assert [a for a in actions if a.startswith("help.")] == [
        "help.request",
        "help.claim",
        "help.resolve",
    ]
    for client in (alice, bob, fola, ian):
        await client.close()


async def test_one_raised_hand_at_a_time_seen_in_the_room_and_at_the_desk(live_server, db) -> None:
    w = await make_world(db)
    path = live_path(w)
    await open_rooms(live_server, w)
    alice = await in_room(live_server, w, w.participant_a, w.group_a.id)
    bob = await in_room(live_server, w, w.participant_b, w.group_b.id)
    fola = await LiveClient.connect(
        live_server, w.facilitator_a, path, desk_client_cursors(w, w.facilitator_a)
    )

    for _ in range(2):
        raised = await act(live_server, w.participant_a, path + "/hand", {"action": "raise"})
        assert raised.status_code == 200 and "raised" in raised.text
    in_the_room = await alice.wait_for(of_type("hand.update"))
    assert in_the_room["c"] == channels.room(w.session.id, w.group_a.id)
    assert (
        "Priya Participant (she/her) raised a hand" in in_the_room["h"]
        and "data-act" not in in_the_room["h"]
    )
    at_desk = await fola.wait_for(of_type("help.update"))
    assert "Raised hand" in at_desk["h"] and "Group A" in at_desk["h"]
    await db.commit()
    hands = await db.scalar(
        select(func.count())
        .select_from(HelpRequest)
        .where(HelpRequest.requester_id == w.participant_a.id)
    )
    assert hands == 1
    assert not [m for m in await alice.quiet(0.3) if m.get("t") == "hand.update"]

    lowered = await act(live_server, w.participant_a, path + "/hand", {"action": "lower"})
    assert lowered.status_code == 200
    update = await alice.wait_for(of_type("hand.update"))
    assert "lowered their hand" in update["h"] and update["x"] == in_the_room["x"]
    assert "Resolved." in (await fola.wait_for(of_type("help.update")))["h"]
    assert not [m for m in await bob.quiet(0.3) if m.get("t") in ("hand.update", "help.update")]

    bad = await act(live_server, w.participant_a, path + "/hand", {"action": "wave"})
    assert bad.status_code == 400
    for client in (alice, bob, fola):
        await client.close()


async def test_help_requests_are_checked(live_server, db) -> None:
    w = await make_world(db)
    path = live_path(w)
    too_long = await act(live_server, w.participant_a, path + "/help", {"note": "x" * 501})
    assert too_long.status_code == 400 and "500 characters" in too_long.text
    # In the plenary, the facilitator of the person's own group handles it.
    await act(live_server, w.participant_a, path + "/help", {"note": "Cannot hear"})
    await db.commit()
    request = await db.scalar(
        select(HelpRequest).where(HelpRequest.requester_id == w.participant_a.id)
    )
    assert request is not None and request.group_id is None
    assert (
        await act(live_server, w.facilitator_b, f"{path}/help/{request.id}/claim")
    ).status_code == 403
    assert (
        await act(live_server, w.facilitator_a, f"{path}/help/{request.id}/claim")
    ).status_code == 200
    # A reloaded help desk shows it, with who is helping.
    async with live_server.client(w.facilitator_a) as http:
        desk = (await http.get(path)).text
    assert "Cannot hear" in desk and "Fola Facilitator is helping" in desk
    # Asking again while it is open updates the note rather than opening another.
    await act(live_server, w.participant_a, path + "/help", {"note": "Still cannot hear"})
    await db.commit()
    count = await db.scalar(select(func.count()).select_from(HelpRequest))
    assert count == 1
    # The person who asked may withdraw it; nobody outside the session can touch it.
    withdrawn = await act(live_server, w.participant_a, f"{path}/help/{request.id}/resolve")
    assert withdrawn.status_code == 200
    other = f"/programmes/{w.other_programme.id}/sessions/{w.other_session.id}/live"
    assert (
        await act(live_server, w.outsider, f"{other}/help/{request.id}/resolve")
    ).status_code == 404
    assert (await act(live_server, w.host, f"{path}/help/999999/claim")).status_code == 404
