"""Sound files: what they hold, whether they are whole, and their audio as 16 kHz mono PCM.

Decoding is PyAV's (FFmpeg): WAV, MP3, M4A/AAC, Ogg (Opus, Vorbis), WebM/Opus as browsers
record it, FLAC. Everything here blocks; async callers run it in a thread
(`probe_audio_async`, or `anyio.to_thread` around the PCM iterator's `next`).

Is the file whole? FFmpeg plays a cut-off file without complaint, so `probe_audio` looks
at what each container says about its own length:
- WAV: the data chunk's size in the header against the bytes really there;
- Ogg: the last page must be complete and carry the end-of-stream flag;
- Matroska/WebM: no element may run past the end of the file (browsers write their
  recordings with unknown sizes and no duration, so this is the only sign they give);
- MP4/M4A: no top-level box may run past the end of the file;
- MP3 with a VBR header (Xing/Info/VBRI, which LAME always writes), MP4/M4A, Matroska with
  a duration, FLAC: the length the header declares against the end of the last packet.
  (For MP3 without such a header and raw AAC, FFmpeg guesses the length from the bitrate,
  so there is nothing to compare with.)
It also decodes the first and the last second, which fails on data that is not sound.
"""

from __future__ import annotations

import collections
import logging
import mmap
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import av

log = logging.getLogger(__name__)

PCM_RATE = 16000  # what the Vosk models take
PCM_BYTES_PER_SECOND = PCM_RATE * 2  # 16-bit mono
MAX_DURATION_SECONDS = 3 * 3600.0
# Real recordings have 8 to 192 kHz. A header declaring 1 Hz made a 20 KB file "a 10,000 s
# recording" (and the decoder would make 320 MB of PCM of it), so other rates are refused.
MIN_SAMPLE_RATE, MAX_SAMPLE_RATE = 8_000, 192_000
# How much of each end of the file `probe_audio` decodes.
CHECKED_SECONDS = 1.0
# The length a header declares may exceed the last packet's end by encoder padding; more
# than this means the end is missing.
DECLARED_SLACK_SECONDS, DECLARED_SLACK_SHARE = 0.1, 0.002
# A few damaged packets in a long recording are skipped; more mean the file is broken.
MAX_DECODE_ERRORS = 5
# The decoder may need a packet or two after a jump before it decodes cleanly (MP3 keeps
# part of each frame in the previous ones).
TAIL_WARMUP_PACKETS = 2

NO_SOUND = (
    "We found no sound in this file that we can play. If it is a recording, it may be "
    "incomplete: please upload the whole file."
)
UNREADABLE = (
    "We could not decode this sound file: it may be damaged, or in a format we do not know."
)
INCOMPLETE = (
    "This sound file seems to be cut off before its end (perhaps it was not copied or "
    "saved completely). Please upload the whole recording."
)
EMPTY = "This sound file is empty: it holds no audio."
TOO_LONG = (
    "This recording is longer than 3 hours. Please split it and upload parts of up to 3 hours each."
)


class AudioRejected(Exception):
    """A file we cannot take as sound; the message says why, for the person uploading."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class SampleRateRefused(AudioRejected):
    """The file declares a sample rate no recording has."""

    def __init__(self, rate: int) -> None:
        super().__init__(
            f"This sound file declares a sample rate of {rate:,} Hz, but recordings have "
            f"{MIN_SAMPLE_RATE:,} to {MAX_SAMPLE_RATE:,} Hz (8 to 192 kHz): it is damaged or "
            "was made wrongly. Export it again as an ordinary recording and upload that."
        )
        self.rate = rate


def check_sample_rate(rate: int | None) -> None:
    """Refuse a declared rate outside 8-192 kHz (0 or None: not known yet, so not judged)."""
    if rate and not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        raise SampleRateRefused(int(rate))


@dataclass(frozen=True)
class AudioInfo:
    duration_seconds: float
    codec: str  # "opus", "mp3", "aac", "pcm_s16le" ...
    sample_rate: int
    channels: int


# --------------------------------------------------------------------------- probing


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
        stream = _audio_stream(container)
        declared = _declared_duration(container, path)
        if declared is not None and declared > MAX_DURATION_SECONDS:
            raise AudioRejected(TOO_LONG)
        if _cut_short(container.format.name, path):
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


def _audio_stream(container: Any) -> Any:
    if not container.streams.audio:
        raise AudioRejected(NO_SOUND)
    stream = container.streams.audio[0]
    check_sample_rate(stream.codec_context.sample_rate)
    return stream


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
    if name == "mp3" and not _mp3_has_vbr_header(path):
        return None
    if name in ("aac", "wav"):  # FFmpeg derives both from the file's size
        return None
    return float(container.duration) / av.time_base


def _cut_short(format_name: str, path: Path) -> bool:
    if format_name == "wav":
        return _wav_cut_short(path)
    if format_name == "ogg":
        return _ogg_cut_short(path)
    if format_name.startswith("matroska"):
        return _matroska_cut_short(path)
    if format_name.startswith("mov"):
        return _mp4_cut_short(path)
    return False


def _mp3_has_vbr_header(path: Path) -> bool:
    with path.open("rb") as f:
        head = f.read(10)
        offset = 0
        if head[:3] == b"ID3" and len(head) == 10:
            size = (head[6] << 21) | (head[7] << 14) | (head[8] << 7) | head[9]
            offset = 10 + size + (10 if head[5] & 0x10 else 0)
        f.seek(offset)
        frame = f.read(200)
    return b"Xing" in frame[:64] or b"Info" in frame[:64] or frame[36:40] == b"VBRI"


def _wav_cut_short(path: Path) -> bool:
    """The data chunk's declared size runs past the end of the file. A size of 0 or
    0xFFFFFFFF is what streaming writers leave when they cannot go back: not checked."""
    file_size = path.stat().st_size
    with path.open("rb") as f:
        riff = f.read(12)
        if len(riff) < 12 or riff[8:12] != b"WAVE":
            return False
        rf64_data_size: int | None = None
        position = 12
        while True:
            f.seek(position)
            header = f.read(8)
            if len(header) < 8:
                return False  # no data chunk at all: FFmpeg has already refused such a file
            chunk_id, size = header[:4], struct.unpack("<I", header[4:])[0]
            if chunk_id == b"ds64" and riff[:4] == b"RF64":
                body = f.read(16)
                if len(body) == 16:
                    rf64_data_size = struct.unpack("<Q", body[8:16])[0]
            if chunk_id == b"data":
                if size == 0xFFFFFFFF and rf64_data_size is not None:
                    size = rf64_data_size
                if size in (0, 0xFFFFFFFF):
                    return False
                return position + 8 + size > file_size
            position += 8 + size + (size & 1)


def _mp4_cut_short(path: Path) -> bool:
    """A top-level box (the sound is in `mdat`) runs past the end of the file."""
    file_size = path.stat().st_size
    with path.open("rb") as f:
        position = 0
        while position < file_size:
            f.seek(position)
            header = f.read(16)
            if len(header) < 8:
                return True
            size = struct.unpack(">I", header[:4])[0]
            if size == 1:
                if len(header) < 16:
                    return True
                size = struct.unpack(">Q", header[8:16])[0]
            elif size == 0:  # the last box, to the end of the file
                return False
            if size < 8:
                return False  # not a box: no verdict
            position += size
    return position > file_size


OGG_MAX_PAGE = 27 + 255 + 255 * 255


def _ogg_cut_short(path: Path) -> bool:
    """The file must end with a complete page that carries the end-of-stream flag."""
    file_size = path.stat().st_size
    with path.open("rb") as f:
        f.seek(max(0, file_size - OGG_MAX_PAGE))
        data = f.read()
    end = len(data)
    position = end
    while (position := data.rfind(b"OggS", 0, position)) >= 0:
        if position + 27 <= end and data[position + 4] == 0:
            segments = data[position + 26]
            table_end = position + 27 + segments
            if table_end <= end and table_end + sum(data[position + 27 : table_end]) == end:
                return not data[position + 5] & 0x04
    return True


def _ebml_number(buf: Any, position: int, end: int, *, marker: bool) -> tuple[int, int] | None:
    """An EBML variable-length number at `position`: (value, length). None when it runs
    past `end`; ValueError when it is not a valid number."""
    if position >= end:
        return None
    first = buf[position]
    if first == 0:
        raise ValueError("not an EBML number")
    length = 9 - first.bit_length()
    if position + length > end:
        return None
    value = int.from_bytes(buf[position : position + length], "big")
    if not marker:
        value &= (1 << (7 * length)) - 1
    return value, length


def _matroska_cut_short(path: Path) -> bool:
    """Walk the elements in file order: one of known size that runs past the end of the
    file, or a header cut in two, means the file was cut. Elements of unknown size (the
    segment and clusters of a live recording) are walked into."""
    size = path.stat().st_size
    if size == 0:
        return True
    with path.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
        position = 0
        try:
            while position < size:
                ident = _ebml_number(buf, position, size, marker=True)
                if ident is None:
                    return True
                length = _ebml_number(buf, position + ident[1], size, marker=False)
                if length is None:
                    return True
                value, width = length
                data = position + ident[1] + width
                if value == (1 << (7 * width)) - 1:
                    position = data  # unknown size: its children follow
                elif data + value > size:
                    return True
                else:
                    position = data + value
        except ValueError:
            return False  # not EBML where we looked (junk FFmpeg skips): no verdict
    return False


# --------------------------------------------------------------------------- decoding


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
        stream = _audio_stream(container)
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
