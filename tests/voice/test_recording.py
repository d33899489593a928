"""Recording a room through the real server: who may start and stop it, the indicator the
room sees, and the stored recording (it plays, lasts as long as it recorded, holds the
speech, and its WebVTT track has the room's captions)."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from app.captions.models import CaptionSegment
from app.live import channels
from app.models import AuditEntry, Paper
from app.state import AppState
from realtime.log import LiveEvent
from tests.audio_fixtures import (  # noqa: F401 - the fixtures
    SENTENCES,
    Speech,
    caption_engine_fixture,
    speech_fixture,
    vosk_model_path_fixture,
)
from tests.factories import World, make_world
from tests.voice.recording_helpers import decode, heard_words, recordings, use_rooms

HX = {"HX-Request": "true"}


def live(w: World) -> str:
    return f"/programmes/{w.programme.id}/sessions/{w.session.id}/live"


async def post(browser_factory: Any, user: Any, url: str, **data: Any) -> Any:
    return await browser_factory(user).submit(url, data, headers=HX)


async def audited(db: Any, programme_id: int) -> list[str]:
    await db.commit()
    rows = await db.scalars(
        select(AuditEntry.action)
        .where(AuditEntry.programme_id == programme_id, AuditEntry.action.like("recording.%"))
        .order_by(AuditEntry.id)
    )
    return list(rows.all())


async def recording_events(db: Any, channel: str) -> list[dict[str, Any]]:
    await db.commit()
    rows = await db.scalars(
        select(LiveEvent.wire)
        .where(LiveEvent.channel == channel, LiveEvent.type == "voice.recording")
        .order_by(LiveEvent.id)
    )
    return [json.loads(wire) for wire in rows.all()]


def indicator(page: str, channel: str) -> str:
    """The recording indicator's visible text in a room page ("" when hidden)."""
    match = re.search(rf'<p id="recording-{re.escape(channel)}"([^>]*)>(.*?)</p>', page, re.S)
    assert match, "the room page has no recording indicator"
    if "hidden" in match.group(1):
        return ""
    return " ".join(re.sub(r"<[^>]+>", " ", match.group(2)).split())


async def room_page(browser_factory: Any, user: Any, w: World) -> str:
    response = await browser_factory(user).get(live(w))
    assert response.status_code == 200, response.text
    return response.text


async def test_only_hosts_record_the_plenary(
    db: Any, browser_factory: Any, app_and_state: tuple[Any, AppState]
) -> None:
    w = await make_world(db)
    start, stop = live(w) + "/recording/start", live(w) + "/recording/stop"
    for person in (w.participant_a, w.facilitator_a, w.observer, w.it_support):
        response = await post(browser_factory, person, start)
        assert response.status_code == 403, person.name
        assert response.text == "Only the session's hosts can record a room."
    response = await post(browser_factory, w.outsider, start)
    assert response.status_code in (403, 404)
    assert await recordings(app_and_state[1]) == []
    # The participant's room shows no controls and no indicator yet.
    page = await room_page(browser_factory, w.participant_a, w)
    plenary = channels.plenary(w.session.id)
    assert indicator(page, plenary) == "" and "Start recording" not in page
    assert "Start recording this room" in await room_page(browser_factory, w.host, w)

    response = await post(browser_factory, w.host, start)
    assert response.status_code == 200 and "Recording the Plenary" in response.text
    assert (await post(browser_factory, w.host, start)).status_code == 409
    for person in (w.participant_a, w.facilitator_a):
        assert (await post(browser_factory, person, stop)).status_code == 403
    response = await post(browser_factory, w.host, stop)
    assert response.status_code == 200 and "has stopped" in response.text
    response = await post(browser_factory, w.host, stop)
    assert response.status_code == 409 and "not being recorded" in response.text
    assert await audited(db, w.programme.id) == ["recording.start", "recording.stop"]
    (row,) = await recordings(app_and_state[1])
    assert row.stop_reason == "stopped by a host" and row.paper_id is not None


async def test_a_breakout_room_is_recorded_only_where_the_programme_allows_it(
    db: Any, browser_factory: Any, app_and_state: tuple[Any, AppState]
) -> None:
    w = await make_world(db)
    state = app_and_state[1]
    use_rooms(state)
    state.recorders.check_seconds = 0.2
    room_a = channels.room(w.session.id, w.group_a.id)
    room_b = channels.room(w.session.id, w.group_b.id)
    start = live(w) + "/recording/start"
    response = await post(browser_factory, w.host, start, channel=room_a)
    assert response.status_code == 409  # the rooms are not open
    assert (await post(browser_factory, w.host, live(w) + "/breakouts/open", minutes=30)).is_success
    response = await post(browser_factory, w.host, start, channel=room_a)
    assert response.status_code == 403 and "does not allow recording breakout" in response.text
    response = await post(browser_factory, w.facilitator_a, start, channel=room_a)
    assert response.status_code == 403
    assert await recordings(state) == []

    # A host allows it in the programme's settings (off by default).
    settings_url = f"/programmes/{w.programme.id}/settings"
    assert (
        'name="allow_breakout_recording"' in (await browser_factory(w.host).get(settings_url)).text
    )
    form = {"title": w.programme.title, "timezone": "Europe/London", "group_capacity": "8"}
    response = await browser_factory(w.host).submit(
        settings_url, {**form, "allow_breakout_recording": "on"}
    )
    assert response.status_code == 303
    page = (await browser_factory(w.host).get(settings_url)).text
    assert re.search(r'name="allow_breakout_recording"[^>]* checked', page)

    response = await post(browser_factory, w.host, start, channel=room_a)
    assert response.status_code == 200, response.text
    # The room was told (a stored event on its channel); the other room was not.
    (told,) = await recording_events(db, room_a)
    assert "Recording" in told["h"] and told["s"] == "replace"
    assert await recording_events(db, room_b) == []
    assert "Group A room is being recorded" in indicator(
        await room_page(browser_factory, w.participant_a, w), room_a
    )
    assert indicator(await room_page(browser_factory, w.participant_b, w), room_b) == ""

    # Closing the rooms ends the recording; what was recorded is kept.
    close = await post(browser_factory, w.host, live(w) + "/breakouts/close", warning_seconds=0)
    assert close.is_success, close.text
    for _ in range(100):
        rows = await recordings(state)
        if rows[0].paper_id is not None:
            break
        await asyncio.sleep(0.1)
    assert rows[0].stop_reason == "breakout closed" and rows[0].duration_ms > 0
    assert not state.recorders.runs
    # The recording is Group A's, as its captions are: Group B cannot fetch it by its id.
    download = f"/programmes/{w.programme.id}/sessions/{w.session.id}/papers/{rows[0].paper_id}"
    assert (await browser_factory(w.participant_a).get(download)).status_code == 200
    assert (await browser_factory(w.participant_b).get(download)).status_code == 404


@pytest.mark.parametrize("database_url", ["sqlite", "postgres"], indirect=True)
async def test_a_recording_holds_the_speech_and_plays_with_its_captions(
    db: Any,
    browser_factory: Any,
    app_and_state: tuple[Any, AppState],
    speech: Speech,
    caption_engine: Any,
) -> None:
    w = await make_world(db)
    state = app_and_state[1]
    rooms = use_rooms(state)
    plenary = channels.plenary(w.session.id)
    response = await post(browser_factory, w.host, live(w) + "/recording/start")
    assert response.status_code == 200, response.text
    page = await room_page(browser_factory, w.participant_a, w)
    assert "Recording" in indicator(page, plenary) and "being recorded" in page

    (running,) = await recordings(state)
    # A sentence the small model gets nearly right even after the recording's second Opus
    # encoding (the first, "the quick brown fox...", comes out garbled on a loaded machine).
    spoken = rooms.say(plenary, speech.pcm(SENTENCES[5], rate=48000))
    await asyncio.sleep(spoken + 0.6)
    # Captions of the room: one said before the recording began, one while it ran.
    before = running.started_at - timedelta(seconds=30)
    during = running.started_at + timedelta(seconds=0.5)
    for at, text in ((before, "before we began"), (during, "the quick brown fox")):
        db.add(
            CaptionSegment(
                session_id=w.session.id,
                channel=plenary,
                speaker_id=w.host.id,
                speaker_name="Hana Host",
                stream_id="s1",
                stream_start=0.0,
                stream_end=2.0,
                started_at=at,
                ended_at=at + timedelta(seconds=2),
                text=text,
                original_text=text,
                words=[],
                confidence=0.9,
            )
        )
    await db.commit()
    response = await post(browser_factory, w.host, live(w) + "/recording/stop")
    assert response.status_code == 200, response.text
    assert indicator(await room_page(browser_factory, w.participant_a, w), plenary) == ""

    (row,) = await recordings(state)
    paper = await db.get(Paper, row.paper_id)
    assert paper.kind == "recording" and paper.content_type == "audio/ogg"
    elapsed = (row.stopped_at - row.started_at).total_seconds()
    assert abs(row.duration_ms / 1000 - elapsed) < 0.5
    data = state.storage.path(paper.storage_key).read_bytes()
    decoded = decode(data)
    assert decoded.codec == "opus" and abs(decoded.seconds - row.duration_ms / 1000) < 0.03
    words = heard_words(caption_engine, decode(data, rate=16000).samples.tobytes())
    # Most of the sentence's words are heard (on a busy machine a word or two may be lost or
    # misheard); a recording without the speech has none of them.
    sentence = set(SENTENCES[5].split())
    assert len(sentence & set(words)) >= 5, words

    audio = await browser_factory(w.participant_a).get(f"{live(w)}/recordings/{row.id}/audio.ogg")
    assert audio.status_code == 200 and audio.content == data
    assert audio.headers["content-type"] == "audio/ogg"
    vtt = await browser_factory(w.participant_a).get(f"{live(w)}/recordings/{row.id}/captions.vtt")
    assert vtt.status_code == 200 and vtt.text.startswith("WEBVTT")
    assert "00:00:00.500 --> 00:00:02.500\n<v Hana Host>the quick brown fox" in vtt.text
    assert "before we began" not in vtt.text

    lobby = await browser_factory(w.participant_b).get(
        f"/programmes/{w.programme.id}/sessions/{w.session.id}"
    )
    assert re.search(
        rf'<video controls[^>]*src="{live(w)}/recordings/{row.id}/audio.ogg"', lobby.text
    )
    assert re.search(
        rf'<track kind="captions" srclang="en"[^>]* default\s+src="{live(w)}/recordings/{row.id}/captions.vtt"',
        lobby.text,
    )
    assert "<time>0:00</time> <strong>Hana Host:</strong> the quick brown fox" in lobby.text
