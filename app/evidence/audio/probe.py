"""What a sound file holds (length, codec, rate, channels), refusing what we cannot take:
no sound, undecodable, cut off, empty, a sample rate no recording has, or longer than
3 hours.

Besides what its container says (app/evidence/audio/truncation.py), the length a header
declares is compared with the end of the last packet, for MP3 with a VBR header (Xing/Info/
VBRI, which LAME always writes), MP4/M4A, Matroska with a duration and FLAC. (For MP3
without such a header and raw AAC, FFmpeg guesses the length from the bitrate, so there is
nothing to compare with.) The first and the last second are decoded too, which fails on
data that is not sound."""

from __future__ import annotations

import collections
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import av

from app.evidence.audio.limits import (
    EMPTY,
    INCOMPLETE,
    MAX_DECODE_ERRORS,
    MAX_DURATION_SECONDS,
    TOO_LONG,
    UNREADABLE,
    AudioRejected,
    audio_stream,
    check_sample_rate,
)
from app.evidence.audio.truncation import cut_short, mp3_has_vbr_header

log = logging.getLogger(__name__)

# How much of each end of the file `probe_audio` decodes.
CHECKED_SECONDS = 1.0
# The length a header declares may exceed the last packet's end by encoder padding; more
# than this means the end is missing.
DECLARED_SLACK_SECONDS, DECLARED_SLACK_SHARE = 0.1, 0.002
# The decoder may need a packet or two after a jump before it decodes cleanly (MP3 keeps
# part of each frame in the previous ones).
TAIL_WARMUP_PACKETS = 2


@dataclass(frozen=True)
class AudioInfo:
    duration_seconds: float
    codec: str  # "opus", "mp3", "aac", "pcm_s16le" ...
    sample_rate: int
    channels: int


def probe_audio(path: Path | str) -> AudioInfo:
    """What the file holds, or AudioRejected: no sound, undecodable, cut off, empty, a sample
    rate outside 8-192 kHz, or longer than 3 hours. Reads the whole file but decodes only
    its first and last second. Blocks: from async code use `probe_audio_async`."""
    path = Path(path)
    try:
        return _probe(path)
    except AudioRejected:
        raise
    except (av.FFmpegError, OSError, EOFError, ValueError, IndexError) as exc:
        log.info("sound file refused: %s", exc)
        raise AudioRejected(UNREADABLE) from exc


async def probe_audio_async(path: Path | str) -> AudioInfo:
    return await anyio.to_thread.run_sync(probe_audio, path)


def _probe(path: Path) -> AudioInfo:
    with av.open(str(path)) as container:
        stream = audio_stream(container)
        declared = _declared_duration(container, path)
        if declared is not None and declared > MAX_DURATION_SECONDS:
            raise AudioRejected(TOO_LONG)
        if cut_short(container.format.name, path):
            raise AudioRejected(INCOMPLETE)
        found = _demux(container, stream)
        duration = found.end - found.start
        if duration <= 0:
            raise AudioRejected(EMPTY)
        if duration > MAX_DURATION_SECONDS:
            raise AudioRejected(TOO_LONG)
        if declared is not None and duration < declared - max(
            DECLARED_SLACK_SECONDS, DECLARED_SLACK_SHARE * declared
        ):
            raise AudioRejected(INCOMPLETE)
        if found.head_samples == 0 or found.head_errors > MAX_DECODE_ERRORS:
            raise AudioRejected(UNREADABLE)
        _check_tail(stream.codec_context, found.tail)
    codec = stream.codec_context
    return AudioInfo(
        duration_seconds=round(duration, 3),
        codec=codec.codec.canonical_name,
        sample_rate=int(codec.sample_rate or 0),
        channels=int(codec.channels or 0),
    )


def _samples(frames: list[Any]) -> int:
    """How many samples the decoded frames hold; each frame's own rate is checked too (a
    stream may change its rate half-way)."""
    for frame in frames:
        check_sample_rate(frame.sample_rate)
    return sum(frame.samples for frame in frames)


@dataclass
class _Demuxed:
    start: float = 0.0  # the first packet's start, in seconds
    end: float = 0.0  # the last packet's end
    head_samples: int = 0  # decoded from the first second
    head_errors: int = 0
    tail: list[Any] = field(default_factory=list)  # the packets of the last second


def _demux(container: Any, stream: Any) -> _Demuxed:
    """Every packet's timing (cheap: nothing is decoded) and the first second decoded."""
    decoder = stream.codec_context
    found = _Demuxed()
    start: float | None = None
    tail: collections.deque[Any] = collections.deque()
    for packet in container.demux(stream):
        if packet.pts is None or packet.size == 0:
            continue
        at = float(packet.pts * packet.time_base)
        if start is None:
            start = found.start = at
        found.end = max(found.end, at + float((packet.duration or 0) * packet.time_base))
        if found.end - start > MAX_DURATION_SECONDS + 60:
            raise AudioRejected(TOO_LONG)
        if at - start < CHECKED_SECONDS:
            try:
                found.head_samples += _samples(decoder.decode(packet))
            except av.FFmpegError:
                found.head_errors += 1
        tail.append(packet)
        while float(tail[0].pts * tail[0].time_base) < at - CHECKED_SECONDS:
            tail.popleft()
    if start is None:
        raise AudioRejected(EMPTY)
    try:
        found.head_samples += _samples(decoder.decode(None))
    except av.FFmpegError:
        found.head_errors += 1
    found.tail = list(tail)
    return found


def _check_tail(decoder: Any, packets: list[Any]) -> None:
    """The last second must decode (after a packet or two to find its feet)."""
    decoder.flush_buffers()
    for index, packet in enumerate(packets):
        try:
            decoder.decode(packet)
        except av.FFmpegError as exc:
            if index >= TAIL_WARMUP_PACKETS or index == len(packets) - 1:
                raise AudioRejected(UNREADABLE) from exc
    try:
        decoder.decode(None)
    except av.FFmpegError as exc:
        raise AudioRejected(UNREADABLE) from exc


def _declared_duration(container: Any, path: Path) -> float | None:
    """The length the file's header declares, where that is a real declaration and not
    FFmpeg's guess from the bitrate."""
    name = container.format.name
    if container.duration is None or container.duration <= 0:
        return None
    if name == "mp3" and not mp3_has_vbr_header(path):
        return None
    if name in ("aac", "wav"):  # FFmpeg derives both from the file's size
        return None
    return float(container.duration) / av.time_base
