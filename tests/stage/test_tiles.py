"""Video tiles on the stage through the real app: who names presenters and interpreters,
who pins (at most two on the plenary stage), who stops a tile, and cameras in breakout
rooms (only when the programme allows, at most four a room)."""

from __future__ import annotations

from typing import Any

from app.live import channels
from app.models import Role
from tests.factories import add_member, make_user, make_world
from tests.stage.tile_helpers import audited, live, name, pin, post, role_ids, tiles_events


async def test_a_host_names_and_pins_at_most_two_tiles_and_stops_them(
    db: Any, browser_factory: Any
) -> None:
    w = await make_world(db)
    plenary = channels.plenary(w.session.id)
    # A participant may do none of it.
    refused = await post(
        browser_factory,
        w.participant_a,
        live(w) + "/stage/roles",
        user_id=w.participant_a.id,
        role="interpreter",
    )
    assert refused.status_code == 403 and "hosts" in refused.text
    assert (
        await pin(browser_factory, w, w.host, "presenter", by=w.participant_a)
    ).status_code == 403
    # Someone outside the programme cannot be named.
    outsider = await name(browser_factory, w, w.outsider, "interpreter")
    assert outsider.status_code == 404 and "members" in outsider.text
    # Not named yet: refused, and told why.
    early = await pin(browser_factory, w, w.observer, "interpreter")
    assert early.status_code == 400 and "name them first" in early.text
    assert (await name(browser_factory, w, w.observer, "interpreter")).status_code == 200
    pinned = await pin(browser_factory, w, w.observer, "interpreter")
    assert pinned.status_code == 200, pinned.text
    # A host is a presenter without being named; a named presenter is one too.
    assert (await pin(browser_factory, w, w.host, "presenter")).status_code == 200
    # A participant pinned as presenter without being named: refused.
    refused = await pin(browser_factory, w, w.participant_b, "presenter")
    assert refused.status_code == 400
    assert (await name(browser_factory, w, w.participant_b, "presenter")).status_code == 200
    third = await pin(browser_factory, w, w.participant_b, "presenter")
    assert third.status_code == 409 and "stop one first" in third.text
    events = await tiles_events(db, plenary)
    assert len(events) == 2
    last = events[-1]["h"]
    assert "Sign-language interpreter: Olu Observer" in last and "Presenter: Hana Host" in last
    tile_id = int(last.split('data-tile-id="')[1].split('"')[0])
    # Another participant cannot stop it; the host can.
    stop_url = live(w) + f"/stage/tiles/{tile_id}/stop"
    assert (await post(browser_factory, w.participant_a, stop_url)).status_code == 403
    stopped = await post(browser_factory, w.host, stop_url)
    assert stopped.status_code == 200 and "stopped" in stopped.text
    assert "Olu Observer" not in (await tiles_events(db, plenary))[-1]["h"]
    # Taking the presenter role back takes their tile down too (none here: only named).
    for role_id in await role_ids(db, w.session.id):
        removed = await post(browser_factory, w.host, live(w) + f"/stage/roles/{role_id}/remove")
        assert removed.status_code == 200
    assert await audited(db, w.programme.id) == [
        "stage.role_named",
        "stage.tile_pinned",
        "stage.tile_pinned",
        "stage.role_named",
        "stage.tile_stopped",
        "stage.role_removed",
        "stage.role_removed",
    ]


async def test_the_interpreter_sees_the_plenary_and_nothing_more(
    db: Any, browser_factory: Any
) -> None:
    w = await make_world(db)
    await name(browser_factory, w, w.observer, "interpreter")
    assert (await pin(browser_factory, w, w.observer, "interpreter")).status_code == 200
    page = await browser_factory(w.observer).get(live(w))
    assert page.status_code == 200
    assert "Sign-language interpreter: Olu Observer" in page.text
    # No host controls, and nothing of the staff's.
    assert "Pin on the stage" not in page.text and "Host console" not in page.text
    # Still an observer: the chat stays read-only.
    said = await post(browser_factory, w.observer, live(w) + "/chat", text="hello")
    assert said.status_code == 403


async def test_breakout_cameras_only_when_allowed_and_at_most_four(
    db: Any, browser_factory: Any
) -> None:
    w = await make_world(db)
    on_url = live(w) + "/stage/camera/on"
    extra = []
    for n in range(4):
        person = await make_user(db, name=f"Member {n}")
        await add_member(db, w.programme, person, Role.PARTICIPANT, w.group_a)
        extra.append(person)
    await db.commit()
    # In the plenary: a host pins; nobody turns a camera on.
    plenary = await post(browser_factory, w.participant_a, on_url)
    assert plenary.status_code == 400 and "breakout rooms only" in plenary.text
    opened = await post(browser_factory, w.host, live(w) + "/breakouts/open", minutes="10")
    assert opened.status_code == 200, opened.text
    off = await post(browser_factory, w.participant_a, on_url)
    assert off.status_code == 403 and "does not allow" in off.text
    w.programme.allow_breakout_cameras = True
    db.add(w.programme)
    await db.commit()
    room = channels.room(w.session.id, w.group_a.id)
    for person in [w.participant_a, *extra[:3]]:
        answer = await post(browser_factory, person, on_url)
        assert answer.status_code == 200 and answer.text == "Your camera is on."
    fifth = await post(browser_factory, extra[3], on_url)
    assert fifth.status_code == 409
    assert "4 people already have their camera on" in fifth.text
    assert "Camera: Priya Participant" in (await tiles_events(db, room))[-1]["h"]
    # Group B's room shows none of group A's cameras.
    assert await tiles_events(db, channels.room(w.session.id, w.group_b.id)) == []
    # One turns theirs off; the fifth may now.
    assert (
        await post(browser_factory, w.participant_a, live(w) + "/stage/camera/off")
    ).status_code == 200
    assert (await post(browser_factory, extra[3], on_url)).status_code == 200
    # Observers never send.
    observer = await post(browser_factory, w.observer, on_url)
    assert observer.status_code in (400, 403)
    # The next round of rooms starts with no cameras: the same room's page shows none.
    await post(browser_factory, w.host, live(w) + "/breakouts/close", warning_seconds="0")
    await post(browser_factory, w.host, live(w) + "/breakouts/open", minutes="10")
    page = await browser_factory(w.participant_b).get(live(w))
    assert "Camera:" not in page.text
    again = await post(browser_factory, w.participant_a, on_url)
    assert again.status_code == 200


async def test_a_facilitator_stops_a_camera_in_their_room_only(
    db: Any, browser_factory: Any
) -> None:
    w = await make_world(db)
    w.programme.allow_breakout_cameras = True
    db.add(w.programme)
    await db.commit()
    await post(browser_factory, w.host, live(w) + "/breakouts/open", minutes="10")
    assert (
        await post(browser_factory, w.participant_a, live(w) + "/stage/camera/on")
    ).status_code == 200
    event = (await tiles_events(db, channels.room(w.session.id, w.group_a.id)))[-1]
    tile_id = int(event["h"].split('data-tile-id="')[1].split('"')[0])
    stop_url = live(w) + f"/stage/tiles/{tile_id}/stop"
    assert (await post(browser_factory, w.facilitator_b, stop_url)).status_code == 403
    assert (await post(browser_factory, w.facilitator_a, stop_url)).status_code == 200
