"""Live captions end to end: a speaker's microphone (espeak speech as PCM and as Opus) over
the audio WebSocket, recognized by the real Vosk model, captioned to the people in their
room and nobody else; stored, in the transcripts; muting; and bad input refused."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import random
import time
from pathlib import Path
from typing import Any

import jiwer
import pytest
import websockets
from sqlalchemy import select

from app.captions.microphone import AudioLimits
from app.captions.models import CaptionSegment
from app.captions.routes.room import caption_audio_limits
from app.config import Settings
from app.live import channels
from captioning.live import PartialCoalescer, split_utterance, words_of
from captioning.stream import RealtimeBudget
from tests.audio_fixtures import (  # noqa: F401 - the fixtures
    SENTENCES,
    Speech,
    silence,
    speech_fixture,
    vosk_model_path_fixture,
)
from tests.conftest import LiveServer
from tests.factories import World, make_world
from tests.live_action_helpers import act, in_room, live_path, of_type, open_rooms
from tests.live_helpers import LiveClient

# Word error rates through this WebSocket, on espeak-ng's en-us voice with the small en-us
# model, over the six SENTENCES: 0.22 as 16 kHz PCM and 0.20 as 24 kbps Opus (the codec
# costs nothing here); 0.0 for each sentence as it is sent below. The bound leaves room
# for other espeak-ng versions.
WER_BOUND = 0.35
CLEAR, CLEAR_TOO, CLEAR_AS_WELL = SENTENCES[0], SENTENCES[5], SENTENCES[4]
CAPTION_EVENTS = ("caption.partial", "caption.final", "caption.corrected")


@pytest.fixture
def settings(settings: Settings, request: pytest.FixtureRequest) -> Settings:
    """The real model, except for the test of a server without one."""
    if "vosk_model_path" not in request.fixturenames:
        return settings
    model = request.getfixturevalue("vosk_model_path")
    return settings.model_copy(update={"vosk_model_path": model})


def opus_packets(pcm: bytes, rate: int = 16000) -> list[bytes]:
    """16-bit mono PCM as Opus packets of 20 ms at 24 kbps, as WebCodecs would send."""
    import av

    encoder = av.CodecContext.create("libopus", "w")
    encoder.sample_rate = 48000
    encoder.layout = "mono"
    encoder.format = "s16"
    encoder.bit_rate = 24000
    encoder.options = {"frame_duration": "20"}
    encoder.open()
    frame = av.AudioFrame(format="s16", layout="mono", samples=len(pcm) // 2)
    frame.sample_rate = rate
    frame.planes[0].update(pcm)
    fifo = av.AudioFifo()
    resampler = av.AudioResampler(format="s16", layout="mono", rate=48000)
    for resampled in [*resampler.resample(frame), *resampler.resample(None)]:
        fifo.write(resampled)
    packets = []
    while (chunk := fifo.read(encoder.frame_size)) is not None:
        packets += [bytes(p) for p in encoder.encode(chunk)]
    packets += [bytes(p) for p in encoder.encode(None)]
    return packets


class Speaker:
    """The microphone side of the protocol."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.stream = ""
        self.room = ""

    @classmethod
    async def connect(cls, server: LiveServer, w: World, user: Any, **headers: str) -> Speaker:
        cookie = {"Cookie": server.cookie_header(user)} if user is not None else {}
        ws = await websockets.connect(
            server.ws + live_path(w) + "/audio",
            additional_headers={**cookie, **headers},
            open_timeout=10,
            close_timeout=5,
        )
        return cls(ws)

    @classmethod
    async def start(
        cls, server: LiveServer, w: World, user: Any, codec: str = "pcm16", rate: int = 16000
    ) -> Speaker:
        speaker = await cls.connect(server, w, user)
        await speaker.send_json(
            {"type": "start", "codec": codec, "sample_rate": rate, "consent": True}
        )
        started = await speaker.receive()
        assert started["t"] == "started", started
        speaker.stream, speaker.room = started["stream"], started["room"]
        return speaker

    async def send_json(self, message: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(message))

    async def receive(self, timeout: float = 10, *, floor: bool = False) -> dict[str, Any]:
        """The next message; what the voice says about the room (whether the speaker may
        be heard, whether it is recorded: docs/voice.md) is skipped unless asked for."""
        while True:
            message: dict[str, Any] = json.loads(await asyncio.wait_for(self.ws.recv(), timeout))
            if floor or message.get("t") not in ("floor", "recording"):
                return message

    async def paced(self, frames: list[bytes], seconds_each: float, speed: float = 2.5) -> None:
        """Frames sent `speed` times faster than real time (the live budget allows 3)."""
        began = time.monotonic()
        for n, frame in enumerate(frames):
            await self.ws.send(frame)
            ahead = began + (n + 1) * seconds_each / speed - time.monotonic()
            if ahead > 0:
                await asyncio.sleep(ahead)

    async def closed(self, timeout: float = 20) -> tuple[int | None, str, list[dict[str, Any]]]:
        """What the server still sent, then its close code and reason."""
        messages = []
        try:
            async with asyncio.timeout(timeout):
                async for message in self.ws:
                    if isinstance(message, str):
                        messages.append(json.loads(message))
        except websockets.ConnectionClosed:
            pass
        return self.ws.close_code, self.ws.close_reason, messages


def chunks(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def captions(client: LiveClient) -> list[dict[str, Any]]:
    return [m for m in client.received if m.get("t") in CAPTION_EVENTS]


def caption_text(event: dict[str, Any]) -> str:
    html = event["h"]
    return html.split('<span class="text">', 1)[1].split("</span>", 1)[0]


async def stored_segments(db: Any, session_id: int) -> list[CaptionSegment]:
    await db.commit()  # see what the server has committed since
    rows = await db.scalars(
        select(CaptionSegment)
        .where(CaptionSegment.session_id == session_id)
        .order_by(CaptionSegment.id)
    )
    return list(rows.all())


async def test_partials_are_coalesced_and_the_latest_text_wins() -> None:
    sent: list[str] = []

    async def send(text: str) -> None:
        sent.append(text)

    partials = PartialCoalescer(send, interval=0.05)
    words = [
        "one",
        "two",
        "three",
        "four",
        "five",
        "six",
        "seven",
        "eight",
        "nine",
        "ten",
        "eleven",
        "twelve",
    ]
    began = time.monotonic()
    for n in range(1, len(words) + 1):
        await partials.offer(" ".join(words[:n]))
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.08)
    elapsed = time.monotonic() - began
    assert len(sent) <= elapsed / 0.05 + 1 < len(words)
    assert sent[0] == "one" and sent[-1] == " ".join(words)  # the latest text, in the end

    # A final drops a partial still waiting, and comes after what has been shown. ("so" goes
    # out at once only if a whole interval has passed since the last partial was sent, which
    # on a loaded machine may have been later than planned.)
    await asyncio.sleep(0.06)
    await partials.offer("so")
    await partials.offer("so far")  # waits for its turn

    async def final() -> str:
        sent.append("FINAL")
        return "stored"

    assert await partials.end_utterance(final) == "stored"
    await asyncio.sleep(0.08)
    assert sent[-2:] == ["so", "FINAL"]
    # Nothing recognized after a partial was shown: the partial line is emptied.
    await asyncio.sleep(0.06)
    await partials.offer("uh")
    assert await partials.end_utterance(None) is None
    assert sent[-2:] == ["uh", ""]
    partials.close()


def test_a_long_utterance_becomes_captions_short_enough_to_read() -> None:
    said = [(f"word{n:03d}", n * 0.5, n * 0.5 + 0.4, 0.9) for n in range(200)]
    pieces = split_utterance("ignored", said, limit=100)
    assert all(len(text) <= 100 for text, _ in pieces)
    assert " ".join(text for text, _ in pieces) == " ".join(w[0] for w in said)
    assert [w for _, words in pieces for w in words] == said  # each word once, with its times
    assert split_utterance("just text, no times", [], limit=10) == [
        ("just text,", []),
        ("no times", []),
    ]
    assert split_utterance("", []) == []
    assert words_of([{"word": "hi", "start": 1, "end": 2}, "junk"]) == [("hi", 1.0, 2.0, 0.0)]
    assert words_of(None) == []


async def test_pcm_speech_is_captioned_for_the_room_and_nobody_else(
    live_server: LiveServer, db: Any, speech: Speech, vosk_model_path: Path
) -> None:
    w = await make_world(db)
    await open_rooms(live_server, w)
    room_a = channels.room(w.session.id, w.group_a.id)
    fola = await in_room(live_server, w, w.facilitator_a, w.group_a.id)
    bob = await in_room(live_server, w, w.participant_b, w.group_b.id)
    host = await LiveClient.connect(
        live_server, w.host, live_path(w), {channels.plenary(w.session.id): None}
    )
    otto = await LiveClient.connect(
        live_server,
        w.outsider,
        f"/programmes/{w.other_programme.id}/sessions/{w.other_session.id}/live",
        {channels.plenary(w.other_session.id): None},
    )

    priya = await Speaker.start(live_server, w, w.participant_a)
    assert priya.room == room_a
    sentence = CLEAR
    pcm = speech.pcm(sentence) + silence(1.0)
    # Odd-sized frames: every other one splits a sample, which the server carries over.
    began = time.monotonic()
    await priya.paced(chunks(pcm, 3201), 3201 / 32000)
    await priya.send_json({"type": "stop"})
    code, _reason, _rest = await priya.closed()
    assert code == 1000

    final = await fola.wait_for(of_type("caption.final"), timeout=15)
    took = time.monotonic() - began
    partials = [m for m in captions(fola) if m["t"] == "caption.partial"]
    assert partials, "no partial captions while speaking"
    assert all(p["x"] == f"cp-{priya.stream}" and p["i"] == 0 for p in partials)
    assert all(
        p["d"]
        == {"stream": priya.stream, "speaker_id": w.participant_a.id, "into": f"captions-{room_a}"}
        for p in partials
    )
    assert all(
        'aria-hidden="true"' in p["h"] and "Priya Participant (she/her)" in p["h"] for p in partials
    )
    # At most 5 partials a second (4.4 s of audio, sent in about 1.8 s).
    assert len(partials) <= 5 * took + 1
    assert all(caption_text(p) for p in partials)

    hypothesis = caption_text(final)
    assert jiwer.wer(sentence, hypothesis) <= WER_BOUND, hypothesis
    assert "Priya Participant (she/her)" in final["h"]
    data = final["d"]
    assert data["stream"] == priya.stream and data["speaker_id"] == w.participant_a.id
    assert data["into"] == f"captions-{room_a}" and data["drop"] == f"cp-{priya.stream}"
    assert final["x"] == f"cs-{data['segment']}" and f'id="cs-{data["segment"]}"' in final["h"]
    words = data["words"]
    assert [w_[0] for w_ in words] == hypothesis.split()
    assert all(0 <= start <= end for _, start, end in words)
    assert [start for _, start, _end in words] == sorted(start for _, start, _end in words)
    assert words[-1][2] <= len(pcm) / 32000

    [segment] = await stored_segments(db, w.session.id)
    assert (segment.id, segment.channel, segment.group_id) == (
        data["segment"],
        room_a,
        w.group_a.id,
    )
    assert segment.speaker_id == w.participant_a.id
    assert segment.text == segment.original_text == hypothesis
    assert segment.speaker_name == "Priya Participant (she/her)"
    assert segment.started_at <= segment.ended_at

    # Nobody outside the room hears it: another group's room, the plenary, another programme.
    for outside in (bob, host, otto):
        assert not [m for m in await outside.quiet(0.3) if m.get("t") in CAPTION_EVENTS]
        assert not captions(outside)

    async with live_server.client(w.facilitator_a) as http:
        vtt = await http.get(live_path(w) + "/transcript.vtt", params={"channel": room_a})
    assert vtt.status_code == 200 and vtt.text.startswith("WEBVTT")
    assert f"<v Priya Participant (she/her)>{hypothesis}" in vtt.text
    for client in (fola, bob, host, otto):
        await client.close()


async def test_opus_speech_follows_the_speaker_into_their_room_and_survives_a_vanishing_client(
    live_server: LiveServer, db: Any, speech: Speech, vosk_model_path: Path
) -> None:
    w = await make_world(db)
    plenary, room_a = channels.plenary(w.session.id), channels.room(w.session.id, w.group_a.id)
    engine = live_server.app_state.captions
    alive_before = engine.recognizers_alive
    priya = await Speaker.start(live_server, w, w.participant_a, codec="opus", rate=48000)
    assert priya.room == plenary

    # The host opens the rooms: the speaker's captions now go to their group's room.
    await open_rooms(live_server, w)
    assert await priya.receive() == {"t": "moved", "room": room_a}
    fola = await in_room(live_server, w, w.facilitator_a, w.group_a.id)
    host = await LiveClient.connect(live_server, w.host, live_path(w), {plenary: None})

    sentence = CLEAR_TOO
    packets = opus_packets(speech.pcm(sentence))
    assert max(len(p) for p in packets) <= 4000
    await priya.paced(packets, 0.02)
    # The client vanishes mid-utterance (no silence, no stop): what was said is captioned.
    await priya.ws.close()

    final = await fola.wait_for(of_type("caption.final"), timeout=15)
    hypothesis = caption_text(final)
    assert jiwer.wer(sentence, hypothesis) <= WER_BOUND, hypothesis
    assert final["d"]["words"] and final["c"] == room_a
    [segment] = await stored_segments(db, w.session.id)
    assert segment.channel == room_a and segment.text == hypothesis
    assert not [m for m in await host.quiet(0.3) if m.get("t") in CAPTION_EVENTS]

    # And its recognizer is freed.
    for _ in range(50):
        gc.collect()
        if engine.recognizers_alive <= alive_before:
            break
        await asyncio.sleep(0.1)
    assert engine.recognizers_alive <= alive_before
    await fola.close()
    await host.close()


async def test_muting_ends_the_stream_and_refuses_new_ones_until_unmuted(
    live_server: LiveServer, db: Any, speech: Speech, vosk_model_path: Path
) -> None:
    w = await make_world(db)
    await open_rooms(live_server, w)
    path = live_path(w)
    priya_page = await in_room(live_server, w, w.participant_a, w.group_a.id)
    fola = await in_room(live_server, w, w.facilitator_a, w.group_a.id)
    priya = await Speaker.start(live_server, w, w.participant_a)
    await priya.paced(chunks(speech.pcm(SENTENCES[3])[:16000], 3200), 0.1)

    # Only facilitators of her room and hosts may mute her.
    for who in (w.participant_b, w.facilitator_b, w.it_support):
        refused = await act(
            live_server, who, path + "/captions/mute", {"user_id": w.participant_a.id}
        )
        assert refused.status_code == 403, who.display_name
    muted = await act(
        live_server, w.facilitator_a, path + "/captions/mute", {"user_id": w.participant_a.id}
    )
    assert muted.status_code == 200 and "captioning is off" in muted.text
    code, reason, messages = await priya.closed()
    assert code == 4001 and "muted" in reason
    assert messages[-1]["t"] == "muted" and "turned off live captions" in messages[-1]["message"]
    notice = await priya_page.wait_for(of_type("caption.muted"))
    assert "turned off live captions" in notice["h"]
    # What she was saying when muted is not captioned.
    assert not [m for m in await fola.quiet(0.5) if m.get("t") == "caption.final"]

    again = await Speaker.connect(live_server, w, w.participant_a)
    await again.send_json(
        {"type": "start", "codec": "pcm16", "sample_rate": 16000, "consent": True}
    )
    code, _reason, messages = await again.closed()
    assert code == 4001 and messages == [
        {"t": "error", "code": "muted", "message": messages[0]["message"]}
    ]

    unmuted = await act(
        live_server,
        w.host,
        path + "/captions/mute",
        {"user_id": w.participant_a.id, "action": "unmute"},
    )
    assert unmuted.status_code == 200 and "on again" in unmuted.text
    assert "allowed again" in (await priya_page.wait_for(of_type("caption.unmuted")))["h"]
    back = await Speaker.start(live_server, w, w.participant_a)
    await back.send_json({"type": "stop"})
    assert (await back.closed())[0] == 1000
    await priya_page.close()
    await fola.close()


async def refused_start(
    server: LiveServer, w: World, user: Any, first: str | bytes, **headers: str
) -> tuple[int | None, str, list[dict[str, Any]]]:
    speaker = await Speaker.connect(server, w, user, **headers)
    with contextlib.suppress(websockets.ConnectionClosed):  # refused before it is sent
        await speaker.ws.send(first)
    return await speaker.closed()


START = {"type": "start", "codec": "pcm16", "sample_rate": 16000, "consent": True}


async def test_bad_starts_are_refused_with_a_reason(
    live_server: LiveServer, db: Any, vosk_model_path: Path
) -> None:
    w = await make_world(db)
    cases: list[tuple[Any, str | bytes, int, str]] = [
        (w.participant_a, b"\x00\x01" * 100, 1003, "before the start"),
        (w.participant_a, "hello", 1003, "must be JSON"),
        (w.participant_a, json.dumps({"type": "resume"}), 1003, "first message must be a start"),
        (w.participant_a, json.dumps({**START, "consent": False}), 1008, "consent"),
        (
            w.participant_a,
            json.dumps({k: v for k, v in START.items() if k != "consent"}),
            1008,
            "consent",
        ),
        (
            w.participant_a,
            json.dumps({**START, "codec": "mp3"}),
            1003,
            'codec must be "opus" or "pcm16"',
        ),
        (w.participant_a, json.dumps({**START, "sample_rate": 4000}), 1003, "8000 to 48000"),
        (w.participant_a, json.dumps({**START, "sample_rate": "fast"}), 1003, "sample_rate"),
        (
            w.participant_a,
            json.dumps({**START, "codec": "opus", "sample_rate": 16000}),
            1003,
            "48000",
        ),
        (w.participant_a, json.dumps(START)[:-1] + "x" * 5000 + "}", 1009, "4 KB"),
        (w.observer, json.dumps(START), 1008, "cannot speak in this room"),
        (None, json.dumps(START), 1008, "sign in"),
        (w.outsider, json.dumps(START), 1008, "not part of this session"),
    ]
    for user, first, code, reason in cases:
        got_code, got_reason, messages = await refused_start(live_server, w, user, first)
        assert (got_code, reason in got_reason) == (code, True), (first, got_code, got_reason)
        assert messages and messages[-1]["t"] == "error" and reason in messages[-1]["message"]
    cross = await refused_start(
        live_server, w, w.participant_a, json.dumps(START), Origin="https://evil.example"
    )
    assert cross[:2] == (1008, "cross-site connections are refused")


async def test_bad_audio_is_refused_and_does_not_delay_another_room(
    live_server: LiveServer, db: Any, speech: Speech, vosk_model_path: Path
) -> None:
    w = await make_world(db)
    await open_rooms(live_server, w)
    fola = await in_room(live_server, w, w.facilitator_a, w.group_a.id)

    # Frames over the limits: 64 KB of PCM, 4000 bytes of Opus.
    big = await Speaker.start(live_server, w, w.participant_b)
    await big.ws.send(bytes(64 * 1024 + 2))
    code, reason, _ = await big.closed()
    assert code == 1009 and "at most 65,536 bytes" in reason
    big = await Speaker.start(live_server, w, w.participant_b, codec="opus", rate=48000)
    await big.ws.send(bytes(4001))
    assert (await big.closed())[0] == 1009

    # Not Opus at all, in room B, while Priya speaks in room A: her captions still come.
    noise = await Speaker.start(live_server, w, w.participant_b, codec="opus", rate=48000)
    rng = random.Random(7)
    priya = await Speaker.start(live_server, w, w.participant_a)
    sentence = CLEAR_AS_WELL
    speaking = asyncio.create_task(
        priya.paced(chunks(speech.pcm(sentence) + silence(1.0), 3200), 0.1)
    )
    began = time.monotonic()
    try:
        for _ in range(400):
            await noise.ws.send(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300))))
    except websockets.ConnectionClosed:
        pass
    code, reason, _ = await noise.closed()
    assert code == 1003 and reason.startswith("not Opus audio")
    await speaking
    await priya.send_json({"type": "stop"})
    final = await fola.wait_for(of_type("caption.final"), timeout=10)
    assert jiwer.wer(sentence, caption_text(final)) <= WER_BOUND
    assert time.monotonic() - began < 10

    # Pause and resume: audio while paused is not captioned; unknown messages are answered.
    quiet = await Speaker.start(live_server, w, w.participant_a)
    await quiet.send_json({"type": "pause"})
    for frame in chunks(speech.pcm(CLEAR), 32000):
        await quiet.ws.send(frame)
    await quiet.send_json({"type": "dance"})
    assert (await quiet.receive())["code"] == "unknown_type"
    await quiet.send_json({"type": "resume"})
    await quiet.send_json({"type": "stop"})
    assert (await quiet.closed())[0] == 1000
    assert not [m for m in await fola.quiet(0.5) if m.get("t") == "caption.final"]
    await fola.close()


async def test_too_fast_and_idle_streams_are_closed(
    live_server: LiveServer, db: Any, vosk_model_path: Path
) -> None:
    w = await make_world(db)
    overrides = live_server.server.config.app.dependency_overrides
    overrides[caption_audio_limits] = lambda: AudioLimits(
        idle_seconds=0.5, budget=RealtimeBudget(max_speed=3.0, burst_seconds=1.0)
    )
    fast = await Speaker.start(live_server, w, w.host)
    try:
        for frame in chunks(silence(5.0), 32000):
            await fast.ws.send(frame)
    except websockets.ConnectionClosed:
        pass
    code, reason, messages = await fast.closed()
    assert code == 1008 and "faster than real time" in reason
    assert messages[-1]["code"] == "too_fast"

    idle = await Speaker.start(live_server, w, w.participant_a)
    code, reason, _ = await idle.closed(timeout=5)
    assert code == 1001 and reason.startswith("idle")
    overrides.clear()


async def test_without_a_model_the_speaker_is_heard_uncaptioned_and_the_room_says_so(
    live_server: LiveServer, db: Any
) -> None:
    from tests.voice.voice_helpers import Listener, opus_of, tone

    w = await make_world(db)
    await open_rooms(live_server, w)
    room = channels.room(w.session.id, w.group_a.id)
    cursors = {room: None, channels.personal(w.facilitator_a.id): None}
    fola = await Listener.connect(live_server, w.facilitator_a, live_path(w), cursors)
    speaker = await Speaker.start(live_server, w, w.participant_a, codec="opus", rate=48000)
    told = await speaker.receive()
    assert told["t"] == "captions" and told["available"] is False
    assert told["message"].startswith("captions unavailable: ")
    await speaker.paced(opus_of(tone(440, 0.6)), 0.02, speed=1.0)
    await asyncio.sleep(0.3)
    assert fola.sources() == {w.participant_a.id}
    assert not [m for m in fola.messages if m.get("t") in CAPTION_EVENTS]
    await speaker.ws.close()
    await fola.close()
    async with live_server.client(w.participant_a) as http:
        page = await http.get(live_path(w))
    assert page.status_code == 200 and "captions unavailable" in page.text.lower()
