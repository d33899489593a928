"""Voice through the real server: a speaker's Opus (espeak-ng speech, tones) over the
microphone WebSocket, heard by the listeners in their room (forwarded while one person
talks, mixed without their own voice while several do) and by nobody else, over the
WebSocket and the fallbacks; the transcript of what a listener heard, by the real Vosk
model, has the spoken words."""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path
from typing import Any

import jiwer
import pytest

from app.config import Settings
from app.live import channels
from realtime.media import unpack
from tests.audio_fixtures import (  # noqa: F401 - the fixtures
    SENTENCES,
    Speech,
    speech_fixture,
    vosk_model_path_fixture,
)
from tests.captions.test_live_captions import Speaker
from tests.conftest import LiveServer
from tests.factories import make_world
from tests.live_action_helpers import live_path, open_rooms
from tests.voice.voice_helpers import (
    Listener,
    decoded,
    opus_of,
    strength,
    tone,
    transcribe,
)

# How much worse than the speech itself the room may hear it: the model is sensitive to
# where a stream starts (silence is not forwarded), more than to anything lost.
WER_BOUND = 0.45


@pytest.fixture
def settings(settings: Settings, vosk_model_path: Path) -> Settings:
    return settings.model_copy(update={"vosk_model_path": vosk_model_path})


async def enter(server: LiveServer, w: Any, user: Any, group: Any) -> None:
    async with server.client(user) as http:
        entered = await http.post(
            live_path(w) + "/enter", data={"group_id": group.id}, headers={"HX-Request": "true"}
        )
    assert entered.status_code in (200, 204), entered.text


async def listener_in(server: LiveServer, w: Any, user: Any, group: Any) -> Listener:
    room = channels.room(w.session.id, group.id)
    cursors = {room: None, channels.personal(user.id): None}
    return await Listener.connect(server, user, live_path(w), cursors)


async def test_the_room_hears_its_speaker_and_no_other_room_does(
    live_server: LiveServer, db: Any, speech: Speech, vosk_model_path: Path
) -> None:
    w = await make_world(db)
    await open_rooms(live_server, w)
    fola = await listener_in(live_server, w, w.facilitator_a, w.group_a)
    pat = await listener_in(live_server, w, w.participant_b, w.group_b)
    own_page = await listener_in(live_server, w, w.participant_a, w.group_a)
    priya = await Speaker.start(live_server, w, w.participant_a, codec="opus", rate=48000)

    sentence = SENTENCES[0]
    sent = opus_of(speech.pcm(sentence, rate=48000))
    await priya.paced(sent, 0.02, speed=1.0)
    await asyncio.sleep(0.5)

    assert fola.sources() == {w.participant_a.id}
    # Forwarded unchanged, in order, nothing lost (but silence, which is not sent).
    heard_packets = [p.payload for _, p in fola.packets]
    assert len(heard_packets) >= len(sent) - 5
    assert heard_packets == sent[len(sent) - len(heard_packets) :]
    heard = transcribe(vosk_model_path, decoded([p for _, p in fola.packets]))
    # Measured against what the model makes of the speech itself (espeak-ng's voice is
    # not perfectly recognized even before it goes anywhere).
    said = transcribe(vosk_model_path, speech.pcm(sentence, rate=48000))
    assert jiwer.wer(sentence, heard) <= jiwer.wer(sentence, said) + WER_BOUND, heard
    # Another room hears nothing, and nobody hears their own voice.
    assert pat.packets == [] and own_page.packets == []
    # The same audio was captioned for the room.
    await priya.ws.close()
    for listener in (fola, pat, own_page):
        await listener.close()


async def test_people_talking_at_once_are_mixed_and_nobody_hears_themselves(
    live_server: LiveServer, db: Any
) -> None:
    w = await make_world(db)
    await open_rooms(live_server, w)
    await enter(live_server, w, w.host, w.group_a)
    host = await listener_in(live_server, w, w.host, w.group_a)
    fola = await listener_in(live_server, w, w.facilitator_a, w.group_a)
    priya = await listener_in(live_server, w, w.participant_a, w.group_a)
    low = await Speaker.start(live_server, w, w.participant_a, codec="opus", rate=48000)
    high = await Speaker.start(live_server, w, w.facilitator_a, codec="opus", rate=48000)

    seconds = 2.0
    await asyncio.gather(
        low.paced(opus_of(tone(440, seconds)), 0.02, speed=1.0),
        high.paced(opus_of(tone(1500, seconds)), 0.02, speed=1.0),
    )
    await asyncio.sleep(0.5)

    both = decoded([p for _, p in host.packets])
    # (A loaded machine delays the senders' packets; the tones' levels allow for losses.)
    assert strength(both, 440) > 250 and strength(both, 1500) > 250
    # While both talk, everyone receives one stream (the mix), never one per talker.
    mixed = [p for _, p in host.packets if p.source == 0]
    assert len(mixed) > 0.4 * seconds / 0.02
    kbps = host.frame_bytes * 8 / seconds / 1000
    assert kbps <= 48, kbps
    # Mix-minus: each talker hears the other and not themselves.
    priya_heard = decoded([p for _, p in priya.packets if p.source == 0])
    fola_heard = decoded([p for _, p in fola.packets if p.source == 0])
    assert strength(priya_heard, 1500) > 250
    assert strength(priya_heard, 440) < strength(priya_heard, 1500) / 20
    assert strength(fola_heard, 440) > 250
    assert strength(fola_heard, 1500) < strength(fola_heard, 440) / 20
    for client in (host, fola, priya):
        await client.close()
    await low.ws.close()
    await high.ws.close()


async def test_undecodable_packets_reach_nobody(live_server: LiveServer, db: Any) -> None:
    w = await make_world(db)
    await open_rooms(live_server, w)
    fola = await listener_in(live_server, w, w.facilitator_a, w.group_a)
    priya = await Speaker.start(live_server, w, w.participant_a, codec="opus", rate=48000)
    garbage = [bytes([0xFF, 0xFF, 0xFE]) + bytes(range(200)) for _ in range(20)]
    await priya.paced(garbage, 0.02, speed=1.0)
    await asyncio.sleep(0.3)
    assert fola.packets == []
    await priya.ws.close()
    await fola.close()


async def test_a_participant_without_the_floor_is_not_heard_in_the_plenary(
    live_server: LiveServer, db: Any
) -> None:
    w = await make_world(db)
    plenary = channels.plenary(w.session.id)
    host = await Listener.connect(live_server, w.host, live_path(w), {plenary: None})
    priya = await Speaker.start(live_server, w, w.participant_a, codec="opus", rate=48000)
    told = await priya.receive(floor=True)
    assert told["t"] == "floor" and told["may_speak"] is False and "hand" in told["message"]
    await priya.paced(opus_of(tone(440, 1.0)), 0.02, speed=1.0)
    await asyncio.sleep(0.3)
    assert host.packets == []
    # The host is heard by everyone in the plenary.
    pat = await Listener.connect(live_server, w.participant_b, live_path(w), {plenary: None})
    hana = await Speaker.start(live_server, w, w.host, codec="opus", rate=48000)
    await hana.paced(opus_of(tone(440, 1.0)), 0.02, speed=1.0)
    await asyncio.sleep(0.3)
    assert pat.sources() == {w.host.id}
    for client in (host, pat):
        await client.close()
    await priya.ws.close()
    await hana.ws.close()


async def fallback_media(response_lines: list[str]) -> list[Any]:
    packets = []
    for line in response_lines:
        if line.startswith("data: ") and '"t":"m"' in line:
            packets += unpack(base64.b64decode(json.loads(line[6:])["b"]))
    return packets


async def test_listeners_on_the_fallbacks_hear_the_room(live_server: LiveServer, db: Any) -> None:
    w = await make_world(db)
    await open_rooms(live_server, w)
    await enter(live_server, w, w.host, w.group_a)
    room = channels.room(w.session.id, w.group_a.id)
    lines: list[str] = []
    polled: list[Any] = []

    async def sse() -> None:
        async with live_server.client(w.facilitator_a) as http:
            url = live_path(w) + f"/sse?cursors={room}=&media=audio&duration=4"
            async with http.stream("GET", url, timeout=10) as response:
                assert response.status_code == 200
                async for line in response.aiter_lines():
                    lines.append(line)

    async def poll() -> None:
        async with live_server.client(w.host) as http:
            for _ in range(200):
                answer = await http.get(
                    live_path(w) + "/poll",
                    params={
                        "cursors": f"{room}=",
                        "media": "audio",
                        "listener": "poller-0123456789ab",
                        "wait": "1",
                    },
                )
                assert answer.status_code == 200, answer.text
                for event in answer.json()["events"]:
                    if event.get("t") == "m":
                        polled.extend(unpack(base64.b64decode(event["b"])))
                if len(polled) >= 90:
                    return

    readers = [asyncio.create_task(sse()), asyncio.create_task(poll())]
    await asyncio.sleep(0.5)
    priya = await Speaker.start(live_server, w, w.participant_a, codec="opus", rate=48000)
    await priya.paced(opus_of(tone(440, 2.0)), 0.02, speed=1.0)
    await asyncio.wait(readers, timeout=8)
    sse_packets = await fallback_media(lines)
    assert len(sse_packets) > 80 and {p.source for p in sse_packets} == {w.participant_a.id}
    # Long-polling hears the room in order, once each. (A poller that falls more than half
    # a second behind loses the oldest, by design: on a loaded machine that happens.)
    seqs = [p.seq for p in polled]
    assert len(polled) >= 40 and seqs == sorted(set(seqs)), seqs
    assert {p.source for p in polled} == {w.participant_a.id}
    await priya.ws.close()
    for task in readers:
        task.cancel()
