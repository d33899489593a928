"""Frames in the body of an ordinary POST, for sound when WebSockets are blocked (the
speaker's compatibility mode and the tech check's "hear yourself"): what would have been
WebSocket messages, back to back, each

    type:u8   length:u16 (big-endian)   data[length]

with type 0 a binary message (one Opus packet, or PCM) and type 1 a UTF-8 JSON text
message. A body is read whole (it is small: a few hundred milliseconds of sound), so a
malformed one is refused before any of it is used."""

from __future__ import annotations

import struct
from typing import NamedTuple

from starlette.requests import Request

BINARY = 0
TEXT = 1
HEADER = struct.Struct(">BH")
# One POST carries a few hundred milliseconds; 64 KB is seconds of Opus, or 2 s of 16 kHz PCM.
MAX_BODY_BYTES = 64 * 1024
# Opus packets of 20 ms for 2 seconds, and room to spare: more is not a live stream.
MAX_FRAMES = 400


class Frame(NamedTuple):
    type: int
    data: bytes


class FramingError(ValueError):
    """A body that is not a sequence of frames; the message says where and why."""


class BodyTooLarge(ValueError):
    def __init__(self, max_bytes: int) -> None:
        super().__init__(f"a request body may hold at most {max_bytes // 1024} KB")


async def read_body(request: Request, max_bytes: int = MAX_BODY_BYTES) -> bytes:
    """The whole body, read no further than `max_bytes` (BodyTooLarge past it)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise BodyTooLarge(max_bytes)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > max_bytes:
            raise BodyTooLarge(max_bytes)
    return bytes(body)


def pack(frames: list[Frame] | list[tuple[int, bytes]]) -> bytes:
    out = bytearray()
    for kind, data in frames:
        if kind not in (BINARY, TEXT):
            raise ValueError(f"frame type {kind} is neither 0 (binary) nor 1 (text)")
        if len(data) > 0xFFFF:
            raise ValueError(f"a frame holds at most 65,535 bytes, not {len(data):,}")
        out += HEADER.pack(kind, len(data)) + data
    return bytes(out)


def parse(body: bytes, *, max_frames: int = MAX_FRAMES) -> list[Frame]:
    """The frames of a body, or FramingError naming the first thing wrong with it."""
    frames: list[Frame] = []
    at = 0
    while at < len(body):
        number = len(frames) + 1
        if len(frames) >= max_frames:
            raise FramingError(f"a request holds at most {max_frames} frames")
        if len(body) - at < HEADER.size:
            raise FramingError(
                f"frame {number} is cut short: its 3-byte header (type, length) is incomplete"
            )
        kind, length = HEADER.unpack_from(body, at)
        if kind not in (BINARY, TEXT):
            raise FramingError(
                f"frame {number} has type {kind}: use 0 for a sound packet, 1 for a JSON message"
            )
        at += HEADER.size
        if len(body) - at < length:
            raise FramingError(
                f"frame {number} says it holds {length} bytes but only {len(body) - at} follow"
            )
        frames.append(Frame(kind, body[at : at + length]))
        at += length
    return frames
