"""Speaking when WebSockets are blocked: the microphone stream over ordinary POSTs of a
quarter of a second each (espeak speech as PCM and as Opus, the real Vosk model), captioned
in the speaker's room exactly as over the audio WebSocket; the stream bound to its person;
refusals, flooding, idle streams and shutting down."""

from __future__ import annotations

import asyncio
import gc
import json
import time
from pathlib import Path
from typing import Any

import httpx
import jiwer
import pytest

from app.captions.routes.http_audio import http_audio_limits
from app.captions.speaker_socket import AudioLimits
from app.config import Settings
from app.live import channels
from captioning.stream import RealtimeBudget
from realtime import post_frames
from tests.audio_fixtures import (  # noqa: F401 - the fixtures
    SENTENCES,
    Speech,
    silence,
    speech_fixture,
    vosk_model_path_fixture,
)
from tests.captions.test_live_captions import (
    WER_BOUND,
    caption_text,
    opus_packets,
    stored_segments,
)
from tests.conftest import LiveServer
from tests.factories import World, make_world
from tests.live_action_helpers import in_room, live_path, of_type, open_rooms
from tests.voice.test_voice_routing import listener_in
from tests.voice.voice_helpers import decoded, opus_of, transcribe

START = {"type": "start", "codec": "pcm16", "sample_rate": 16000, "consent": True}
CAPTION_EVENTS = ("caption.partial", "caption.final")


@pytest.fixture
def settings(settings: Settings, request: pytest.FixtureRequest) -> Settings:
    """The real model, except for the test of a server without one."""
    if "vosk_model_path" not in request.fixturenames:
        return settings
    model = request.getfixturevalue("vosk_model_path")
    return settings.model_copy(update={"vosk_model_path": model})


def binary(*packets: bytes) -> list[tuple[int, bytes]]:
    return [(post_frames.BINARY, p) for p in packets]


def text(message: dict[str, Any]) -> list[tuple[int, bytes]]:
    return [(post_frames.TEXT, json.dumps(message).encode())]


class HttpSpeaker:
    """The page's microphone in its compatibility mode: a start, then batches of frames."""

    def __init__(self, http: httpx.AsyncClient, base: str) -> None:
        self.http = http
        self.base = base
        self.token = ""
        self.messages: list[dict[str, Any]] = []
        self.closed: dict[str, Any] | None = None

    @classmethod
    async def start(
        cls, server: LiveServer, w: World, user: Any, start: dict[str, Any] | None = None
    ) -> HttpSpeaker:
        speaker = cls(server.client(user), live_path(w) + "/audio/http")
        answer = await speaker.begin(start or START)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        speaker.token = body["stream"]
        speaker.messages += body["messages"]
        assert body["messages"][0]["t"] == "started", body
        return speaker

    async def begin(self, start: dict[str, Any]) -> httpx.Response:
        return await self.http.post(
            self.base + "/start", json=start, headers={"Content-Type": "application/json"}
        )

    async def raw(self, body: bytes, **headers: str) -> httpx.Response:
        return await self.http.post(
            f"{self.base}/{self.token}",
            content=body,
            headers={"Content-Type": "application/octet-stream", **headers},
        )

    async def post(self, frames: list[tuple[int, bytes]]) -> dict[str, Any]:
        answer = await self.raw(post_frames.pack(frames))
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        self.messages += body["messages"]
        self.closed = self.closed or body["closed"]
        return body

    async def paced(
        self, batches: list[list[bytes]], seconds_each: float, speed: float = 2.5
    ) -> None:
        """Each batch POSTed once the last is answered, `speed` times faster than real time."""
        began = time.monotonic()
        for n, batch in enumerate(batches):
            await self.post(binary(*batch))
            if self.closed:
                return
            ahead = began + (n + 1) * seconds_each / speed - time.monotonic()
            if ahead > 0:
                await asyncio.sleep(ahead)

    async def close(self) -> None:
        await self.http.aclose()


def batches(items: list[bytes], size: int) -> list[list[bytes]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def pcm_batches(pcm: bytes) -> list[list[bytes]]:
    """250 ms of 16 kHz PCM a POST, as two frames (the second splits a sample)."""
    quarter = [pcm[i : i + 8000] for i in range(0, len(pcm), 8000)]
    return [[q[:4001], q[4001:]] if len(q) > 4001 else [q] for q in quarter]


async def test_pcm_speech_posted_in_quarter_seconds_is_captioned_in_the_room(
    live_server: LiveServer, db: Any, speech: Speech, vosk_model_path: Path
) -> None:
    w = await make_world(db)
    await open_rooms(live_server, w)
    room_a = channels.room(w.session.id, w.group_a.id)
    fola = await in_room(live_server, w, w.facilitator_a, w.group_a.id)
    bob = await in_room(live_server, w, w.participant_b, w.group_b.id)

    priya = await HttpSpeaker.start(live_server, w, w.participant_a)
    assert priya.messages[0]["room"] == room_a
    sentence = SENTENCES[0]
    await priya.paced(pcm_batches(speech.pcm(sentence) + silence(1.0)), 0.25)
    answer = await priya.post(text({"type": "stop"}))
    assert answer["closed"] == {"code": 1000, "reason": "stopped"}

    final = await fola.wait_for(of_type("caption.final"), timeout=15)
    hypothesis = caption_text(final)
    assert jiwer.wer(sentence, hypothesis) <= WER_BOUND, hypothesis
    assert "Priya Participant (she/her)" in final["h"] and final["c"] == room_a
    [segment] = await stored_segments(db, w.session.id)
    assert segment.channel == room_a and segment.speaker_id == w.participant_a.id
    assert not [m for m in await bob.quiet(0.3) if m.get("t") in CAPTION_EVENTS]

    # The ended stream is gone: its token is no longer known.
    gone = await priya.raw(b"")
    assert gone.status_code == 404 and "has ended" in gone.json()["detail"]
    await priya.close()
    await fola.close()
    await bob.close()


async def test_the_room_hears_a_speaker_whose_websockets_are_blocked(
    live_server: LiveServer, db: Any, speech: Speech, vosk_model_path: Path
) -> None:
    w = await make_world(db)
    await open_rooms(live_server, w)
    fola = await listener_in(live_server, w, w.facilitator_a, w.group_a)
    pat = await listener_in(live_server, w, w.participant_b, w.group_b)
    priya = await HttpSpeaker.start(
        live_server, w, w.participant_a, {**START, "codec": "opus", "sample_rate": 48000}
    )
    # (Through libopus at 20 kbps, SENTENCES[0] comes out of Vosk anywhere from exact to
    # WER 0.44 from one process to the next, server or none: this one stays exact.)
    sentence = SENTENCES[3]
    packets = opus_of(speech.pcm(sentence, rate=48000))
    await priya.paced(batches(packets, 12), 0.24, speed=1.0)  # in real time, as a person talks
    await asyncio.sleep(0.5)
    assert fola.sources() == {w.participant_a.id}
    heard = transcribe(vosk_model_path, decoded([p for _, p in fola.packets]))
    assert jiwer.wer(sentence, heard) <= WER_BOUND, heard
    assert pat.packets == []
    await priya.post(text({"type": "stop"}))
    await priya.close()
    await fola.close()
    await pat.close()


async def test_opus_speech_is_captioned_and_a_vanished_client_frees_its_stream(
    live_server: LiveServer, db: Any, speech: Speech, vosk_model_path: Path
) -> None:
    w = await make_world(db)
    streams = live_server.app_state.speaker_streams
    streams.idle_seconds = 1.0
    engine = live_server.app_state.captions
    alive_before = engine.recognizers_alive
    await open_rooms(live_server, w)
    room_a = channels.room(w.session.id, w.group_a.id)
    fola = await in_room(live_server, w, w.facilitator_a, w.group_a.id)
    priya = await HttpSpeaker.start(
        live_server, w, w.participant_a, {**START, "codec": "opus", "sample_rate": 48000}
    )
    sentence = SENTENCES[5]
    packets = opus_packets(speech.pcm(sentence))
    # Twelve or thirteen 20 ms packets a POST: a quarter of a second.
    await priya.paced(batches(packets, 12), 0.24)
    assert priya.closed is None
    # The client vanishes mid-utterance: no stop, no more POSTs. After the idle time the
    # stream ends as a closed socket would, and what was said is captioned.
    final = await fola.wait_for(of_type("caption.final"), timeout=15)
    hypothesis = caption_text(final)
    assert jiwer.wer(sentence, hypothesis) <= WER_BOUND, hypothesis
    assert final["c"] == room_a
    for _ in range(50):
        gc.collect()
        if streams.running == 0 and engine.recognizers_alive <= alive_before:
            break
        await asyncio.sleep(0.1)
    assert streams.running == 0 and engine.recognizers_alive <= alive_before
    assert (await priya.raw(b"")).status_code == 404
    await priya.close()
    await fola.close()


async def test_a_stream_is_its_persons_alone(
    live_server: LiveServer, db: Any, vosk_model_path: Path
) -> None:
    w = await make_world(db)
    priya = await HttpSpeaker.start(live_server, w, w.participant_a)
    body = post_frames.pack(binary(bytes(3200)))
    # Someone else, signed in as themselves, cannot post to her stream: it is unknown to them.
    async with live_server.client(w.participant_b) as pat:
        answer = await pat.post(
            f"{priya.base}/{priya.token}",
            content=body,
            headers={"Content-Type": "application/octet-stream"},
        )
    assert answer.status_code == 404
    async with httpx.AsyncClient(base_url=live_server.http) as nobody:
        anonymous = await nobody.post(
            f"{priya.base}/{priya.token}",
            content=body,
            headers={"Content-Type": "application/octet-stream"},
        )
    assert anonymous.status_code in (401, 403)
    # A made-up token is unknown too; hers still works.
    stranger = HttpSpeaker(priya.http, priya.base)
    stranger.token = "x" * 32
    assert (await stranger.raw(body)).status_code == 404
    assert (await priya.post(binary(bytes(3200))))["closed"] is None

    # Starting again (a reloaded page) ends her earlier stream.
    again = await HttpSpeaker.start(live_server, w, w.participant_a)
    assert (await priya.raw(body)).status_code == 404
    assert (await again.post(binary(bytes(3200))))["closed"] is None
    # Shutting down ends every stream.
    await live_server.app_state.speaker_streams.stop()
    assert live_server.app_state.speaker_streams.running == 0
    assert (await again.raw(body)).status_code == 404
    await priya.close()
    await again.close()


async def test_refusals_are_clear(live_server: LiveServer, db: Any, vosk_model_path: Path) -> None:
    w = await make_world(db)
    base = live_path(w) + "/audio/http"

    async def start_as(user: Any, body: Any = START, **headers: str) -> httpx.Response:
        async with live_server.client(user) as http:
            if isinstance(body, dict):
                return await http.post(base + "/start", json=body, headers=headers)
            return await http.post(base + "/start", content=body, headers=headers)

    observer = await start_as(w.observer)
    assert observer.status_code == 403 and "cannot speak in this room" in observer.text
    assert (await start_as(w.outsider)).status_code == 404
    assert (await start_as(None)).status_code in (303, 403)  # no sign-in, no CSRF cookie
    assert (await start_as(w.participant_a, Origin="https://evil.example")).status_code == 403
    no_token = await start_as(w.participant_a, **{"X-CSRF-Token": "forged"})
    assert no_token.status_code == 403
    consent = await start_as(w.participant_a, {**START, "consent": False})
    assert consent.status_code == 403 and "consent" in consent.json()["detail"]
    assert consent.json()["closed"]["code"] == 1008
    codec = await start_as(w.participant_a, {**START, "codec": "mp3"})
    assert codec.status_code == 400 and "opus" in codec.json()["detail"]
    form = await start_as(w.participant_a, b"type=start", **{"Content-Type": "text/plain"})
    assert form.status_code == 415 and "application/json" in form.json()["detail"]
    huge = await start_as(
        w.participant_a, b"{" + b" " * 5000 + b"}", **{"Content-Type": "application/json"}
    )
    assert huge.status_code == 413

    priya = await HttpSpeaker.start(live_server, w, w.participant_a)
    too_big = await priya.raw(post_frames.pack(binary(*[bytes(30000)] * 3)))
    assert too_big.status_code == 413 and "64 KB" in too_big.json()["detail"]
    cut = await priya.raw(b"\x00\x10\x00" + bytes(10))
    assert cut.status_code == 400
    assert "frame 1 says it holds 4096 bytes but only 10 follow" in cut.json()["detail"]
    kind = await priya.raw(b"\x07\x00\x01x")
    assert kind.status_code == 400 and "type 7" in kind.json()["detail"]
    header = await priya.raw(b"\x00\x00")
    assert header.status_code == 400 and "header" in header.json()["detail"]
    not_utf8 = await priya.raw(post_frames.pack([(post_frames.TEXT, b"\xff\xfe")]))
    assert not_utf8.status_code == 400 and "UTF-8" in not_utf8.json()["detail"]
    wrong_type = await priya.raw(b"", **{"Content-Type": "text/plain"})
    assert wrong_type.status_code == 415
    forged = await priya.raw(b"", **{"X-CSRF-Token": "forged"})
    assert forged.status_code == 403
    cross = await priya.raw(b"", Origin="https://evil.example")
    assert cross.status_code == 403
    # None of that ended her stream; an unknown message is answered as on the socket.
    answer = await priya.post(text({"type": "dance"}))
    assert answer["closed"] is None
    assert [m["code"] for m in answer["messages"] if m["t"] == "error"] == ["unknown_type"]

    # The process takes only so many streams.
    live_server.app_state.speaker_streams.max_streams = 1
    full = await start_as(w.participant_b)
    assert full.status_code == 503 and "Too many people" in full.text
    assert int(full.headers["retry-after"]) > 0
    await priya.close()


async def test_a_flood_is_cut_to_real_time(
    live_server: LiveServer, db: Any, vosk_model_path: Path
) -> None:
    w = await make_world(db)
    overrides = live_server.server.config.app.dependency_overrides
    overrides[http_audio_limits] = lambda: AudioLimits(
        budget=RealtimeBudget(max_speed=3.0, burst_seconds=1.0)
    )
    await open_rooms(live_server, w)  # where she may be heard, so her sound is taken
    try:
        fast = await HttpSpeaker.start(live_server, w, w.participant_a)
        for _ in range(3):  # 2 s of sound a POST, as fast as the answers come
            await fast.post(binary(*[silence(0.5)] * 4))
            # Frames count against the budget as they arrive: the answer says so.
            if fast.closed:
                break
    finally:
        overrides.clear()
    assert fast.closed is not None and fast.closed["code"] == 1008
    assert "faster than real time" in fast.closed["reason"]
    assert fast.messages[-1]["code"] == "too_fast"
    await fast.close()


async def test_without_a_model_the_start_says_so(live_server: LiveServer, db: Any) -> None:
    """The speaker is still heard; the start's answer says they will not be captioned."""
    w = await make_world(db)
    async with live_server.client(w.participant_a) as http:
        answer = await http.post(live_path(w) + "/audio/http/start", json=START)
    assert answer.status_code == 200, answer.text
    [told] = [m for m in answer.json()["messages"] if m.get("t") == "captions"]
    assert told["available"] is False and told["message"].startswith("captions unavailable")
    assert live_server.app_state.speaker_streams.running == 1
