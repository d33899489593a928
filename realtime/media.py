"""Media on a live connection: the packet format, and each listener's inbox.

A media packet is a 13-byte header and its payload (big-endian):

    kind:u8  source:u32  seq:u16  ts_ms:u32  length:u16  payload[length]

`kind` 1 is Opus audio (48 kHz mono, usually 20 ms), 2 a video frame (realtime/video.py).
`source` is the speaker whose packet was forwarded, or 0 for a mix made on the server
(several people talking at once). `seq`
counts one source's packets (wrapping at 65536), `ts_ms` is the server's clock when it
relayed the packet (wrapping), for measuring jitter only. Packets are self-delimiting, so
several go in one WebSocket frame (or one base64 text on the fallbacks, `{"t":"m","b":…}`).

Media is never stored or replayed. A listener's inbox keeps at most half a second of it and
drops the oldest beyond that: late audio is worse than lost audio. Each packet is tagged
with the room it came from, and is handed out only while that room is still one the
listener hears, so a listener who has just moved never gets a packet of the old room."""

from __future__ import annotations

import base64
import struct
import time
from collections import deque
from collections.abc import Callable
from typing import NamedTuple

KIND_AUDIO = 1
KIND_VIDEO = 2
HEADER = struct.Struct("!BIHIH")
MAX_PAYLOAD = 4000
# A video frame's payload (its own small header and one encoded frame): realtime/video.py.
MAX_VIDEO_PAYLOAD = 48_000
# At most this much audio waits for one listener (packets of 20 ms).
INBOX_PACKETS = 25


class Packet(NamedTuple):
    kind: int
    source: int
    seq: int
    ts_ms: int
    payload: bytes


class BadMedia(ValueError):
    """Bytes that are not a sequence of whole media packets."""


def pack(kind: int, source: int, seq: int, ts_ms: int, payload: bytes) -> bytes:
    limit = MAX_VIDEO_PAYLOAD if kind == KIND_VIDEO else MAX_PAYLOAD
    if len(payload) > limit:
        raise BadMedia(f"a media payload may have at most {limit} bytes")
    return HEADER.pack(kind, source, seq & 0xFFFF, ts_ms & 0xFFFFFFFF, len(payload)) + payload


def unpack(data: bytes) -> list[Packet]:
    """Every packet in `data`; raises BadMedia when it does not split into whole packets."""
    out: list[Packet] = []
    offset = 0
    while offset < len(data):
        if len(data) - offset < HEADER.size:
            raise BadMedia("a media packet was cut short in its header")
        kind, source, seq, ts_ms, length = HEADER.unpack_from(data, offset)
        offset += HEADER.size
        if len(data) - offset < length:
            raise BadMedia("a media packet was cut short in its payload")
        out.append(Packet(kind, source, seq, ts_ms, bytes(data[offset : offset + length])))
        offset += length
    return out


def as_text(data: bytes) -> str:
    """Media for a transport that carries text only (Server-Sent Events, long-polling)."""
    return '{"t":"m","b":"' + base64.b64encode(data).decode("ascii") + '"}'


class MediaInbox:
    """What waits for one listener: at most `size` packets, the oldest dropped first.

    `wake` is called with each packet; the sender it wakes notices once (cheaply) that
    something is waiting."""

    def __init__(
        self,
        *,
        member: str,
        size: int = INBOX_PACKETS,
        wake: Callable[[], None] | None = None,
    ) -> None:
        # Who listens (they never get their own voice), and the rooms they hear.
        self.member = member
        self.rooms: set[str] = set()
        self.size = size
        self._packets: deque[tuple[str, bytes, int]] = deque()
        self._count = 0
        self.wake = wake
        self.touched = time.monotonic()
        self.dropped = 0
        self.sent_bytes = 0

    def offer(self, room: str, packets: bytes, count: int = 1) -> None:
        """`count` packets (back to back) from `room`."""
        self._packets.append((room, packets, count))
        self._count += count
        while self._count > self.size and len(self._packets) > 1:
            _, _, dropped = self._packets.popleft()
            self._count -= dropped
            self.dropped += dropped
        if self.wake is not None:
            self.wake()

    def __bool__(self) -> bool:
        return bool(self._packets)

    def drain(self, rooms: set[str]) -> bytes:
        """Everything waiting from the rooms the listener still hears, as one frame."""
        out = b"".join(packets for room, packets, _ in self._packets if room in rooms)
        self._packets.clear()
        self._count = 0
        self.touched = time.monotonic()
        self.sent_bytes += len(out)
        return out
