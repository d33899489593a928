"""Sound files in the formats people upload, made from PCM with PyAV's encoders: WAV, MP3
(LAME), M4A and raw AAC, Ogg/Opus, WebM/Opus (as a file, and as a browser's MediaRecorder
writes it: unknown sizes, no duration, no index), Ogg/Vorbis, FLAC. Also used by
bench/evidence.py."""

from __future__ import annotations

import io
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av


@dataclass(frozen=True)
class Format:
    container: str
    codec: str
    rate: int
    suffix: str
    # Browser recordings are written as a stream (the recorder cannot go back to fill in
    # sizes); PyAV does the same when the output cannot seek.
    live: bool = False
    options: tuple[tuple[str, str], ...] = ()


FORMATS = {
    "wav": Format("wav", "pcm_s16le", 16000, ".wav"),
    "mp3": Format("mp3", "libmp3lame", 44100, ".mp3"),
    "m4a": Format("ipod", "aac", 44100, ".m4a"),
    "m4a-faststart": Format("ipod", "aac", 44100, ".m4a", options=(("movflags", "faststart"),)),
    "aac": Format("adts", "aac", 44100, ".aac"),
    "ogg": Format("ogg", "libopus", 48000, ".ogg"),
    "vorbis": Format("ogg", "libvorbis", 44100, ".ogg"),
    "webm": Format("webm", "libopus", 48000, ".webm"),
    "webm-browser": Format("webm", "libopus", 48000, ".webm", live=True),
    "flac": Format("flac", "flac", 16000, ".flac"),
}


class _Unseekable(io.RawIOBase):
    def __init__(self, target: Any) -> None:
        self._target = target

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        return int(self._target.write(data))

    def seekable(self) -> bool:
        return False


def encode(pcm: bytes, rate: int, path: Path, kind: str, *, channels: int = 1) -> Path:
    """Write 16-bit PCM (interleaved when `channels` is 2) at `rate` as `kind`."""
    fmt = FORMATS[kind]
    layout = "mono" if channels == 1 else "stereo"
    with path.open("wb") as file:
        target: Any = _Unseekable(file) if fmt.live else file
        with av.open(target, "w", format=fmt.container, options=dict(fmt.options)) as out:
            stream: Any = out.add_stream(fmt.codec, rate=fmt.rate, layout=layout)
            frame = av.AudioFrame(format="s16", layout=layout, samples=len(pcm) // (2 * channels))
            frame.sample_rate = rate
            frame.pts = 0
            frame.time_base = Fraction(1, rate)
            frame.planes[0].update(pcm)
            codec_format = stream.codec_context.format.name
            resampler = av.AudioResampler(format=codec_format, layout=layout, rate=fmt.rate)
            fifo = av.AudioFifo()
            for resampled in [*resampler.resample(frame), *resampler.resample(None)]:
                fifo.write(resampled)
            size = stream.codec_context.frame_size or 1024
            while (chunk := fifo.read(size)) is not None:
                out.mux(stream.encode(chunk))
            rest = fifo.read()
            if rest is not None:
                out.mux(stream.encode(rest))
            out.mux(stream.encode(None))
    return path


def cut(path: Path, keep: float | int, name: str | None = None) -> Path:
    """A copy of the file cut off after `keep` bytes (an int) or that share of them."""
    data = path.read_bytes()
    size = keep if isinstance(keep, int) else int(len(data) * keep)
    target = path.with_name(name or f"cut-{size}-{path.name}")
    target.write_bytes(data[:size])
    return target


def ogg_page_ends(data: bytes) -> list[int]:
    """Where each Ogg page ends, in order."""
    ends, position = [], 0
    while position + 27 <= len(data) and data[position : position + 4] == b"OggS":
        segments = data[position + 26]
        body = sum(data[position + 27 : position + 27 + segments])
        position += 27 + segments + body
        ends.append(position)
    return ends
