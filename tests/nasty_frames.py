"""Hostile input for the live protocol's fuzz tests (tests/realtime/test_live_fuzz.py): text frames
of every bad shape, and a WebSocket client that writes raw frames (invalid UTF-8, binary,
broken fragments, reserved bits) that ordinary clients refuse to send."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import random
import struct
from typing import Any

# Values that are wrong for some field, or for every field.
WRONG_VALUES: list[Any] = [
    None,
    True,
    False,
    0,
    -1,
    2**53,
    2**63,
    -(2**63),
    1.5,
    1e308,
    "",
    " ",
    "x" * 3000,
    "<script>alert(1)</script>",
    "\u202eevil",
    "\x00\x1b[31m",
    "🙂" * 200,
    [],
    [None],
    {},
    {"a": {"b": [1, {"c": []}]}},
]
# Raw JSON spellings that json.dumps would never write.
RAW_VALUES = [
    "NaN",
    "Infinity",
    "-Infinity",
    "1e400",
    "-1e400",
    "1" * 500,
    "9" * 4000,
    "-0",
    "1.0e-400",
    '"\\ud800"',
    '"\\udfff\\ud800"',
    '"\\u0000"',
    "[" * 9 + "]" * 9,
]


def deep(depth: int, open_: str = "[", close: str = "]") -> str:
    return open_ * depth + close * depth


def deep_objects(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


LIVE_KINDS: dict[str, dict[str, Any]] = {
    "hello": {"type": "hello", "cursors": {"s1:plenary": None}},
    "ping": {"type": "ping", "n": 1},
}


def shapes() -> list[str | bytes]:
    """Frames with bad shapes: nesting, size, numbers, keys, text; not JSON at all."""
    out: list[str | bytes] = [
        deep(9),
        deep(50),
        deep(1000),
        deep(4000),  # within 8 KB: Python's json would raise RecursionError here
        deep(3000, "{", "}"),
        deep_objects(2000),
        '{"type":"ping","x":' + deep(3000) + "}",
        deep(100_000),  # too big
        '{"type":"ping","pad":"' + "y" * 9000 + '"}',  # too big
        '{"type":"ping","n":' + "9" * 5000 + "}",
        '{"type":"ping","type":"chat.send"}',
        '{"type":"hello","cursors":{},"cursors":{"s1:plenary":1}}',
        '{"type":"hello","cursors":{"s1:plenary":1,"s1:plenary":2}}',
        '{"type":"chat.send","text":"\\ud800","channel":"s1:plenary","client_id":"c"}',
        '{"type":"\\udc00"}',
        '{"\\ud800":1,"type":"ping"}',
        "",
        " ",
        "null",
        "[]",
        '"ping"',
        "{",
        '{"type":"ping"',
        '{"type":"ping"}garbage',
        '\ufeff{"type":"ping"}',
        "\x00",
        '{"type":"ping"}\x00',
        "this is not json",
        '{"type":' + "[" * 20 + "]" * 20 + "}",
        '{"type":"hello","cursors":' + json.dumps({f"c{i}": i for i in range(40)}) + "}",
        '{"type":"hello","cursors":{"' + "c" * 200 + '":1}}',
        '{"type":"hello","cursors":{"s1:plenary":-5}}',
        '{"type":"hello","cursors":{"s1:plenary":9007199254740993}}',
        '{"type":"hello","cursors":{"s1:plenary":"1"}}',
        '{"type":"hello","cursors":[1,2]}',
        '{"type":"chat.send","channel":"s1:plenary","text":"' + "z" * 2500 + '","client_id":"c"}',
        '{"type":"chat.send","channel":"s999:plenary","text":"hi","client_id":"c"}',
        '{"type":"chat.send","channel":"s1:plenary","text":"hi","client_id":"' + "k" * 80 + '"}',
        '{"type":"chat.send","channel":"s1:plenary","text":"hi","client_id":"a b\\u0000"}',
        '{"type":"chat.send","channel":"s1:plenary","text":"hi","client_id":"c","private":true}',
    ]
    for raw in RAW_VALUES:
        out.append('{"type":"ping","n":' + raw + "}")
        out.append('{"type":' + raw + "}")
    return out


def wrong_types() -> list[str]:
    """Each field of each frame the server accepts, given each wrong value in turn."""
    out = []
    for frame in LIVE_KINDS.values():
        for field in frame:
            for value in WRONG_VALUES:
                out.append(json.dumps({**frame, field: value}))
            for raw in RAW_VALUES[:8]:
                body = json.dumps({**frame, field: "__RAW__"})
                out.append(body.replace('"__RAW__"', raw))
    return out


def random_frames(rng: random.Random, count: int) -> list[str | bytes]:
    """Random text and bytes: unicode soup, JSON-ish fragments, random binary."""
    alphabet = '{}[]":,0123456789.eE+-ntrufalsNIy \\u"typehlocursdpig' + "\ud7ff\u2028\x7f🙂"
    out: list[str | bytes] = []
    for _ in range(count):
        kind = rng.random()
        if kind < 0.5:
            out.append("".join(rng.choice(alphabet) for _ in range(rng.randint(0, 300))))
        elif kind < 0.8:
            frame = dict(rng.choice(list(LIVE_KINDS.values())))
            field = rng.choice(list(frame))
            frame[field] = rng.choice(WRONG_VALUES)
            text = json.dumps(frame)
            cut = rng.randint(0, len(text))
            out.append(text[:cut] if rng.random() < 0.5 else text)
        else:
            out.append(rng.randbytes(rng.randint(0, 200)))
    return out


def live_frames(seed: int = 17, random_count: int = 60) -> list[str | bytes]:
    rng = random.Random(seed)
    return [*shapes(), *wrong_types(), *random_frames(rng, random_count)]


# --------------------------------------------------------------------------- raw frames

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING = 0x0, 0x1, 0x2, 0x8, 0x9


def frame(
    opcode: int, payload: bytes, *, fin: bool = True, rsv: int = 0, mask: bool = True
) -> bytes:
    """One WebSocket frame as a client writes it (RFC 6455 5.2)."""
    head = bytes([(0x80 if fin else 0) | (rsv << 4) | opcode])
    length = len(payload)
    bit = 0x80 if mask else 0
    if length < 126:
        head += bytes([bit | length])
    elif length < 1 << 16:
        head += bytes([bit | 126]) + struct.pack("!H", length)
    else:
        head += bytes([bit | 127]) + struct.pack("!Q", length)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def text_frame(text: str) -> bytes:
    return frame(OP_TEXT, text.encode())


# Sequences of raw frames that break the protocol; each after a valid hello.
BROKEN_SEQUENCES: dict[str, list[bytes]] = {
    "invalid UTF-8": [frame(OP_TEXT, b'{"type":"ping","n":"\xff\xfe"}')],
    "overlong UTF-8": [frame(OP_TEXT, b'{"type":"\xc0\xaf"}')],
    "lone surrogate in UTF-8": [frame(OP_TEXT, b'{"type":"\xed\xa0\x80"}')],
    "binary on a text socket": [frame(OP_BINARY, b'{"type":"ping"}')],
    "continuation without a start": [frame(OP_CONT, b'{"type":"ping"}')],
    "a new message inside a fragmented one": [
        frame(OP_TEXT, b'{"type":', fin=False),
        frame(OP_TEXT, b'"ping"}'),
    ],
    "a fragmented control frame": [frame(OP_PING, b"x", fin=False)],
    "reserved bits": [frame(OP_TEXT, b'{"type":"ping"}', rsv=0b111)],
    "an unmasked frame": [frame(OP_TEXT, b'{"type":"ping"}', mask=False)],
    "a control frame too long": [frame(OP_PING, b"p" * 200)],
    "a close with a bad code": [frame(OP_CLOSE, struct.pack("!H", 999) + b"bye")],
    "a close with invalid UTF-8": [frame(OP_CLOSE, struct.pack("!H", 1000) + b"\xff")],
    "fragments adding up to too much": [
        *(frame(OP_TEXT if i == 0 else OP_CONT, b"[" * 4000, fin=False) for i in range(4)),
        frame(OP_CONT, b"]"),
    ],
    "fragments of a deep array": [
        frame(OP_TEXT, b"[" * 2000, fin=False),
        frame(OP_CONT, b"[" * 2000 + b"]" * 2000, fin=False),
        frame(OP_CONT, b"]" * 2000),
    ],
    "a valid fragmented ping": [
        frame(OP_TEXT, b'{"type":', fin=False),
        frame(OP_PING, b"keepalive"),
        frame(OP_CONT, b'"ping","n":5}'),
    ],
    "a frame that claims 2**62 bytes": [b"\x81\xff" + struct.pack("!Q", 1 << 62) + b"abcd"],
}


class RawWebSocket:
    """A WebSocket client on a plain TCP connection, writing whatever bytes it is given."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, host: str, port: int, path: str, cookie: str) -> RawWebSocket:
        reader, writer = await asyncio.open_connection(host, port)
        key = base64.b64encode(os.urandom(16)).decode()
        request = (
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            f"Sec-WebSocket-Version: 13\r\nCookie: {cookie}\r\n\r\n"
        )
        writer.write(request.encode())
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        assert head.startswith(b"HTTP/1.1 101"), head[:200]
        return cls(reader, writer)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def read_frame(self) -> tuple[int, bytes]:
        first, second = await self.reader.readexactly(2)
        length = second & 0x7F
        if length == 126:
            (length,) = struct.unpack("!H", await self.reader.readexactly(2))
        elif length == 127:
            (length,) = struct.unpack("!Q", await self.reader.readexactly(8))
        return first & 0x0F, await self.reader.readexactly(length)

    async def until_closed(self, timeout: float = 10.0) -> tuple[int | None, list[str]]:
        """Read until the server's close frame (its code) or the end of the connection
        (None); also returns the text messages that came before."""
        texts: list[str] = []
        try:
            async with asyncio.timeout(timeout):
                while True:
                    opcode, payload = await self.read_frame()
                    if opcode == OP_TEXT:
                        texts.append(payload.decode())
                    elif opcode == OP_CLOSE:
                        code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
                        return code, texts
        except (asyncio.IncompleteReadError, ConnectionError):
            return None, texts
        finally:
            self.writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await self.writer.wait_closed()
