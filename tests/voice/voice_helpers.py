"""Clients for voice tests: a listener on the live WebSocket that asked to hear (binary
frames of media packets, realtime/media.py) and keeps the JSON messages too; tones and
speech as 20 ms Opus packets; what a listener heard decoded, measured and transcribed."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
from pathlib import Path
from typing import Any

import av
import numpy as np
import websockets

from realtime.media import Packet, unpack
from tests.conftest import LiveServer


class Listener:
    """A page's live WebSocket that joined the room's audio."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.packets: list[tuple[float, Packet]] = []
        self.messages: list[dict[str, Any]] = []
        self.frame_bytes = 0
        self._task = asyncio.create_task(self._read())

    @classmethod
    async def connect(
        cls, server: LiveServer, user: Any, path: str, cursors: dict[str, int | None]
    ) -> Listener:
        ws = await websockets.connect(
            server.ws + path + "/ws",
            additional_headers={"Cookie": server.cookie_header(user)},
            open_timeout=10,
            max_size=2**20,
        )
        await ws.send(json.dumps({"type": "hello", "cursors": cursors, "media": ["audio"]}))
        listener = cls(ws)
        await listener.wait_for("hello")
        return listener

    async def _read(self) -> None:
        loop = asyncio.get_running_loop()
        with contextlib.suppress(websockets.ConnectionClosed):
            async for message in self.ws:
                if isinstance(message, bytes):
                    self.frame_bytes += len(message)
                    now = loop.time()
                    self.packets.extend((now, p) for p in unpack(message))
                else:
                    self.messages.append(json.loads(message))

    async def wait_for(self, kind: str, timeout: float = 10.0) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            while True:
                for message in self.messages:
                    if message.get("t") == kind:
                        return message
                await asyncio.sleep(0.02)

    def sources(self) -> set[int]:
        return {packet.source for _, packet in self.packets}

    async def close(self) -> None:
        await self.ws.close()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


def tone(frequency: float, seconds: float, level: float = 8000.0) -> bytes:
    n = int(48000 * seconds)
    samples = level * np.sin(2 * math.pi * frequency * np.arange(n) / 48000)
    return samples.astype(np.int16).tobytes()


def opus_of(pcm48: bytes, bitrate: int = 20000) -> list[bytes]:
    """16-bit mono 48 kHz PCM as 20 ms Opus packets, as the browser's encoder sends."""
    encoder: Any = av.CodecContext.create("libopus", "w")
    encoder.sample_rate, encoder.layout, encoder.format = 48000, "mono", "s16"
    encoder.bit_rate = bitrate
    encoder.options = {"frame_duration": "20", "application": "voip"}
    encoder.open()
    out: list[bytes] = []
    for start in range(0, len(pcm48) - 1919, 1920):
        samples = np.frombuffer(pcm48[start : start + 1920], dtype=np.int16)
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = 48000
        frame.pts = start // 2
        out += [bytes(p) for p in encoder.encode(frame)]
    return out


def resampled(pcm: bytes, rate: int, to: int) -> bytes:
    frame = av.AudioFrame(format="s16", layout="mono", samples=len(pcm) // 2)
    frame.sample_rate = rate
    frame.planes[0].update(pcm)
    resampler = av.AudioResampler(format="s16", layout="mono", rate=to)
    out = bytearray()
    for piece in [*resampler.resample(frame), *resampler.resample(None)]:
        out += bytes(piece.planes[0])[: piece.samples * 2]
    return bytes(out)


def decoded(packets: list[Packet]) -> bytes:
    """What a listener's player would play: each source's packets through its own
    decoder, the sources added (16-bit mono, 48 kHz)."""
    streams: dict[int, bytearray] = {}
    decoders: dict[int, Any] = {}
    for packet in packets:
        decoder = decoders.get(packet.source)
        if decoder is None:
            decoder = decoders[packet.source] = av.CodecContext.create("libopus", "r")
            decoder.sample_rate, decoder.layout = 48000, "mono"
            streams[packet.source] = bytearray()
        for frame in decoder.decode(av.Packet(packet.payload)):
            streams[packet.source] += frame.to_ndarray().astype(np.int16).tobytes()
    longest = max((len(s) for s in streams.values()), default=0)
    total = np.zeros(longest // 2, dtype=np.int32)
    for stream in streams.values():
        samples = np.frombuffer(bytes(stream), dtype=np.int16)
        total[: len(samples)] += samples
    return np.clip(total, -32768, 32767).astype(np.int16).tobytes()


def strength(pcm48: bytes, frequency: float) -> float:
    """How much of `frequency` there is in the audio (the magnitude of its DFT bin,
    normalised by length): a tone's own frequency stands far above any other."""
    samples = np.frombuffer(pcm48, dtype=np.int16).astype(np.float64)
    if not len(samples):
        return 0.0
    phase = np.exp(-2j * math.pi * frequency * np.arange(len(samples)) / 48000)
    return float(abs(np.dot(samples, phase)) / len(samples))


def transcribe(model_path: Path, pcm48: bytes) -> str:
    from vosk import KaldiRecognizer, Model

    recognizer = KaldiRecognizer(Model(str(model_path)), 16000)
    recognizer.AcceptWaveform(resampled(pcm48, 48000, 16000))
    return str(json.loads(recognizer.FinalResult()).get("text", ""))
