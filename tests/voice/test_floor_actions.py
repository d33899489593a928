"""The host's floor through the real routes: give (lowering the hand), take back, open
mic; who is refused and how; the events stored for the room and the person; the audit."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.live import channels
from app.live.models import HelpRequest
from app.voice.floor import may_speak
from tests.factories import make_world
from tests.voice.helpers import audited, open_breakout, seat_of, stored, voice_path

HX = {"HX-Request": "true"}


async def test_host_gives_the_floor_to_a_raised_hand_and_takes_it_back(
    db: AsyncSession, browser_factory: Any
) -> None:
    w = await make_world(db)
    path = voice_path(w)
    plenary = channels.plenary(w.session.id)
    priya = browser_factory(w.participant_a)
    raised = await priya.submit(path.removesuffix("/voice") + "/hand", {"action": "raise"})
    assert raised.status_code == 303
    assert (await may_speak(db, await seat_of(db, w, w.participant_a)))[0] is False

    host = browser_factory(w.host)
    given = await host.submit(path + "/floor/give", {"user_id": w.participant_a.id}, headers=HX)
    assert given.status_code == 200, given.text
    assert given.text == "Priya Participant has the floor in the plenary."
    assert (await may_speak(db, await seat_of(db, w, w.participant_a))) == (
        True,
        "You have the floor.",
    )
    # The hand went down with it.
    await db.commit()
    hand = (await db.execute(HelpRequest.__table__.select())).mappings().one()
    assert hand["status"] == "resolved"

    room_events = await stored(db, plenary, "voice.floor")
    own_events = await stored(db, channels.personal(w.participant_a.id), "voice.floor")
    assert [e["d"]["change"] for e in room_events] == ["given"]
    assert "Hana Host gave Priya Participant the floor." in room_events[0]["h"]
    assert own_events[0]["d"] == {
        "channel": plenary,
        "change": "given",
        "open_mic": False,
        "user": w.participant_a.id,
    }
    assert "gave you the floor" in own_events[0]["h"]

    again = await host.submit(path + "/floor/give", {"user_id": w.participant_a.id}, headers=HX)
    assert again.status_code == 200 and "already has the floor" in again.text

    taken = await host.submit(path + "/floor/take", {"user_id": w.participant_a.id}, headers=HX)
    assert taken.status_code == 200 and "no longer has the floor" in taken.text
    assert (await may_speak(db, await seat_of(db, w, w.participant_a)))[0] is False
    own_events = await stored(db, channels.personal(w.participant_a.id), "voice.floor")
    assert [e["d"]["change"] for e in own_events] == ["given", "taken"]
    assert "took the floor back" in own_events[-1]["h"]

    twice = await host.submit(path + "/floor/take", {"user_id": w.participant_a.id}, headers=HX)
    assert twice.status_code == 409 and "does not have the floor" in twice.text
    actions = [(a.action, a.actor_id, a.target) for a in await audited(db, w)]
    who = f"user:{w.participant_a.id}"
    assert actions == [("voice.floor_give", w.host.id, who), ("voice.floor_take", w.host.id, who)]


async def test_only_hosts_give_the_floor_and_only_where_it_makes_sense(
    db: AsyncSession, browser_factory: Any
) -> None:
    w = await make_world(db)
    path = voice_path(w)
    for who in (w.facilitator_a, w.participant_b, w.it_support, w.observer):
        refused = await browser_factory(who).submit(
            path + "/floor/give", {"user_id": w.participant_a.id}, headers=HX
        )
        assert refused.status_code == 403 and "Only the session's hosts" in refused.text
    host = browser_factory(w.host)
    cases = [
        (w.outsider.id, 404, "could not find that person"),
        (999_999, 404, "could not find that person"),
        (w.observer.id, 409, "observing"),
        (w.facilitator_a.id, 409, "can always speak"),
        (w.host.id, 409, "can always speak"),
    ]
    for user_id, status, text in cases:
        response = await host.submit(path + "/floor/give", {"user_id": user_id}, headers=HX)
        assert (response.status_code, text in response.text) == (status, True), response.text
    bad = await host.submit(path + "/floor/give", {"user_id": "Priya"}, headers=HX)
    assert bad.status_code == 400 and "Choose a person" in bad.text
    # In an open-mic breakout room the floor means nothing.
    await open_breakout(db, w)
    open_room = await host.submit(path + "/floor/give", {"user_id": w.participant_a.id}, headers=HX)
    assert open_room.status_code == 409 and "Group A's room is open mic" in open_room.text
    assert await audited(db, w) == []


async def test_open_mic_in_the_plenary_and_a_limited_breakout_room(
    db: AsyncSession, browser_factory: Any
) -> None:
    w = await make_world(db)
    path = voice_path(w)
    plenary = channels.plenary(w.session.id)
    host = browser_factory(w.host)
    refused = await browser_factory(w.facilitator_a).submit(
        path + "/open-mic", {"channel": plenary, "action": "on"}, headers=HX
    )
    assert refused.status_code == 403

    on = await host.submit(path + "/open-mic", {"channel": plenary, "action": "on"}, headers=HX)
    assert on.status_code == 200 and "anyone in the plenary can speak" in on.text
    assert (await may_speak(db, await seat_of(db, w, w.participant_b)))[0] is True
    events = await stored(db, plenary, "voice.floor")
    assert [(e["d"]["change"], e["d"]["open_mic"], e["d"]["user"]) for e in events] == [
        ("open_mic_on", True, None)
    ]
    same = await host.submit(path + "/open-mic", {"channel": plenary, "action": "on"}, headers=HX)
    assert same.status_code == 200 and "already open mic" in same.text
    assert len(await stored(db, plenary, "voice.floor")) == 1

    off = await host.submit(path + "/open-mic", {"channel": plenary, "action": "off"}, headers=HX)
    assert off.status_code == 200 and "Open mic is over" in off.text
    assert (await may_speak(db, await seat_of(db, w, w.participant_b)))[0] is False

    await open_breakout(db, w)
    room_a = channels.room(w.session.id, w.group_a.id)
    limit = await host.submit(path + "/open-mic", {"channel": room_a, "action": "off"}, headers=HX)
    assert limit.status_code == 200
    assert (await may_speak(db, await seat_of(db, w, w.participant_a)))[0] is False
    given = await host.submit(path + "/floor/give", {"user_id": w.participant_a.id}, headers=HX)
    assert given.status_code == 200 and "in Group A's room" in given.text
    assert (await may_speak(db, await seat_of(db, w, w.participant_a)))[0] is True

    for data, status in (
        ({"channel": "s999:g1", "action": "on"}, 404),
        ({"channel": room_a, "action": "maybe"}, 400),
        ({"channel": "", "action": "on"}, 400),
    ):
        response = await host.submit(path + "/open-mic", data, headers=HX)
        assert response.status_code == status, response.text
    assert [a.action for a in await audited(db, w)] == [
        "voice.open_mic_on",
        "voice.open_mic_off",
        "voice.open_mic_off",
        "voice.floor_give",
    ]


async def test_without_javascript_the_form_goes_back_with_a_notice(
    db: AsyncSession, browser_factory: Any
) -> None:
    w = await make_world(db)
    path = voice_path(w)
    live = path.removesuffix("/voice")
    host = browser_factory(w.host)
    await browser_factory(w.participant_a).submit(live + "/hand", {"action": "raise"})

    page = await host.get(live)
    assert page.status_code == 200
    assert 'aria-label="Give the floor to Priya Participant (she/her)"' in page.text

    given = await host.submit(path + "/floor/give", {"user_id": w.participant_a.id, "from": "live"})
    assert given.status_code == 303
    assert given.headers["location"] == f"{live}?voice=given#voice-controls"
    after = await host.get(given.headers["location"].split("#")[0])
    assert "Done: they have the floor." in after.text
    assert 'aria-label="Take back the floor from Priya Participant (she/her)"' in after.text

    from_console = await host.submit(
        path + "/floor/take", {"user_id": w.participant_a.id, "from": "host"}
    )
    assert from_console.headers["location"] == f"{live}/host?voice=taken#voice-controls"
    console = await host.get(f"{live}/host?voice=taken")
    assert "Done: the floor is taken back." in console.text
    assert "Nobody has been given the floor." in console.text


async def test_with_htmx_the_controls_come_back_redrawn(
    db: AsyncSession, browser_factory: Any
) -> None:
    w = await make_world(db)
    path = voice_path(w)
    plenary = channels.plenary(w.session.id)
    host = browser_factory(w.host)
    response = await host.submit(
        path + "/open-mic", {"channel": plenary, "action": "on", "from": "host"}, headers=HX
    )
    assert response.status_code == 200
    assert '<div id="voice-panel">' in response.text
    assert "Open mic is on" in response.text and "Turn open mic off" in response.text
    assert "anyone in the plenary can speak now." in response.text  # in #voice-said
