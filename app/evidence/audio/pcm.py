"""A sound file's audio as 16 kHz mono 16-bit PCM, what the Vosk models take."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av

from app.evidence.audio.limits import (
    MAX_DECODE_ERRORS,
    UNREADABLE,
    AudioRejected,
    audio_stream,
    check_sample_rate,
)

PCM_RATE = 16000  # what the Vosk models take
PCM_BYTES_PER_SECOND = PCM_RATE * 2  # 16-bit mono


def iter_pcm16k(path: Path | str, chunk_seconds: float = 1.0) -> Iterator[bytes]:
    """The file's first audio stream as 16 kHz mono 16-bit little-endian PCM, in chunks of
    `chunk_seconds` (the last one shorter). Raises AudioRejected when the file cannot be
    decoded. Blocks: iterate it in a worker thread."""
    chunk_bytes = max(2, int(PCM_RATE * chunk_seconds) * 2)
    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError) as exc:
        raise AudioRejected(UNREADABLE) from exc
    with container:
        stream = audio_stream(container)
        pcm = _Pcm16k()
        errors = 0
        try:
            for packet in container.demux(stream):
                try:
                    frames = stream.codec_context.decode(packet)
                except av.FFmpegError:
                    errors += 1
                    if errors > MAX_DECODE_ERRORS:
                        raise AudioRejected(UNREADABLE) from None
                    continue
                for frame in frames:
                    pcm.add(frame)
                yield from pcm.take(chunk_bytes)
            try:
                for frame in stream.codec_context.decode(None):
                    pcm.add(frame)
            except av.FFmpegError:
                pass  # the decoder's last words: nothing worth failing for
        except av.FFmpegError as exc:  # reading the container failed half-way
            raise AudioRejected(UNREADABLE) from exc
        pcm.flush()
        yield from pcm.take(chunk_bytes)
        if pcm.buffer:
            yield bytes(pcm.buffer)


class _Pcm16k:
    """Frames in, 16 kHz mono s16 bytes out. A new resampler whenever the input's shape
    changes (some streams change their channel layout half-way)."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self._resampler: Any = None
        self._shape: tuple[str, str, int] | None = None

    def add(self, frame: Any) -> None:
        check_sample_rate(frame.sample_rate)
        shape = (frame.format.name, frame.layout.name, frame.sample_rate)
        if shape != self._shape:
            self.flush()
            self._resampler = av.AudioResampler(format="s16", layout="mono", rate=PCM_RATE)
            self._shape = shape
        frame.pts = None  # gaps and jumps in the timing do not matter here
        self._append(self._resampler.resample(frame))

    def flush(self) -> None:
        if self._resampler is not None:
            self._append(self._resampler.resample(None))
            self._resampler = None
            self._shape = None

    def _append(self, frames: list[Any]) -> None:
        for out in frames:
            self.buffer += bytes(out.planes[0])[: out.samples * 2]

    def take(self, size: int) -> Iterator[bytes]:
        while len(self.buffer) >= size:
            chunk = bytes(self.buffer[:size])
            del self.buffer[:size]
            yield chunk
