"""Muting voices through the real routes: who may mute whom, that nobody unmutes anyone
else, "mute all" in a room and in the plenary, the events each person gets (delivered live
too), and the audit."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.live import channels
from tests.conftest import LiveServer
from tests.factories import make_world
from tests.live_action_helpers import act, in_room, live_path, of_type, open_rooms
from tests.voice.helpers import audited, open_breakout, stored, voice_path

HX = {"HX-Request": "true"}


async def test_a_facilitator_mutes_someone_in_their_room_once(
    db: AsyncSession, browser_factory: Any
) -> None:
    w = await make_world(db)
    path = voice_path(w)
    await open_breakout(db, w)
    fola = browser_factory(w.facilitator_a)
    muted = await fola.submit(path + "/mute", {"user_id": w.participant_a.id}, headers=HX)
    assert muted.status_code == 200
    assert muted.text.startswith("Priya Participant is muted.")
    events = await stored(db, channels.personal(w.participant_a.id), "voice.muted")
    assert len(events) == 1
    message = (
        "Fola Facilitator muted your microphone. Unmute it yourself when you want to speak again."
    )
    assert events[0]["d"] == {"by": "Fola Facilitator", "message": message}
    assert message in events[0]["h"]
    entries = await audited(db, w)
    assert [(e.action, e.actor_id, e.target) for e in entries] == [
        ("voice.mute", w.facilitator_a.id, f"user:{w.participant_a.id}")
    ]
    assert entries[0].detail["channel"] == channels.room(w.session.id, w.group_a.id)


async def test_who_may_not_mute_whom(db: AsyncSession, browser_factory: Any) -> None:
    w = await make_world(db)
    path = voice_path(w)
    await open_breakout(db, w)
    cases = [
        # a participant mutes nobody
        (w.participant_b, w.participant_a, 403, "Only facilitators and hosts"),
        (w.observer, w.participant_a, 403, "Only facilitators and hosts"),
        (w.it_support, w.participant_a, 403, "Only facilitators and hosts"),
        # a facilitator of another group
        (w.facilitator_b, w.participant_a, 403, "rooms you facilitate"),
        # a facilitator cannot mute the host (in the plenary, which they do not moderate)
        (w.facilitator_a, w.host, 403, "rooms you facilitate"),
        (w.facilitator_a, w.outsider, 404, "could not find that person"),
        (w.facilitator_a, w.facilitator_a, 409, "your own microphone"),
    ]
    for actor, target, status, text in cases:
        response = await browser_factory(actor).submit(
            path + "/mute", {"user_id": target.id}, headers=HX
        )
        assert (response.status_code, text in response.text) == (status, True), (
            actor.display_name,
            response.text,
        )
    # Nobody unmutes someone else, not even a host.
    for actor in (w.facilitator_a, w.host):
        response = await browser_factory(actor).submit(
            path + "/mute", {"user_id": w.participant_a.id, "action": "unmute"}, headers=HX
        )
        assert response.status_code == 403 and "they unmute themselves" in response.text
    assert await stored(db, channels.personal(w.participant_a.id), "voice.muted") == []
    assert await stored(db, channels.personal(w.host.id), "voice.muted") == []
    assert await audited(db, w) == []


async def test_only_a_host_mutes_a_host(db: AsyncSession, browser_factory: Any) -> None:
    """Even in a room the facilitator moderates: the host entered group A's room."""
    w = await make_world(db)
    path = voice_path(w)
    live = live_path(w)
    await open_breakout(db, w)
    host = browser_factory(w.host)
    assert (await host.submit(live + "/enter", {"group_id": w.group_a.id})).status_code == 303
    refused = await browser_factory(w.facilitator_a).submit(
        path + "/mute", {"user_id": w.host.id}, headers=HX
    )
    assert refused.status_code == 403 and "Only a host can mute a host" in refused.text
    co_host = browser_factory(w.admin)
    allowed = await co_host.submit(path + "/mute", {"user_id": w.host.id}, headers=HX)
    assert allowed.status_code == 200
    assert len(await stored(db, channels.personal(w.host.id), "voice.muted")) == 1


async def here(app_state: Any, channel: str, *people: Any) -> None:
    for person in people:
        await app_state.presence.broker.presence_set(
            channel, str(person.id), person.display_name, 60
        )


async def test_mute_all_in_the_plenary_spares_the_hosts(
    db: AsyncSession, browser_factory: Any, app_and_state: Any
) -> None:
    w = await make_world(db)
    path = voice_path(w)
    plenary = channels.plenary(w.session.id)
    everyone = (w.host, w.admin, w.facilitator_a, w.participant_a, w.participant_b, w.it_support)
    await here(app_and_state[1], plenary, *everyone)
    refused = await browser_factory(w.facilitator_a).submit(
        path + "/mute-all", {"channel": plenary}, headers=HX
    )
    assert refused.status_code == 403 and "Only a host can mute everyone in the plenary" in (
        refused.text
    )
    muted = await browser_factory(w.host).submit(
        path + "/mute-all", {"channel": plenary}, headers=HX
    )
    assert muted.status_code == 200 and "Muted 4 people in the plenary" in muted.text
    for person in everyone:
        events = await stored(db, channels.personal(person.id), "voice.muted")
        expected = 0 if person in (w.host, w.admin) else 1
        assert len(events) == expected, person.display_name
    entries = await audited(db, w)
    assert [e.action for e in entries] == ["voice.mute_all"]
    assert entries[0].target == plenary
    assert entries[0].detail["muted"] == sorted(
        p.id for p in (w.facilitator_a, w.participant_a, w.participant_b, w.it_support)
    )


async def test_mute_all_in_a_breakout_room(
    db: AsyncSession, browser_factory: Any, app_and_state: Any
) -> None:
    w = await make_world(db)
    path = voice_path(w)
    await open_breakout(db, w)
    room_a = channels.room(w.session.id, w.group_a.id)
    room_b = channels.room(w.session.id, w.group_b.id)
    await here(app_and_state[1], room_a, w.facilitator_a, w.participant_a, w.host)
    await here(app_and_state[1], room_b, w.participant_b)
    other = await browser_factory(w.facilitator_b).submit(
        path + "/mute-all", {"channel": room_a}, headers=HX
    )
    assert other.status_code == 403
    unknown = await browser_factory(w.facilitator_a).submit(
        path + "/mute-all", {"channel": "s1:g99999"}, headers=HX
    )
    assert unknown.status_code == 404
    muted = await browser_factory(w.facilitator_a).submit(
        path + "/mute-all", {"channel": room_a}, headers=HX
    )
    # Not herself, not the host who is visiting, nobody in group B's room.
    assert muted.status_code == 200 and "Muted 1 person in Group A's room" in muted.text
    assert len(await stored(db, channels.personal(w.participant_a.id), "voice.muted")) == 1
    for spared in (w.facilitator_a, w.host, w.participant_b):
        assert await stored(db, channels.personal(spared.id), "voice.muted") == []


async def test_mute_and_floor_arrive_live_on_the_persons_connection(
    live_server: LiveServer, db: AsyncSession
) -> None:
    w = await make_world(db)
    await open_rooms(live_server, w)
    alice = await in_room(live_server, w, w.participant_a, w.group_a.id)
    path = voice_path(w)
    muted = await act(live_server, w.facilitator_a, path + "/mute", {"user_id": w.participant_a.id})
    assert muted.status_code == 200
    event = await alice.wait_for(of_type("voice.muted"))
    assert event["c"] == channels.personal(w.participant_a.id) and event["i"] > 0
    assert event["d"]["by"] == "Fola Facilitator"
    room_a = channels.room(w.session.id, w.group_a.id)
    limited = await act(
        live_server, w.host, path + "/open-mic", {"channel": room_a, "action": "off"}
    )
    assert limited.status_code == 200
    floor = await alice.wait_for(of_type("voice.floor"))
    assert floor["c"] == room_a and floor["d"]["change"] == "open_mic_off"
    given = await act(live_server, w.host, path + "/floor/give", {"user_id": w.participant_a.id})
    assert given.status_code == 200
    got = [await alice.wait_for(of_type("voice.floor")) for _ in range(2)]
    assert sorted(e["c"] for e in got) == sorted([room_a, channels.personal(w.participant_a.id)])
    await alice.close()


async def test_the_facilitators_console_has_a_mute_button_for_each_person_here(
    db: AsyncSession, browser_factory: Any, app_and_state: Any
) -> None:
    w = await make_world(db)
    path = voice_path(w)
    await open_breakout(db, w)
    room_a = channels.room(w.session.id, w.group_a.id)
    await here(app_and_state[1], room_a, w.facilitator_a, w.participant_a, w.host)
    fola = browser_factory(w.facilitator_a)
    console = f"{live_path(w)}/console/{w.group_a.id}"
    page = await fola.get(console)
    assert page.status_code == 200
    assert 'aria-label="Mute Priya Participant (she/her)"' in page.text
    assert 'aria-label="Mute Hana Host"' not in page.text  # only a host mutes a host
    assert "only a host can mute a host" in page.text
    assert 'aria-label="Mute everyone else in Group A&#39;s room"' in page.text

    # Without JavaScript: back to the console, which says what was done.
    muted = await fola.submit(
        path + "/mute", {"user_id": w.participant_a.id, "from": f"console-{w.group_a.id}"}
    )
    assert muted.status_code == 303
    assert muted.headers["location"] == f"{console}?voice=muted#voice-controls"
    again = await fola.get(f"{console}?voice=muted")
    assert "Done: they are muted, and can unmute themselves." in again.text
    # With htmx, the console's controls come back redrawn, with the answer in them.
    redrawn = await fola.submit(
        path + "/mute-all", {"channel": room_a, "from": f"console-{w.group_a.id}"}, headers=HX
    )
    assert redrawn.status_code == 200 and '<div id="voice-panel">' in redrawn.text
    assert "Muted 1 person in Group A&#39;s room." in redrawn.text
    # Another group's console is not redrawn for a facilitator who may not open it.
    elsewhere = await browser_factory(w.facilitator_b).submit(
        path + "/mute-all",
        {"channel": channels.room(w.session.id, w.group_b.id), "from": f"console-{w.group_a.id}"},
        headers=HX,
    )
    assert elsewhere.status_code == 200 and "voice-panel" not in elsewhere.text
