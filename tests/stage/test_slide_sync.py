"""The slide sync: the presenter steps through a deck and everyone in the room follows, on
the WebSocket and on the fallbacks; a late joiner sees the live slide at once; a viewer may
look back, never ahead; only a room's presenters change its slides, and a room's deck is
never shown elsewhere."""

from __future__ import annotations

import re

import pytest

from app.live import channels
from app.stage.models import StageRole, StageRoleKind
from tests.factories import make_world
from tests.live_action_helpers import act, audit_actions, get_room, live_path, of_type, open_rooms
from tests.live_helpers import LiveClient
from tests.live_streams import SseReader
from tests.stage.slide_helpers import upload_deck

pytestmark = pytest.mark.timeout(90)


async def test_everyone_follows_the_presenter_and_a_late_joiner_starts_on_the_live_slide(
    live_server, db
) -> None:
    w = await make_world(db)
    path = live_path(w)
    plenary = channels.plenary(w.session.id)
    deck_id = await upload_deck(live_server, w.host, w, pages=3, title="Welcome deck")
    on_ws = await LiveClient.connect(live_server, w.participant_a, path, {plenary: None})
    on_sse = await SseReader(live_server, w.participant_b, path, {plenary: None}).open()
    images: list[str] = []
    try:
        shown = await act(live_server, w.host, path + "/stage/slide", {"deck_id": deck_id})
        assert shown.status_code == 200 and shown.text == "Showing slide 1 of 3."
        for number in (1, 2, 3):
            if number > 1:
                step = {"deck_id": deck_id, "number": number}
                assert (await act(live_server, w.host, path + "/stage/slide", step)).is_success
            event = await on_ws.wait_for(of_type("stage.slide"))
            assert event["c"] == plenary and event["s"] == "replace" and "stage-live" in event["h"]
            assert f'data-number="{number}"' in event["h"] and "of 3" in event["h"]
            assert f"Slide {number}: Why we listen" in event["h"]  # the page's own text
            # The image comes by a signed link, served without a look in the database.
            src = re.search(r'src="(/slide-images/[0-9a-f]{32}\.webp\?s=[0-9a-f]{32})"', event["h"])
            assert src, event["h"]
            images.append(src.group(1))
            same = await on_sse.wait_for(
                lambda e, n=number: e.get("t") == "stage.slide" and f'data-number="{n}"' in e["h"]
            )
            assert same["i"] == event["i"]

        # A late joiner's page is drawn on slide 3, the image and its text with it.
        page = await get_room(live_server, w.observer, path)
        assert 'id="stage-live"' in page and 'data-number="3"' in page
        assert images[2].replace("&", "&amp;") in page or images[2] in page
        # Each slide's image by its link; a link whose signature is changed loads nothing.
        async with live_server.client(w.participant_b) as http:
            fetched = [await http.get(url) for url in images]
            forged = await http.get(images[0][:-4] + "0000")
        assert all(r.status_code == 200 and r.content[8:12] == b"WEBP" for r in fetched)
        assert len({r.content for r in fetched}) == 3
        assert forged.status_code == 404
        # In text-only mode the same slide is there as text; the image is hidden by the room's
        # text-only class (a lazy image that is not shown is never fetched).
        async with live_server.client(w.participant_a) as http:
            text_only = (await http.get(path + "/room?text=1")).text
        assert "text-only" in text_only and "Slide 3: Why we listen" in text_only

        # Stopping clears everyone's stage.
        assert (await act(live_server, w.host, path + "/stage/stop")).is_success
        cleared = await on_ws.wait_for(of_type("stage.slide"))
        assert 'data-deck="0"' in cleared["h"] and "No slides are being shown" in cleared["h"]
        assert "stage.present" in await audit_actions(db, w.programme.id)
    finally:
        await on_ws.close()
        await on_sse.close()


async def test_a_reconnecting_viewer_gets_the_slide_it_missed(live_server, db) -> None:
    w = await make_world(db)
    path = live_path(w)
    plenary = channels.plenary(w.session.id)
    deck_id = await upload_deck(live_server, w.host, w, pages=3)
    viewer = await LiveClient.connect(live_server, w.participant_a, path, {plenary: None})
    await act(live_server, w.host, path + "/stage/slide", {"deck_id": deck_id, "number": 1})
    first = await viewer.wait_for(of_type("stage.slide"))
    await viewer.close()
    await act(live_server, w.host, path + "/stage/slide", {"deck_id": deck_id, "number": 2})
    back = await LiveClient.connect(live_server, w.participant_a, path, {plenary: first["i"]})
    try:
        missed = await back.wait_for(of_type("stage.slide"))
        assert 'data-number="2"' in missed["h"]
    finally:
        await back.close()


async def test_only_a_rooms_presenters_change_its_slides(live_server, db) -> None:
    w = await make_world(db)
    path = live_path(w)
    deck_id = await upload_deck(live_server, w.host, w, pages=2)
    step = {"deck_id": deck_id, "number": 1}
    refused = await act(live_server, w.participant_a, path + "/stage/slide", step)
    assert refused.status_code == 403 and "presenters" in refused.text
    # A facilitator is not the plenary's presenter...
    assert (await act(live_server, w.facilitator_a, path + "/stage/slide", step)).status_code == 403
    # ...until the host names them for the session.
    db.add(
        StageRole(
            session_id=w.session.id,
            user_id=w.facilitator_a.id,
            role=StageRoleKind.PRESENTER.value,
        )
    )
    await db.commit()
    assert (await act(live_server, w.facilitator_a, path + "/stage/slide", step)).is_success
    beyond = await act(
        live_server, w.host, path + "/stage/slide", {"deck_id": deck_id, "number": 3}
    )
    assert beyond.status_code == 400 and "slides 1 to 2" in beyond.text
    bad = await act(live_server, w.host, path + "/stage/slide", {"deck_id": "x", "number": 1})
    assert bad.status_code == 400 and "Choose a deck" in bad.text


async def test_a_viewer_looks_back_but_never_ahead(live_server, db) -> None:
    w = await make_world(db)
    path = live_path(w)
    deck_id = await upload_deck(live_server, w.host, w, pages=3)
    await act(live_server, w.host, path + "/stage/slide", {"deck_id": deck_id, "number": 2})
    async with live_server.client(w.participant_a) as http:
        earlier = await http.get(path + f"/stage/look?deck={deck_id}&n=1")
        ahead = await http.get(path + f"/stage/look?deck={deck_id}&n=3")
        nonsense = await http.get(path + f"/stage/look?deck={deck_id}&n=zero")
    assert earlier.status_code == 200 and "Looking back: slide 1 of 3" in earlier.text
    assert ahead.status_code == 403 and "not ahead" in ahead.text
    assert nonsense.status_code == 422
    async with live_server.client(w.host) as http:
        assert (await http.get(path + f"/stage/look?deck={deck_id}&n=3")).status_code == 200


async def test_a_breakout_rooms_deck_is_shown_only_in_that_room(live_server, db) -> None:
    w = await make_world(db)
    path = live_path(w)
    room_a = channels.room(w.session.id, w.group_a.id)
    room_b = channels.room(w.session.id, w.group_b.id)
    deck_id = await upload_deck(live_server, w.facilitator_a, w, pages=2, room=str(w.group_a.id))
    await open_rooms(live_server, w)
    in_a = await LiveClient.connect(live_server, w.participant_a, path, {room_a: None})
    in_b = await LiveClient.connect(live_server, w.participant_b, path, {room_b: None})
    try:
        step = {"deck_id": deck_id, "number": 2}
        # Group B's facilitator cannot show it, not even in their own room.
        assert (
            await act(live_server, w.facilitator_b, path + "/stage/slide", step)
        ).status_code == 404
        assert (await act(live_server, w.facilitator_a, path + "/stage/slide", step)).is_success
        event = await in_a.wait_for(of_type("stage.slide"))
        assert event["c"] == room_a and 'data-number="2"' in event["h"]
        assert not [m for m in await in_b.quiet(0.3) if m.get("t") == "stage.slide"]
        # Group B's members cannot look at it either.
        async with live_server.client(w.participant_b) as http:
            assert (await http.get(path + f"/stage/look?deck={deck_id}&n=1")).status_code == 404
    finally:
        await in_a.close()
        await in_b.close()


async def test_changes_to_the_deck_on_the_stage_reach_the_room_at_once(live_server, db) -> None:
    w = await make_world(db)
    path = live_path(w)
    plenary = channels.plenary(w.session.id)
    deck_id = await upload_deck(live_server, w.host, w, pages=2)
    deck_path = f"/programmes/{w.programme.id}/sessions/{w.session.id}/decks/{deck_id}"
    await act(live_server, w.host, path + "/stage/slide", {"deck_id": deck_id, "number": 2})
    viewer = await LiveClient.connect(live_server, w.participant_a, path, {plenary: None})
    try:
        # The presenter describes the slide on show: the room reads the description.
        described = {"alt_text": "A circle of chairs <facing> each other", "notes": "Pause here"}
        await act(live_server, w.host, deck_path + "/slides/2", described, hx=False)
        event = await viewer.wait_for(of_type("stage.slide"))
        assert "A circle of chairs &lt;facing&gt; each other" in event["h"]
        assert "Pause here" not in event["h"]  # speaker notes are the presenter's alone
        # Downloads allowed: the room gets the links.
        await act(
            live_server, w.host, deck_path + "/downloadable", {"downloadable": "on"}, hx=False
        )
        event = await viewer.wait_for(of_type("stage.slide"))
        assert f'href="{deck_path}/pdf"' in event["h"]
        async with live_server.client(w.participant_a) as http:
            pdf = await http.get(deck_path + "/pdf")
        assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
        # Deleted: the stage shows nothing.
        await act(live_server, w.host, deck_path + "/delete", hx=False)
        event = await viewer.wait_for(of_type("stage.slide"))
        assert 'data-deck="0"' in event["h"]
    finally:
        await viewer.close()
