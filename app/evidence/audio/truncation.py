"""Is the file whole? FFmpeg plays a cut-off file without complaint, so we look at what
each container says about its own length:
- WAV: the data chunk's size in the header against the bytes really there;
- Ogg: the last page must be complete and carry the end-of-stream flag;
- Matroska/WebM: no element may run past the end of the file (browsers write their
  recordings with unknown sizes and no duration, so this is the only sign they give);
- MP4/M4A: no top-level box may run past the end of the file.

`mp3_has_vbr_header` tells whether an MP3's declared length is real (app/evidence/audio/
probe.py compares it with the packets') or FFmpeg's guess from the bitrate."""

from __future__ import annotations

import mmap
import struct
from pathlib import Path
from typing import Any

OGG_MAX_PAGE = 27 + 255 + 255 * 255


def cut_short(format_name: str, path: Path) -> bool:
    """The container says it is longer than the file (False where it cannot tell)."""
    if format_name == "wav":
        return _wav_cut_short(path)
    if format_name == "ogg":
        return _ogg_cut_short(path)
    if format_name.startswith("matroska"):
        return _matroska_cut_short(path)
    if format_name.startswith("mov"):
        return _mp4_cut_short(path)
    return False


def mp3_has_vbr_header(path: Path) -> bool:
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
