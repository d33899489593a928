"""Opus encoding for audio made on the server (a room's mix, or a speaker whose browser
sent raw PCM), with libopus through PyAV: 48 kHz mono, 20 ms a packet."""

from __future__ import annotations

from typing import Any

import av
import numpy as np

RATE = 48000
FRAME_SAMPLES = 960  # 20 ms at 48 kHz
FRAME_BYTES = FRAME_SAMPLES * 2
SILENCE = bytes(FRAME_BYTES)


class OpusEncoder:
    """One continuous Opus stream: 20 ms frames of 16-bit mono 48 kHz PCM in, packets out."""

    def __init__(self, bitrate: int = 24000) -> None:
        codec: Any = av.CodecContext.create("libopus", "w")
        codec.sample_rate = RATE
        codec.layout = "mono"
        codec.format = "s16"
        codec.bit_rate = bitrate
        codec.options = {"application": "voip", "frame_duration": "20"}
        codec.open()
        self._codec = codec
        self._pts = 0

    def encode(self, pcm: np.ndarray) -> list[bytes]:
        """Packets for one 20 ms frame (int16 samples); usually exactly one."""
        frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = RATE
        frame.pts = self._pts
        self._pts += pcm.shape[-1]
        return [bytes(packet) for packet in self._codec.encode(frame)]


class Framer:
    """Raw 16-bit mono PCM at any rate from 8 to 48 kHz, as 20 ms frames at 48 kHz."""

    def __init__(self, sample_rate: int) -> None:
        self.sample_rate = sample_rate
        self._resampler = (
            None
            if sample_rate == RATE
            else av.AudioResampler(format="s16", layout="mono", rate=RATE)
        )
        self._buffer = bytearray()
        self._pts = 0

    def frames(self, pcm: bytes) -> list[bytes]:
        if self._resampler is None:
            self._buffer += pcm
        else:
            samples = np.frombuffer(pcm, dtype=np.int16)
            frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
            frame.sample_rate = self.sample_rate
            frame.pts = self._pts
            self._pts += len(samples)
            for out in self._resampler.resample(frame):
                self._buffer += bytes(out.planes[0])[: out.samples * 2]
        whole = len(self._buffer) - len(self._buffer) % FRAME_BYTES
        chunk, self._buffer = bytes(self._buffer[:whole]), self._buffer[whole:]
        return [chunk[i : i + FRAME_BYTES] for i in range(0, whole, FRAME_BYTES)]
