"""The tech check's "hear yourself": Opus packets (made with libopus, as WebCodecs makes
them) sent to the server come straight back, byte for byte, and still decode to the sound
that was sent; over the echo WebSocket and, when that is blocked, over POSTs framed as the
speaker's compatibility mode frames them. Its limits and who may use it."""

from __future__ import annotations

import asyncio
import math
import struct
from typing import Any

import pytest
import websockets

from app.live.routes import tech_check
from realtime import post_frames
from tests.captions.test_live_captions import opus_packets
from tests.conftest import LiveServer
from tests.factories import make_world

OCTETS = {"Content-Type": "application/octet-stream"}


def tone(seconds: float, hz: float = 440.0, rate: int = 16000) -> bytes:
    samples = int(seconds * rate)
    return struct.pack(
        f"<{samples}h",
        *(int(12000 * math.sin(2 * math.pi * hz * n / rate)) for n in range(samples)),
    )


def loudness(packets: list[bytes]) -> float:
    """The RMS level of the sound the packets decode to (libopus, 48 kHz)."""
    import av

    decoder = av.CodecContext.create("libopus", "r")
    decoder.sample_rate = 48000
    decoder.layout = "mono"
    total, count = 0.0, 0
    for packet in packets:
        for frame in decoder.decode(av.Packet(packet)):
            for value in frame.to_ndarray().flatten().tolist():
                value = value * 32768 if isinstance(value, float) else value
                total += value * value
                count += 1
    return math.sqrt(total / count) if count else 0.0


@pytest.fixture(scope="module")
def packets() -> list[bytes]:
    """One second of a tone as 20 ms Opus packets."""
    made = opus_packets(tone(1.0))
    assert 48 <= len(made) <= 52 and max(len(p) for p in made) <= 4000
    return made


async def test_voice_echo_websocket_sends_the_packets_straight_back(
    live_server: LiveServer, db: Any, packets: list[bytes]
) -> None:
    w = await make_world(db)
    url = live_server.ws + "/tech-check/voice"
    cookie = {"Cookie": live_server.cookie_header(w.participant_a)}
    async with websockets.connect(url, additional_headers=cookie) as ws:
        echoed = []
        for packet in packets:
            await ws.send(packet)
            echoed.append(await asyncio.wait_for(ws.recv(), 5))
            await asyncio.sleep(0.02)
        assert echoed == packets
        assert loudness(echoed) > 3000  # the tone, not silence

        await ws.send(bytes(4001))
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await ws.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
        assert "at most 4000 bytes" in closed.value.rcvd.reason

    async with websockets.connect(url, additional_headers=cookie) as ws:
        await ws.send("text")
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await ws.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1003

    # A browser on a busy machine sends two seconds of late packets at once: all come back.
    async with websockets.connect(url, additional_headers=cookie) as ws:
        for packet in packets + packets:
            await ws.send(packet)
        echoed = [await asyncio.wait_for(ws.recv(), 5) for _ in range(2 * len(packets))]
        assert echoed == packets + packets

    # Much more than 60 packets a second is a flood: the connection ends.
    async with websockets.connect(url, additional_headers=cookie) as ws:
        with pytest.raises(websockets.ConnectionClosed) as closed:
            for packet in packets * 5:
                await ws.send(packet)
            while True:
                await asyncio.wait_for(ws.recv(), 5)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
        assert "at most 60 packets a second" in closed.value.rcvd.reason

    # Not signed in, or from another site: refused.
    for headers in ({}, {**cookie, "Origin": "https://evil.example"}):
        async with websockets.connect(url, additional_headers=headers) as ws:
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await ws.recv()
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008


async def test_voice_echo_websocket_lasts_a_check_not_longer(
    live_server: LiveServer, db: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = await make_world(db)
    monkeypatch.setattr(tech_check, "VOICE_SECONDS", 0.5)
    cookie = {"Cookie": live_server.cookie_header(w.participant_a)}
    async with websockets.connect(
        live_server.ws + "/tech-check/voice", additional_headers=cookie
    ) as ws:
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 5)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1000
        assert "at most 30 seconds" in closed.value.rcvd.reason


async def test_voice_echo_over_posts_answers_the_same_bytes(
    live_server: LiveServer, db: Any, packets: list[bytes]
) -> None:
    w = await make_world(db)
    async with live_server.client(w.participant_a) as http:
        echoed: list[bytes] = []
        for start in range(0, len(packets), 12):  # a quarter of a second a POST
            body = post_frames.pack([(post_frames.BINARY, p) for p in packets[start : start + 12]])
            answer = await http.post("/tech-check/voice", content=body, headers=OCTETS)
            assert answer.status_code == 200, answer.text
            assert answer.headers["content-type"] == "application/octet-stream"
            assert answer.content == body
            echoed += [frame.data for frame in post_frames.parse(answer.content)]
        assert echoed == packets and loudness(echoed) > 3000

        async def refused(body: bytes, **headers: str) -> tuple[int, str]:
            answer = await http.post("/tech-check/voice", content=body, headers=headers)
            return answer.status_code, answer.text

        assert await refused(b"", **{"Content-Type": "audio/ogg"}) == (
            415,
            '{"detail":"Send the packets as application/octet-stream."}',
        )
        status, text = await refused(bytes(70_000), **OCTETS)
        assert status == 413 and "64 KB" in text
        status, text = await refused(post_frames.pack([(post_frames.TEXT, b"{}")]), **OCTETS)
        assert status == 400 and "not a sound packet" in text
        status, text = await refused(
            post_frames.pack([(post_frames.BINARY, bytes(4001))]), **OCTETS
        )
        assert status == 400 and "at most 4000" in text
        status, text = await refused(b"\x00\x00\x09abc", **OCTETS)
        assert status == 400 and "says it holds 9 bytes but only 3 follow" in text
        status, _ = await refused(b"", **{**OCTETS, "X-CSRF-Token": "forged"})
        assert status == 403
        # Sixty POSTs a minute a person (three checks): then wait.
        for _ in range(60):
            await http.post("/tech-check/voice", content=b"", headers=OCTETS)
        limited = await http.post("/tech-check/voice", content=b"", headers=OCTETS)
        assert limited.status_code == 429 and int(limited.headers["retry-after"]) > 0
        assert "try again in" in limited.json()["detail"]
    # Someone else is not held back by that.
    async with live_server.client(w.participant_b) as http:
        assert (
            await http.post("/tech-check/voice", content=b"", headers=OCTETS)
        ).status_code == 200
    async with live_server.client() as anonymous:
        answer = await anonymous.post("/tech-check/voice", content=b"", headers=OCTETS)
        assert answer.status_code in (303, 403)
