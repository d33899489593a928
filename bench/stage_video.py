"""One video tile for bench/stage.py: real VP8 frames from a moving synthetic picture, sent
in real time as the page's VideoEncoder would send them, to the app's live WebSocket or to a
bare `websockets` relay; and what the viewers received, analysed.

The frames: libvpx (PyAV) at 320x240, 15 frames/s, about 200 kbit/s, a keyframe every 2 s
and whenever the server asks for one (`{"t":"keyframe"}`), encoded as they are sent (no
look-ahead, as WebCodecs' realtime mode). Each goes as one media packet (realtime/media.py's
13-byte header, kind 2) whose payload is flags:u8 (bit 0 keyframe) width:u16 height:u16 and
the VP8 frame (the stage contract).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import signal
import struct
import time
import urllib.parse
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from bench.realtime import percentile, raise_fd_limit, run_loop
from bench.voice import HEADER, clock_ms_between, unpack

KIND_VIDEO = 2
WIDTH, HEIGHT, FPS = 320, 240, 15
BIT_RATE = 200_000
KEYFRAME_EVERY = 2 * FPS
PICTURES = 4 * FPS  # a 4-second loop of pictures, made once
VIDEO_INFO = struct.Struct(">BHH")  # flags, width, height


class Camera:
    """The moving picture and its live VP8 encoder."""

    def __init__(self) -> None:
        import av
        import numpy as np

        ctx = av.CodecContext.create("libvpx", "w")
        ctx.width, ctx.height, ctx.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        ctx.time_base, ctx.framerate = Fraction(1, FPS), Fraction(FPS)
        ctx.bit_rate, ctx.gop_size = BIT_RATE, KEYFRAME_EVERY
        # Realtime, no frames held back, constant bit rate: what a browser's encoder does.
        ctx.options = {
            "deadline": "realtime",
            "cpu-used": "8",
            "lag-in-frames": "0",
            "minrate": str(BIT_RATE),
            "maxrate": str(BIT_RATE),
        }
        self.ctx = ctx
        yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH]
        rng = np.random.default_rng(1)
        self.pictures = []
        for i in range(PICTURES):
            t = i / FPS
            img = np.empty((HEIGHT, WIDTH, 3), np.uint8)
            img[..., 0] = (xx + 40 * np.sin(t)) % 256
            img[..., 1] = (yy + 60 * t) % 256
            img[..., 2] = 128 + 60 * np.sin(xx / 17 + 3 * t)
            for hand in range(2):  # two "hands" moving over the picture
                cx = WIDTH / 2 + 90 * np.sin(1.7 * t + hand * 2.1)
                cy = HEIGHT / 2 + 60 * np.cos(2.3 * t + hand)
                img[(xx - cx) ** 2 + (yy - cy) ** 2 < 900] = (230, 190 - 80 * hand, 150)
            img += rng.integers(0, 12, img.shape, dtype=np.uint8)
            frame = av.VideoFrame.from_ndarray(img, format="rgb24").reformat(format="yuv420p")
            self.pictures.append(frame)
        self.count = 0

    def next(self, keyframe: bool) -> tuple[bytes, bool]:
        """The next frame's payload (the contract's flags, width, height and VP8 bytes)."""
        import av

        picture = self.pictures[self.count % PICTURES]
        picture.pts = self.count
        kinds = av.video.frame.PictureType
        picture.pict_type = kinds.I if keyframe else kinds.NONE
        self.count += 1
        data, key = b"", False
        for packet in self.ctx.encode(picture):
            data += bytes(packet)
            key = key or packet.is_keyframe
        return VIDEO_INFO.pack(1 if key else 0, WIDTH, HEIGHT) + data, key


@dataclass
class Sent:
    """What the tile sent: each frame's send time and size, and what the server said."""

    # Each frame's payload (as the relay passes it on) -> when it was sent (CLOCK_MONOTONIC
    # ns). Frames are told apart by their bytes: the relay numbers them itself.
    sent_ns: dict[bytes, int] = field(default_factory=dict)
    keyframes_ns: list[int] = field(default_factory=list)
    requests_ns: list[int] = field(default_factory=list)  # the server asked for a keyframe
    messages: dict[str, int] = field(default_factory=dict)
    late_max_ms: float = 0.0
    skipped: int = 0  # frames this process got to too late to send (the machine was busy)
    error: str = ""


class Tile:
    """The interpreter's page: sends the camera's frames on a WebSocket in real time."""

    def __init__(self, url: str, cookie: str | None, hello: dict[str, Any] | None) -> None:
        self.url, self.cookie, self.hello = url, cookie, hello
        self.camera = Camera()
        self.sent = Sent()
        self.ws: Any = None
        self.reader: asyncio.Task[None] | None = None
        self.want_key = True
        self.closing = False

    async def connect(self) -> None:
        from websockets.asyncio.client import connect

        headers = {"Cookie": f"rt_session={self.cookie}"} if self.cookie else {}
        self.ws = await connect(
            self.url,
            additional_headers=headers,
            open_timeout=60,
            ping_interval=None,
            close_timeout=2,
            proxy=None,
            compression=None,
        )
        if self.hello is not None:
            await self.ws.send(json.dumps(self.hello))
        self.reader = asyncio.create_task(self.read())

    async def read(self) -> None:
        messages: dict[str, int] = self.sent.messages
        with contextlib.suppress(Exception):
            async for raw in self.ws:
                if isinstance(raw, bytes):
                    messages["binary"] = messages.get("binary", 0) + 1
                    continue
                message = json.loads(raw)
                kind = str(message.get("t"))
                if kind == "error":
                    kind = f"error {message.get('code')}: {str(message.get('message'))[:80]}"
                messages[kind] = messages.get(kind, 0) + 1
                if message.get("t") == "keyframe":
                    self.sent.requests_ns.append(time.monotonic_ns())
                    self.want_key = True
        if self.ws.close_code is not None and not self.closing:
            self.sent.error = f"closed {self.ws.close_code} {self.ws.close_reason}"

    async def send(self, start_ns: int, frames: int) -> None:
        """`frames` frames, the n-th captured at start + n / FPS (CLOCK_MONOTONIC), then
        encoded (a keyframe if one was asked for since the last) and sent. A frame whose
        time has passed by more than a frame's length when this process gets to it is
        skipped, as a camera drops the frames nobody took (rather than a burst to catch up,
        which the server's rate limit would cut)."""
        loop = asyncio.get_running_loop()
        period = 1_000_000_000 // FPS
        for n in range(frames):
            due = start_ns + n * period
            await asyncio.sleep(max(0.0, (due - time.monotonic_ns()) / 1e9))
            if time.monotonic_ns() - due > period:
                self.camera.count += 1
                self.sent.skipped += 1
                continue
            key_wanted, self.want_key = self.want_key, False
            payload, key = await loop.run_in_executor(None, self.camera.next, key_wanted)
            packet = HEADER.pack(KIND_VIDEO, 0, n & 0xFFFF, 0, len(payload)) + payload
            now = time.monotonic_ns()
            try:
                await self.ws.send(packet)
            except Exception as exc:  # noqa: BLE001 - reported with the figures
                self.sent.error = self.sent.error or f"{type(exc).__name__}: {exc}"
                return
            self.sent.sent_ns[payload] = now
            if key:
                self.sent.keyframes_ns.append(now)
            self.sent.late_max_ms = max(self.sent.late_max_ms, (now - due) / 1e6)

    async def close(self) -> None:
        self.closing = True
        if self.ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.ws.close(), 3)
        if self.reader is not None:
            self.reader.cancel()


async def first_picture(url: str, cookie: str | None, hello: dict[str, Any]) -> float:
    """A viewer arriving while the tile sends: ms from its hello to the first keyframe of
    the tile read (what it can draw first); inf if none comes within 5 s."""
    from websockets.asyncio.client import connect

    from bench.captions import connection_class

    headers = {"Cookie": f"rt_session={cookie}"} if cookie else {}
    ws: Any = await connect(
        url,
        additional_headers=headers,
        open_timeout=30,
        ping_interval=None,
        close_timeout=2,
        proxy=None,
        create_connection=connection_class(),
    )
    try:
        sent = time.monotonic_ns()
        await ws.send(json.dumps(hello))
        deadline = sent + 5_000_000_000
        while (left := deadline - time.monotonic_ns()) > 0:
            raw = await asyncio.wait_for(ws.recv(), left / 1e9)
            if not isinstance(raw, bytes):
                continue
            for kind, _source, _seq, _ts, payload in unpack(raw):
                if kind == KIND_VIDEO and payload and payload[0] & 1:
                    return (ws.arrived_ns - sent) / 1e6
    except TimeoutError:
        pass
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(ws.close(), 3)
    return math.inf


# --------------------------------------------------------------------------- bare relay


def serve_bare(port: int) -> None:
    """The baseline: every media packet the sender (`/video?user=N`) sends, with its header's
    source and time stamped, to every viewer (`/ws`, once it has said hello). No database,
    no authorization, no limits, no per-viewer queue, no keyframe requests."""
    from websockets.asyncio.server import broadcast, serve

    viewers: set[Any] = set()

    async def handler(ws: Any) -> None:
        path, _, query = ws.request.path.partition("?")
        if path == "/ws":
            await ws.recv()  # hello
            viewers.add(ws)
            try:
                await ws.send('{"t":"hello","transport":"websocket"}')
                await ws.wait_closed()
            finally:
                viewers.discard(ws)
            return
        user = int(urllib.parse.parse_qs(query)["user"][0])
        async for data in ws:
            if not isinstance(data, bytes):
                continue
            now = int(time.monotonic() * 1000) & 0xFFFFFFFF
            for kind, _source, seq, _ts, payload in unpack(data):
                broadcast(viewers, HEADER.pack(kind, user, seq, now, len(payload)) + payload)

    async def main() -> None:
        stop = asyncio.get_running_loop().create_future()
        for sig in (signal.SIGINT, signal.SIGTERM):
            asyncio.get_running_loop().add_signal_handler(sig, stop.set_result, None)
        async with serve(handler, "127.0.0.1", port, max_size=2**17, compression=None):
            await stop

    raise_fd_limit()
    run_loop(main())


# --------------------------------------------------------------------------- figures


def keyframe_delays(sent: Sent) -> list[float]:
    """For each keyframe request the tile heard: ms until it sent a keyframe."""
    out = []
    for asked in sent.requests_ns:
        after = [k for k in sent.keyframes_ns if k >= asked]
        out.append((min(after) - asked) / 1e6 if after else math.inf)
    return out


def analyse(
    records: dict[int, dict[str, Any]], sent: Sent, source: int, window: tuple[int, int]
) -> dict[str, Any]:
    """Per viewer: kbit/s read in the window, and each of the tile's frames sent in the
    window: read time minus send time (a frame never read is not timed: it counts in the
    delivered share, as a viewer that cannot keep up is meant to get fewer frames)."""
    w0, w1 = window
    seconds = (w1 - w0) / 1e9
    expected = {payload for payload, at in sent.sent_ns.items() if w0 <= at <= w1}
    latencies, relay_to_viewer, kbps, delivered = [], [], [], []
    strangers = malformed = 0
    for record in records.values():
        kbps.append(record["bytes"] * 8 / 1000 / seconds)
        got = set()
        for at, data in record["frames"]:
            try:
                packets = unpack(data)
            except ValueError:
                malformed += 1
                continue
            for kind, src, _seq, ts, payload in packets:
                if kind != KIND_VIDEO or src != source:
                    strangers += 1
                elif payload in expected and payload not in got:
                    got.add(payload)
                    latencies.append((at - sent.sent_ns[payload]) / 1e6)
                    relay_to_viewer.append(clock_ms_between(ts, (at // 1_000_000) & 0xFFFFFFFF))
        delivered.append(len(got) / len(expected) if expected else math.nan)
    latencies.sort()
    relay_to_viewer.sort()
    kbps.sort()
    return {
        "viewers": len(records),
        "open": sum(1 for r in records.values() if r["open"]),
        "receiving": sum(1 for share in delivered if share > 0),
        "errors": sorted({r["error"] for r in records.values() if r["error"]}),
        "frames_sent": len(expected),
        "sent_kbps": sum(len(p) + HEADER.size for p in expected) * 8 / 1000 / seconds,
        "p50_ms": percentile(latencies, 0.5),
        "p95_ms": percentile(latencies, 0.95),
        "max_ms": latencies[-1] if latencies else math.nan,
        "relay_p95_ms": percentile(relay_to_viewer, 0.95),
        "kbps_p50": percentile(kbps, 0.5),
        "kbps_p95": percentile(kbps, 0.95),
        "delivered_min": min(delivered, default=math.nan),
        "delivered_mean": sum(delivered) / len(delivered) if delivered else math.nan,
        "strangers": strangers,
        "malformed": malformed,
        "keyframes": len(sent.keyframes_ns),
        "keyframe_requests": len(sent.requests_ns),
        "keyframe_after_request_ms": keyframe_delays(sent),
        "tile_messages": dict(sent.messages),
        "tile_error": sent.error,
        "send_late_max_ms": sent.late_max_ms,
        "skipped": sent.skipped,
    }
