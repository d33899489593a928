"""The consoles and the tech check, over HTTP: who may open which console; what a
facilitator sees of their room (people with the access needs shared with them, hands in
order, help requests, who is speaking) and the host of every room; quick notes landing on
the group's evidence board; the tech check's sample caption of real speech (and its
refusals), its connection check and its request for help reaching IT support."""

from __future__ import annotations

import io
import json
import random
import re
import wave
from pathlib import Path
from typing import Any

import pytest
import websockets
from sqlalchemy import select

from app.config import Settings
from app.evidence.models import EvidenceItem
from app.live import channels
from app.live.events import build_registry
from app.live.models import HelpRequest
from app.live.speaking import Microphone, Speaking
from app.templating import make_templates
from realtime.broker import Broker, InProcessBroker
from realtime.publish import Live
from realtime.redis_broker import RedisBroker
from tests.audio_fixtures import (  # noqa: F401 - the fixtures
    Speech,
    silence,
    speech_fixture,
    vosk_model_path_fixture,
)
from tests.conftest import redis_url_or_skip
from tests.factories import make_session, make_world
from tests.live_action_helpers import act, in_room, live_path, of_type, open_rooms
from tests.live_helpers import LiveClient

SENTENCE = "the quick brown fox jumps over the lazy dog"
WORDS = {"quick", "brown", "fox", "jumps", "lazy", "dog"}


@pytest.fixture
def settings(settings: Settings, request: pytest.FixtureRequest) -> Settings:
    """The real speech model for the tests that ask for it; none for the others."""
    if "vosk_model_path" not in request.fixturenames:
        return settings
    model = request.getfixturevalue("vosk_model_path")
    return settings.model_copy(update={"vosk_model_path": model})


def wav_bytes(pcm: bytes, rate: int = 16000) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(pcm)
    return out.getvalue()


def console_path(w: Any, group: Any) -> str:
    return f"{live_path(w)}/console/{group.id}"


def between(html: str, start: str, end: str) -> str:
    """The part of a page from `start` to the next `end`."""
    at = html.index(start)
    return html[at : html.index(end, at)]


def people_panel(html: str) -> str:
    return between(html, 'id="console-people"', "</section>")


# -- who may open which console --


async def test_each_console_opens_for_its_people_only(browser_factory: Any, db: Any) -> None:
    w = await make_world(db)
    group_a = console_path(w, w.group_a)

    fola = browser_factory(w.facilitator_a)
    page = await fola.get(group_a)
    assert page.status_code == 200
    assert "Console: Group A" in page.text and "Raised hands" in page.text
    # One group: the console link takes the facilitator straight to it.
    chosen = await fola.get(live_path(w) + "/console")
    assert chosen.status_code == 303 and chosen.headers["location"] == group_a
    assert (await fola.get(live_path(w) + "/host")).status_code == 403

    # Group B's facilitator cannot open group A's console, nor its parts.
    finn = browser_factory(w.facilitator_b)
    refused = await finn.get(group_a)
    assert refused.status_code == 403 and "facilitators" in refused.text
    for part in ("/room", "/people"):
        assert (await finn.get(group_a + part)).status_code == 403
    assert (await finn.submit(group_a + "/notes", {"markdown": "Sneaky"})).status_code == 403

    # Participants, observers and IT support have no console; the outsider no session.
    for user in (w.participant_a, w.observer, w.it_support):
        browser = browser_factory(user)
        assert (await browser.get(group_a)).status_code == 403
        assert (await browser.get(live_path(w) + "/console")).status_code == 403
        assert (await browser.get(live_path(w) + "/host")).status_code == 403
    assert (await browser_factory(w.outsider).get(group_a)).status_code == 404

    # Hosts open any group's console, choose among them, and open the host console.
    host = browser_factory(w.host)
    assert (await host.get(console_path(w, w.group_b))).status_code == 200
    choice = await host.get(live_path(w) + "/console")
    assert choice.status_code == 200 and "Console: Group A" in choice.text
    assert "Console: Group B" in choice.text
    assert (await host.get(live_path(w) + "/host")).status_code == 200
    # A group of another programme is not found.
    assert (await host.get(console_path(w, w.other_group))).status_code == 404


async def test_live_page_links_the_consoles_for_the_right_people(
    browser_factory: Any, db: Any
) -> None:
    w = await make_world(db)
    pages = {
        who: (await browser_factory(user).get(live_path(w))).text
        for who, user in (
            ("host", w.host),
            ("facilitator", w.facilitator_a),
            ("participant", w.participant_a),
            ("it", w.it_support),
        )
    }
    assert "Host console" in pages["host"] and "Facilitator console" in pages["host"]
    assert "Host console" not in pages["facilitator"]
    assert f'href="{live_path(w)}/console"' in pages["facilitator"]
    for who in ("participant", "it"):
        assert "Host console" not in pages[who] and "Facilitator console" not in pages[who]
    for page in pages.values():
        assert f"/tech-check?session_id={w.session.id}" in page
    # The help desk gives its people a link to send to someone they are helping.
    link = f"http://testserver/tech-check?session_id={w.session.id}"
    assert link in pages["it"] and link in pages["host"] and link not in pages["participant"]
    home = await browser_factory(w.participant_a).get("/")
    assert 'href="/tech-check"' in home.text
    lobby = await browser_factory(w.participant_a).get(
        f"/programmes/{w.programme.id}/sessions/{w.session.id}"
    )
    assert f'href="/tech-check?session_id={w.session.id}"' in lobby.text


# -- the facilitator's console --


async def test_facilitator_sees_their_room_hands_help_and_shared_needs(
    live_server: Any, db: Any
) -> None:
    w = await make_world(db)
    w.participant_a.large_text = True
    w.participant_a.access_notes = "Please say your name before you speak"
    w.participant_b.screen_reader = True
    w.participant_b.access_notes = "Pat's private note"
    await db.commit()
    path = live_path(w)
    await open_rooms(live_server, w)
    priya = await in_room(live_server, w, w.participant_a, w.group_a.id)
    pat = await in_room(live_server, w, w.participant_b, w.group_b.id)

    # Pat's request (in group B's room) comes first, then Priya's hand and her request.
    assert (await act(live_server, w.participant_b, path + "/help", {"note": "Bravo"})).is_success
    assert (await act(live_server, w.participant_a, path + "/hand", {"action": "raise"})).is_success
    asked = await act(live_server, w.participant_a, path + "/help", {"note": "Sound is off"})
    assert asked.is_success

    async with live_server.client(w.facilitator_a) as fola:
        page = (await fola.get(console_path(w, w.group_a))).text
    assert "Time left in breakout" in page and "data-deadline=" in page
    panel = people_panel(page)
    assert "In Group A's room: 1 person" in panel
    assert "Priya Participant (she/her)" in panel and "Hand raised" in panel
    assert "Large text" in panel and "Please say your name before you speak" in panel
    hands = between(page, f'id="console-hand-g{w.group_a.id}"', "</ol>")
    assert "Raised hand" in hands and "Answer" in hands and "Lower hand" in hands
    requests = between(page, f'id="console-help-g{w.group_a.id}"', "</ol>")
    assert "Sound is off" in requests and "I&#39;ll help" in requests
    assert "Bravo" not in page and "Pat Participant" not in page  # group B's business

    # The host moves Pat into group A's room: Fola sees Pat, but not the needs Pat shares
    # with Pat's own facilitator; the host sees them.
    moved = await act(
        live_server,
        w.host,
        path + "/move",
        {"user_id": str(w.participant_b.id), "group_id": str(w.group_a.id)},
    )
    assert moved.is_success, moved.text
    await pat.close()
    pat = await in_room(live_server, w, w.participant_b, w.group_a.id)
    async with live_server.client(w.facilitator_a) as fola:
        panel = (await fola.get(console_path(w, w.group_a) + "/people")).text
    assert "Pat Participant" in panel and "private note" not in panel
    assert "Screen reader" not in panel and "Please say your name" in panel
    async with live_server.client(w.host) as hana:
        panel = (await hana.get(console_path(w, w.group_a) + "/people")).text
    assert "Pat&#39;s private note" in panel and "Screen reader" in panel

    # Hands are in the order they went up, and answering one is the help desk's action.
    hand_id = await db.scalar(
        select(HelpRequest.id).where(
            HelpRequest.kind == "hand", HelpRequest.requester_id == w.participant_a.id
        )
    )
    answered = await act(live_server, w.facilitator_a, f"{path}/help/{hand_id}/claim")
    assert answered.is_success
    async with live_server.client(w.facilitator_a) as fola:
        page = (await fola.get(console_path(w, w.group_a))).text
    assert "Fola Facilitator has answered." in page
    for client in (priya, pat):
        await client.close()


async def test_hands_and_help_events_carry_the_console_list(live_server: Any, db: Any) -> None:
    """A console places each group's hands and requests in its own lists (d.into); on the
    live page, which has no such lists, they fall back to the help desk's log."""
    w = await make_world(db)
    path = live_path(w)
    # The host's help desk has every group's (a facilitator's has only their groups').
    desk = await LiveClient.connect(
        live_server, w.host, path, {channels.helpdesk(w.session.id): None}
    )
    # In the plenary, a request belongs to the group of the person who asked.
    assert (await act(live_server, w.participant_a, path + "/hand")).is_success
    update = await desk.wait_for(of_type("help.update"))
    assert update["d"] == {"into": f"console-hand-g{w.group_a.id}"}
    assert (await act(live_server, w.participant_b, path + "/help")).is_success
    update = await desk.wait_for(of_type("help.update"))
    assert update["d"] == {"into": f"console-help-g{w.group_b.id}"}
    await desk.close()


async def test_quick_note_lands_on_the_groups_board_with_the_session(
    browser_factory: Any, db: Any
) -> None:
    w = await make_world(db)
    fola = browser_factory(w.facilitator_a)
    url = console_path(w, w.group_a) + "/notes"

    saved = await fola.submit(
        url, {"markdown": "Junior staff want rotating chairs."}, headers={"HX-Request": "true"}
    )
    assert saved.status_code == 200 and "Group A's evidence board" in saved.text
    note = await db.scalar(select(EvidenceItem).order_by(EvidenceItem.id.desc()))
    assert note is not None and note.kind == "note"
    assert note.group_id == w.group_a.id and note.session_id == w.session.id
    assert note.uploader_id == w.facilitator_a.id and note.visibility == "group"
    assert note.title.startswith("Quick note, Webinar 1, ")
    board = await browser_factory(w.participant_a).get(
        f"/programmes/{w.programme.id}/groups/{w.group_a.id}/evidence"
    )
    assert note.title in board.text

    # Titled, for organisers only, without JavaScript: back to the console.
    plain = await fola.submit(
        url, {"markdown": "Only for us", "title": "Tension", "visibility": "organisers"}
    )
    assert plain.status_code == 303
    assert plain.headers["location"].startswith(console_path(w, w.group_a) + "?saved=1")
    latest = await db.scalar(select(EvidenceItem).order_by(EvidenceItem.id.desc()))
    assert latest is not None and (latest.title, latest.visibility) == ("Tension", "organisers")

    # An empty note is refused, with the field's own message.
    empty = await fola.submit(url, {"markdown": "  "}, headers={"HX-Request": "true"})
    assert empty.status_code == 400 and "Write the note." in empty.text
    page = await fola.submit(url, {"markdown": ""})
    assert page.status_code == 400 and 'id="error-markdown"' in page.text
    assert 'aria-invalid="true"' in page.text


# -- the host's console --


async def test_host_console_shows_every_room(live_server: Any, db: Any) -> None:
    w = await make_world(db)
    path = live_path(w)
    async with live_server.client(w.host) as hana:
        before = (await hana.get(path + "/host")).text
    assert "Breakout rooms are not open" in before and "Open breakout rooms" in before
    assert "Who is where" not in before  # the console's own table replaces the live page's

    await open_rooms(live_server, w)
    priya = await in_room(live_server, w, w.participant_a, w.group_a.id)
    fola = await in_room(live_server, w, w.facilitator_a, w.group_a.id)
    pat = await in_room(live_server, w, w.participant_b, w.group_b.id)
    assert (await act(live_server, w.participant_b, path + "/help", {"note": "x"})).is_success
    async with live_server.client(w.host) as hana:
        page = (await hana.get(path + "/host")).text
        rooms = (await hana.get(path + "/host/rooms")).text
    assert "Add time" in page and "Close all rooms" in page and "Send to every room" in page
    assert "Move someone" in page and f'href="{path}/console/{w.group_a.id}"' in page
    row_a = re.search(r'<th scope="row">Group A</th>(.*?)</tr>', rooms, re.S)
    row_b = re.search(r'<th scope="row">Group B</th>(.*?)</tr>', rooms, re.S)
    assert row_a and "<td>2</td>" in row_a.group(1) and "Priya Participant" in row_a.group(1)
    assert row_b and "<td>1</td>" in row_b.group(1)
    # Pat's request is counted in group B's room and listed at the help desk.
    assert re.search(r"<td>0</td><td>1</td>$", row_b.group(1).strip())
    assert "Help requested" in page and "Pat Participant" in page
    for client in (priya, fola, pat):
        await client.close()


async def test_speaking_shows_in_the_room_and_on_the_consoles(
    live_server: Any, db: Any, vosk_model_path: Path
) -> None:
    w = await make_world(db)
    path = live_path(w)
    room_a = channels.room(w.session.id, w.group_a.id)
    await open_rooms(live_server, w)
    fola = await in_room(live_server, w, w.facilitator_a, w.group_a.id)

    speaker = await websockets.connect(
        live_server.ws + path + "/audio",
        additional_headers={"Cookie": live_server.cookie_header(w.participant_a)},
        open_timeout=10,
    )
    await speaker.send(
        json.dumps({"type": "start", "codec": "pcm16", "sample_rate": 16000, "consent": True})
    )
    assert json.loads(await speaker.recv())["t"] == "started"
    on = await fola.wait_for(lambda m: m.get("t") == "speaking" and "Priya" in m.get("h", ""))
    assert on["c"] == room_a and on["x"] == f"speaking-{room_a}" and on["i"] == 0
    assert "Speaking now" in on["h"] and "Priya Participant (she/her)" in on["h"]

    async with live_server.client(w.facilitator_a) as http:
        panel = (await http.get(console_path(w, w.group_a) + "/people")).text
    assert "Speaking now (microphone captioned): Priya Participant (she/her)" in panel
    assert "Speaking</span>" in panel
    async with live_server.client(w.host) as http:
        rooms = (await http.get(path + "/host/rooms")).text
    row_a = re.search(r'<th scope="row">Group A</th>(.*?)</tr>', rooms, re.S)
    assert row_a and "Priya Participant (she/her)" in row_a.group(1)

    # Pausing the microphone ends the mark; resuming brings it back; stopping ends it.
    await speaker.send(json.dumps({"type": "pause"}))
    off = await fola.wait_for(lambda m: m.get("t") == "speaking" and "Priya" not in m["h"])
    assert "Nobody's microphone is being captioned" in off["h"]
    await speaker.send(json.dumps({"type": "resume"}))
    await fola.wait_for(lambda m: m.get("t") == "speaking" and "Priya" in m["h"])
    await speaker.send(json.dumps({"type": "stop"}))
    await fola.wait_for(lambda m: m.get("t") == "speaking" and "Priya" not in m["h"])
    await speaker.close()
    async with live_server.client(w.facilitator_a) as http:
        panel = (await http.get(console_path(w, w.group_a) + "/people")).text
    assert "Speaking</span>" not in panel
    await fola.close()


@pytest.mark.parametrize("backend", ["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def test_speaking_marks_are_counted_and_shared_between_processes(backend: str) -> None:
    """Two streams of one person (two tabs) keep them speaking until both end; moving room
    moves the mark; another process reads the same marks (with Redis)."""

    async def nothing() -> None:
        return None

    if backend == "redis":
        url = redis_url_or_skip()
        brokers: list[Broker] = [RedisBroker(url), RedisBroker(url)]
    else:
        one = InProcessBroker()
        brokers = [one, one]
    for broker in brokers:
        await broker.start(lambda channel, message: None, nothing)
    env = make_templates().env
    here, there = (
        Speaking(broker=b, live=Live(registry=build_registry(), broker=b, env=env)) for b in brokers
    )
    session = random.randrange(10**6, 10**9)  # Redis is shared between test runs
    room_a, room_b = channels.room(session, 1), channels.room(session, 2)
    try:
        first = Microphone(here, member="7", name="Priya Participant (she/her)")
        second = Microphone(here, member="7", name="Priya Participant (she/her)")
        await first.live_in(room_a)
        await second.live_in(room_a)
        assert (await there.payload(room_a)).names == ["Priya Participant (she/her)"]
        await first.silent()
        assert await there.members(room_a) == {"7": "Priya Participant (she/her)"}
        await second.live_in(room_b)  # moved with the host's move
        assert await there.members(room_a) == {}
        assert await there.members(room_b) == {"7": "Priya Participant (she/her)"}
        await second.silent()
        await second.silent()  # ending twice changes nothing
        assert await there.members(room_b) == {}
        # A process that stops takes its speakers with it.
        await Microphone(here, member="8", name="Pat").live_in(room_a)
        await here.stop()
        assert await there.members(room_a) == {}
    finally:
        for broker in set(brokers):
            await broker.close()


# -- the tech check --


async def test_tech_check_page_for_anyone_signed_in(browser_factory: Any, db: Any) -> None:
    w = await make_world(db)
    anonymous = await browser_factory().get("/tech-check")
    assert anonymous.status_code == 303 and anonymous.headers["location"].startswith("/signin")

    page = await browser_factory(w.participant_a).get(f"/tech-check?session_id={w.session.id}")
    assert page.status_code == 200
    for part in ("Your microphone", "Your connection", "Your browser", "Ask IT support for help"):
        assert part in page.text
    assert '<meter id="tc-level"' in page.text and "Webinar 1" in page.text
    assert f'href="{live_path(w)}"' in page.text  # back to the session
    # Without a model here, the page says captions are unavailable, and why.
    assert "Sample captions are unavailable at the moment" in page.text
    # Another programme's session is not found.
    other = await browser_factory(w.participant_a).get(
        f"/tech-check?session_id={w.other_session.id}"
    )
    assert other.status_code == 404
    # Someone with no session to come has no help desk to ask.
    admin = await browser_factory(w.admin).get("/tech-check")
    assert admin.status_code == 200 and "no session on now or coming up" in admin.text

    ping = await browser_factory(w.participant_a).get("/tech-check/ping")
    assert ping.status_code == 204 and ping.headers["cache-control"] == "no-store"


async def test_sample_caption_of_real_speech(
    browser_factory: Any, db: Any, speech: Speech, vosk_model_path: Path
) -> None:
    w = await make_world(db)
    browser = browser_factory(w.participant_a)
    sample = wav_bytes(silence(0.5) + speech.pcm(SENTENCE) + silence(0.5))
    answer = await browser.post(
        "/tech-check/caption",
        content=sample,
        headers={"Content-Type": "audio/wav", "X-CSRF-Token": browser.csrf_token()},
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    heard = WORDS & set(body["text"].split())
    assert len(heard) >= 4, body
    assert 2 < body["seconds"] <= 10
    # At 48 kHz too, as some microphones give.
    loud = wav_bytes(speech.pcm(SENTENCE, 48000), rate=48000)
    answer = await browser.post(
        "/tech-check/caption",
        content=loud,
        headers={"Content-Type": "audio/wav", "X-CSRF-Token": browser.csrf_token()},
    )
    assert answer.status_code == 200 and len(WORDS & set(answer.json()["text"].split())) >= 4


async def test_sample_caption_refuses_what_it_cannot_take(browser_factory: Any, db: Any) -> None:
    w = await make_world(db)
    browser = browser_factory(w.participant_a)

    async def send(body: bytes, content_type: str = "audio/wav", **headers: str) -> Any:
        headers = {"Content-Type": content_type, "X-CSRF-Token": browser.csrf_token(), **headers}
        return await browser.post("/tech-check/caption", content=body, headers=headers)

    too_long = await send(wav_bytes(silence(11)))
    assert too_long.status_code == 413
    assert "at most 10 seconds" in too_long.json()["detail"]
    garbage = await send(b"this is not a sound file at all" * 10)
    assert garbage.status_code == 400 and "not a sound file" in garbage.json()["detail"]
    stereo = io.BytesIO()
    with wave.open(stereo, "wb") as wav:
        wav.setnchannels(2)
        wav.setsampwidth(2)
        wav.setframerate(16000)
        wav.writeframes(silence(1) * 2)
    assert (await send(stereo.getvalue())).status_code == 400
    empty = await send(b"")
    assert empty.status_code == 400 and "No sound arrived" in empty.json()["detail"]
    wrong_type = await send(b"{}", "application/json")
    assert wrong_type.status_code == 415 and "audio/wav" in wrong_type.json()["detail"]
    # A real sample, but this server has no speech model: it says so.
    for _ in range(2):
        unavailable = await send(wav_bytes(silence(1)))
        assert unavailable.status_code == 503
        assert "Captions are unavailable" in unavailable.json()["detail"]
    # Without the page's token, nothing is taken.
    forged = await browser.post(
        "/tech-check/caption", content=wav_bytes(silence(1)), headers={"Content-Type": "audio/wav"}
    )
    assert forged.status_code == 403
    # Six samples a minute a person: the seventh waits.
    limited = await send(wav_bytes(silence(1)))
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) > 0
    assert "try again in" in limited.json()["detail"]
    other = browser_factory(w.participant_b)
    assert (
        await other.post(
            "/tech-check/caption",
            content=b"",
            headers={"Content-Type": "audio/wav", "X-CSRF-Token": other.csrf_token()},
        )
    ).status_code == 400


async def test_asking_it_support_from_the_tech_check(live_server: Any, db: Any) -> None:
    w = await make_world(db)
    path = live_path(w)
    ian = await LiveClient.connect(
        live_server, w.it_support, path, {channels.helpdesk(w.session.id): None}
    )
    results = "Connection: Compatibility mode (no WebSocket), 84 ms. Browser: all features."
    async with live_server.client(w.participant_a) as http:
        asked = await http.post(
            "/tech-check/help",
            data={"session_id": str(w.session.id), "note": "Nobody hears me", "results": results},
            headers={"HX-Request": "true"},
        )
    assert asked.status_code == 200 and "IT support for “Webinar 1”" in asked.text
    update = await ian.wait_for(of_type("help.update"))
    assert "Help requested" in update["h"] and "Priya Participant (she/her)" in update["h"]
    assert "From the tech check." in update["h"] and "84 ms" in update["h"]
    assert "Nobody hears me" in update["h"]
    stored = await db.scalar(select(HelpRequest).where(HelpRequest.session_id == w.session.id))
    assert stored is not None and stored.kind == "help" and stored.status == "open"

    # Without a session named, the request goes to the person's next session, not to
    # one that has ended.
    await make_session(db, w.programme, title="Webinar 0", days_ahead=-7)
    await db.commit()
    async with live_server.client(w.participant_b) as http:
        asked = await http.post("/tech-check/help", data={})
    assert asked.status_code == 303 and asked.headers["location"] == "/tech-check?asked=1"
    update = await ian.wait_for(of_type("help.update"))
    assert "Pat Participant" in update["h"] and "From the tech check." in update["h"]
    await db.commit()
    pats = await db.scalar(
        select(HelpRequest).where(HelpRequest.requester_id == w.participant_b.id)
    )
    assert pats is not None and pats.session_id == w.session.id

    # Someone with no session to come is told so, not given an error page.
    async with live_server.client(w.admin) as http:
        nowhere = await http.post("/tech-check/help", data={}, headers={"HX-Request": "true"})
    assert nowhere.status_code == 409 and "no session on now or coming up" in nowhere.text
    # Nor can anyone ask in another programme's session.
    async with live_server.client(w.participant_a) as http:
        other = await http.post("/tech-check/help", data={"session_id": str(w.other_session.id)})
    assert other.status_code == 404
    await ian.close()


async def test_echo_websocket_times_round_trips(live_server: Any, db: Any) -> None:
    w = await make_world(db)
    url = live_server.ws + "/tech-check/ws"
    cookie = {"Cookie": live_server.cookie_header(w.participant_a)}
    async with websockets.connect(url, additional_headers=cookie) as ws:
        for n in range(3):
            await ws.send(f"ping {n}")
            assert await ws.recv() == f"ping {n}"
        await ws.send(b"\x00binary")
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await ws.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1003
    async with websockets.connect(url) as ws:  # not signed in
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await ws.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
    cross_site = {**cookie, "Origin": "https://evil.example"}
    async with websockets.connect(url, additional_headers=cross_site) as ws:
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await ws.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
