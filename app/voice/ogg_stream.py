"""A room's mix as Ogg/Opus: 20 ms frames of 48 kHz 16-bit mono PCM in, a standard Ogg/Opus
byte stream out (libopus and libavformat's Ogg muxer, through PyAV).

The same writer makes a recording file (written to a file as it goes, so a crash loses at
most the last page) and the live `<audio>` stream for browsers without WebCodecs (written
to a `ChunkSink` that the response drains). Pages are flushed every PAGE_MS so a listener
or a partly written file is never more than that behind what was encoded."""

from __future__ import annotations

import os
from collections import deque
from typing import BinaryIO

import av
import numpy as np

SAMPLE_RATE = 48_000
FRAME_SAMPLES = 960  # 20 ms
FRAME_BYTES = FRAME_SAMPLES * 2
FRAME_MS = 20
# Speech in a room's mix: 24 kbit/s Opus is clear and about 11 MB an hour.
BIT_RATE = 24_000
# How often the muxer ends an Ogg page: the live stream's latency and a crash's worst loss.
PAGE_MS = 100


class FrameError(ValueError):
    """A frame that is not 20 ms of 48 kHz 16-bit mono PCM."""


class ChunkSink:
    """A write-only file for the muxer that keeps what it is given until drained."""

    def __init__(self) -> None:
        self._parts: deque[bytes] = deque()
        self.total = 0

    def write(self, data: bytes) -> int:
        self._parts.append(bytes(data))
        self.total += len(data)
        return len(data)

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def flush(self) -> None:
        return None

    def drain(self) -> bytes:
        """Everything written since the last drain."""
        out = b"".join(self._parts)
        self._parts.clear()
        return out


class OggOpusWriter:
    """Encodes PCM frames to Opus and writes them as Ogg pages to `out` (any object with
    `write`; not seeked). Not thread-safe: one thread at a time."""

    def __init__(self, out: BinaryIO | ChunkSink, *, bit_rate: int = BIT_RATE) -> None:
        self._container = av.open(
            out,
            mode="w",
            format="ogg",
            # page_duration is in microseconds; flush_packets hands each page to `out` at once.
            options={"page_duration": str(PAGE_MS * 1000)},
            container_options={"flush_packets": "1"},
            buffer_size=4096,
        )
        self._stream = self._container.add_stream("libopus", rate=SAMPLE_RATE, layout="mono")
        self._stream.bit_rate = bit_rate
        self.frames = 0
        self.closed = False

    @property
    def duration_ms(self) -> int:
        return self.frames * FRAME_MS

    def write(self, pcm: bytes) -> None:
        """One 20 ms frame (FRAME_BYTES of s16 little-endian mono at 48 kHz)."""
        if self.closed:
            raise ValueError("the writer is closed")
        if len(pcm) != FRAME_BYTES:
            raise FrameError(f"a frame is {FRAME_BYTES} bytes of PCM, not {len(pcm)}")
        samples = np.frombuffer(pcm, dtype="<i2").reshape(1, FRAME_SAMPLES)
        frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
        frame.sample_rate = SAMPLE_RATE
        frame.pts = self.frames * FRAME_SAMPLES
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        self.frames += 1

    def write_many(self, frames: list[bytes]) -> None:
        for pcm in frames:
            self.write(pcm)

    def close(self) -> None:
        """Flush the encoder and end the stream (the last page, marked end of stream)."""
        if self.closed:
            return
        self.closed = True
        try:
            for packet in self._stream.encode(None):
                self._container.mux(packet)
        finally:
            self._container.close()


class FrameBuffer:
    """Frames handed over by the router's tap (called every 20 ms, from whatever thread it
    runs on) until the encoder takes them; holds at most `max_frames`, dropping the oldest
    (a listener that falls behind skips ahead rather than drifting further from live)."""

    def __init__(self, max_frames: int) -> None:
        self._frames: deque[bytes] = deque(maxlen=max_frames)
        self.dropped = 0
        self.received = 0

    def push(self, pcm: bytes) -> None:
        if len(self._frames) == self._frames.maxlen:
            self.dropped += 1
        self._frames.append(pcm)
        self.received += 1

    def take(self) -> list[bytes]:
        out = []
        while self._frames:
            out.append(self._frames.popleft())
        return out


def ogg_duration_ms(path: str | os.PathLike[str]) -> int:
    """How long an Ogg/Opus file plays, from its packets (nothing decoded); a file cut
    short by a crash counts up to its last whole page."""
    total = 0.0
    with av.open(os.fspath(path)) as container:
        stream = container.streams.audio[0]
        for packet in container.demux(stream):
            if packet.duration and packet.time_base is not None:
                total += packet.duration * packet.time_base * 1000
    return int(total)
