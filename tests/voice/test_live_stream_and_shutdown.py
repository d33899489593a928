"""The room's live sound as an Ogg/Opus stream (for browsers without WebCodecs), through a
real server; and recordings kept when the server shuts down or dies mid-recording."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
from asgi_lifespan import LifespanManager
from sqlalchemy import select

from app.config import Settings
from app.factory import RECORDING_DIR, create_app
from app.live import channels
from app.models import Paper
from app.security import Signer
from app.state import STATE_KEY, AppState
from app.voice.ogg_stream import FRAME_BYTES, OggOpusWriter
from app.voice.recording_models import VoiceRecording
from tests.audio_fixtures import SENTENCES, Speech, speech_fixture  # noqa: F401 - the fixture
from tests.conftest import TEST_SECRET, Browser, LiveServer
from tests.factories import World, make_world
from tests.voice.recording_helpers import decode, recordings, rms, use_rooms


def live(w: World) -> str:
    return f"/programmes/{w.programme.id}/sessions/{w.session.id}/live"


async def test_a_listener_hears_their_room_until_they_move(
    db: Any, live_server: LiveServer, speech: Speech
) -> None:
    w = await make_world(db)
    rooms = use_rooms(live_server.app_state)
    plenary = channels.plenary(w.session.id)
    room_a = channels.room(w.session.id, w.group_a.id)
    rooms.say(room_a, speech.pcm(SENTENCES[2], rate=48000))  # never heard in the plenary
    received = bytearray()
    async with (
        live_server.client(w.participant_a) as http,
        http.stream("GET", live(w) + "/voice.ogg") as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"] == "audio/ogg"
        assert response.headers["cache-control"] == "no-store"
        spoken = rooms.say(plenary, speech.pcm(SENTENCES[0], rate=48000))
        began = time.monotonic()
        chunks = response.aiter_bytes()
        while time.monotonic() - began < spoken + 0.3:
            received += await asyncio.wait_for(anext(chunks), 2)
        assert [t.room for t in rooms.all_taps()] == [plenary]
        # The host opens the rooms: the participant is now in Group A's room, and the
        # plenary's stream ends (the page opens one for the new room).
        async with live_server.client(w.host) as host:
            opened = await host.post(
                live(w) + "/breakouts/open", data={"minutes": 30}, headers={"HX-Request": "true"}
            )
            assert opened.status_code == 200
        async with asyncio.timeout(5):
            async for chunk in chunks:
                received += chunk
    assert rooms.all_taps() == set()
    decoded = decode(bytes(received))
    assert decoded.codec == "opus" and decoded.seconds >= spoken
    # It carried the plenary's speech (the room's own was never queued into it).
    assert rms(decoded.samples) > 300


async def test_a_second_stream_ends_the_first(db: Any, live_server: LiveServer) -> None:
    w = await make_world(db)
    rooms = use_rooms(live_server.app_state)
    async with (
        live_server.client(w.participant_b) as http,
        http.stream("GET", live(w) + "/voice.ogg") as first,
    ):
        chunks = first.aiter_bytes()
        await asyncio.wait_for(anext(chunks), 2)
        async with http.stream("GET", live(w) + "/voice.ogg") as second:
            await asyncio.wait_for(anext(second.aiter_bytes()), 2)
            async with asyncio.timeout(3):
                async for _ in chunks:
                    pass  # the first ends by itself
            assert len(rooms.all_taps()) == 1
    # A listener who goes away frees their stream and tap as soon as the server notices.
    for _ in range(40):
        if live_server.app_state.mix_listeners.count() == 0 and not rooms.all_taps():
            break
        await asyncio.sleep(0.05)
    assert live_server.app_state.mix_listeners.count() == 0 and rooms.all_taps() == set()


async def test_shutting_down_keeps_what_was_recorded(settings: Settings, speech: Speech) -> None:
    app = create_app(settings)
    async with LifespanManager(app) as manager:
        state: AppState = manager._state[STATE_KEY]
        async with state.sessionmaker() as db:
            w = await make_world(db)
        rooms = use_rooms(state)
        async with Browser(
            transport=httpx.ASGITransport(app=manager.app), base_url="http://testserver"
        ) as host:
            host.signer = Signer(TEST_SECRET)
            host.sign_in_as(w.host)
            started = await host.submit(
                live(w) + "/recording/start", {}, headers={"HX-Request": "true"}
            )
            assert started.status_code == 200, started.text
        spoken = rooms.say(channels.plenary(w.session.id), speech.pcm(SENTENCES[3], rate=48000))
        await asyncio.sleep(spoken)
    # The server has stopped; the recording was stored on the way down.
    app = create_app(settings)
    async with LifespanManager(app) as manager:
        state = manager._state[STATE_KEY]
        (row,) = await recordings(state)
        assert row.stop_reason == "server shutdown" and row.paper_id is not None
        async with state.sessionmaker() as db:
            paper = await db.get(Paper, row.paper_id)
        decoded = decode(state.storage.path(paper.storage_key).read_bytes())
        assert decoded.seconds >= spoken - 0.1
        assert abs(decoded.seconds - row.duration_ms / 1000) < 0.03


async def test_a_recording_left_by_a_crash_is_stored_at_the_next_start(
    settings: Settings, speech: Speech
) -> None:
    app = create_app(settings)
    async with LifespanManager(app) as manager:
        state: AppState = manager._state[STATE_KEY]
        async with state.sessionmaker() as db:
            w = await make_world(db)
            row = VoiceRecording(
                session_id=w.session.id,
                channel=channels.plenary(w.session.id),
                room_name="Plenary",
                started_by_id=w.host.id,
            )
            db.add(row)
            await db.commit()
    # What a recorder had written when its process died: pages on disk, never closed.
    work = Path(settings.upload_dir) / RECORDING_DIR
    work.mkdir(parents=True, exist_ok=True)
    pcm = speech.pcm(SENTENCES[5], rate=48000)
    pcm += bytes(-len(pcm) % FRAME_BYTES)
    with (work / f"{row.id}.ogg").open("wb", buffering=0) as out:
        writer = OggOpusWriter(out)
        writer.write_many([pcm[i : i + FRAME_BYTES] for i in range(0, len(pcm), FRAME_BYTES)])
        crashed = (work / f"{row.id}.ogg").read_bytes()
        writer.close()
    (work / f"{row.id}.ogg").write_bytes(crashed)
    app = create_app(settings)
    async with LifespanManager(app) as manager:
        state = manager._state[STATE_KEY]
        (kept,) = await recordings(state)
        assert kept.stop_reason == "server restarted" and kept.paper_id is not None
        async with state.sessionmaker() as db:
            paper = await db.scalar(select(Paper).where(Paper.id == kept.paper_id))
        decoded = decode(state.storage.path(paper.storage_key).read_bytes())
        assert decoded.seconds > len(pcm) / 96000 - 0.3
    assert not (work / f"{row.id}.ogg").exists()
