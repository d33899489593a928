"""Voice benchmark: simulated speakers send Opus tone bursts in real time, simulated
listeners in 10 breakout rooms of 8 receive and decode them; the same speakers and
listeners against a bare `websockets` relay in the same run.

    python bench/voice.py                # about 2.5 minutes on a quiet machine
    python bench/voice.py --quick        # shorter phases, about 1.5 minutes
    python bench/voice.py --help         # phase lengths, room count, --skip-bare ...

What it does, all on 127.0.0.1:
  1. a fresh SQLite database (bench/realtime.py's `make_database`): one programme, one
     session, 10 groups of 8 participants and an open breakout, so each participant's room
     is their group's room;
  2. the app under uvicorn in its own process (bench/realtime.py's `start_app`: production
     settings, one process) with the Vosk model, since its microphone refuses to start
     without one: every talker is also captioned, as in production. Vosk runs in its own
     threads, so the audio path's CPU (decoding, routing, mixing, sending: all on the event
     loop) is the main thread's, read from /proc/PID/task/PID/stat (`--no-model` runs
     without the model, for an app whose voice works without captions);
  3. a listener process (asyncio + the `websockets` client): every member of every room
     (80) opens the live WebSocket `.../live/ws` with its own session cookie and says
     `{"type":"hello","cursors":{"<room>":null},"media":["audio"]}` (the page follows its
     room, and a connection hears only a room it follows); binary frames (one or more packets
     with the 13-byte header of realtime/media.py) are kept with the time their bytes were
     read from the socket, and every byte read is counted;
  4. speakers (in this process, so their timing is not disturbed by the listeners): each
     opens the microphone WebSocket `.../live/audio` (start message: codec opus, 48 kHz,
     consent) and sends its track as 20 ms Opus packets (libopus via PyAV, 48 kHz mono,
     20 kbit/s), each when its audio would have been captured;
  5. phases: "one per room" (one speaker in each of the 10 rooms, staggered by 50 ms),
     "cross-talk" (the same, and two more people in the first room talking over its
     speaker: three at once there), then, for the app only, "fallback" (one speaker in the
     first room; four of its members listen over Server-Sent Events `.../live/sse?media=audio`
     and three over long-polling `.../live/poll?media=audio&listener=...`);
  6. the same phases (but the fallback) against a bare relay: a `websockets` server that
     puts the same 13-byte header on every binary frame a speaker sends and sends it to
     every other socket of the room. No database, no authorization, no decoding, no
     silence detection, no mixing, no queue limits.

The tracks: 200 ms tone bursts every 500 ms, each burst at its own frequency (multiples of
50 Hz, so each is one bin of a 960-sample FFT), silence between them (which the app does
not forward). Each speaker in a room has its own set of frequencies, so a listener tells
them apart even when the server mixes them into one stream.

Mouth-to-ear latency, per burst and listener: the time the listener read the first packet
whose decoded audio holds the burst's frequency (libopus via PyAV, FFT per 20 ms packet),
minus the time the speaker sent the first packet whose audio holds it (found by decoding
the speaker's own packets the same way). Packetization (20 ms) and the listener's jitter
buffer are not included. The clock is CLOCK_MONOTONIC, shared by every process on one
Linux machine. Listeners decode after each phase, not while it runs, so that their
decoding does not take CPU from the server being measured. A burst a listener should have
heard and did not (within 1.5 s) counts as infinitely late.

Behind live: for every forwarded packet (its payload is byte for byte one a speaker sent),
the time it was read minus the time it was sent; for mixed packets, the burst latencies.
It is split at the packet's ts_ms (the relay's clock when it sent the packet on, which both
the app and the bare relay take from CLOCK_MONOTONIC): speaker -> relay and relay ->
listener.

The last line is machine-readable:
RESULT m2e_p95_ms=<..> m2e_fallback_p95_ms=<..> listener_kbps_p95=<..> audio_cpu_pct=<..>
bare_cpu_ratio=<..>
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import math
import multiprocessing as mp
import os
import secrets
import shutil
import signal
import struct
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# Run as a script, this file's folder comes first on the path, where bench/realtime.py
# would hide the `realtime` package the app imports: look in the project root instead.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(ROOT))

from bench.captions import (  # noqa: E402 - after the path fix above
    PeakSampler,
    Seating,
    Speaker,
    counted_connection,
    opus_packets,
    seating,
    sse_data,
    wait_for_quiet,
)
from bench.realtime import (  # noqa: E402
    Server,
    cpu_seconds,
    free_port,
    machine_busy_seconds,
    make_database,
    ms,
    percentile,
    proc_status,
    raise_fd_limit,
    run_loop,
    start_app,
    start_bare,
    stop_server,
    wait_idle,
)

RATE = 48000
PACKET = 960  # samples in 20 ms
BIT_RATE = 20000  # what the page's AudioEncoder is asked for
PER_ROOM = 8
BURST_S, PERIOD_S, LEAD_S = 0.2, 0.5, 0.1
AMPLITUDE = 0.3  # of full scale
BIN_HZ = RATE // PACKET  # 50 Hz: a 20 ms FFT's resolution
FREQUENCIES = 16  # per speaker, reused every FREQUENCIES * PERIOD_S seconds
FIRST_BIN, BIN_STEP = 8, 2  # 400 Hz, 100 Hz apart: 400 .. 1900 Hz
# A packet "holds" a tone when its FFT magnitude at the tone's bin is at least this share
# of a full packet of the tone as sent (a quarter of that first packet is tone, after the
# encoder's 6.5 ms look-ahead; a mix of three may scale each voice down).
FULL_MAGNITUDE = AMPLITUDE * 32767 * PACKET / 2
THRESHOLD = 0.12 * FULL_MAGNITUDE
HEARD_WITHIN_NS = 1_500_000_000
HEADER = struct.Struct(">BIHIH")  # kind, source, seq, ts_ms, length (realtime/media.py)
KIND_OPUS = 1
CROSS_TALK_OFFSETS_S = (0.0, 0.06, 0.12)  # three people, bursts overlapping
ROOM_STAGGER_S = 0.05
OTHER_ROOM = "another room's packets"
# Targets from the issue.
TARGET_M2E_MS, TARGET_FALLBACK_MS = 250.0, 600.0
TARGET_KBPS, TARGET_CPU_PCT, TARGET_BEHIND_MS = 48.0, 15.0, 500.0


# --------------------------------------------------------------------------- tones


def burst_bin(slot: int, burst: int) -> int:
    """The FFT bin of a speaker's burst: each of a room's speakers (slot 0, 1, 2) has its
    own frequency at any moment, so overlapping bursts stay apart."""
    return FIRST_BIN + BIN_STEP * ((burst + 5 * slot) % FREQUENCIES)


def tone_pcm(slot: int, seconds: float) -> bytes:
    """Bursts of BURST_S at PERIOD_S from LEAD_S, 1 ms ramps, silence between; 48 kHz s16."""
    import numpy as np

    total = int(seconds * RATE) // PACKET * PACKET
    pcm = np.zeros(total)
    length, ramp = int(BURST_S * RATE), RATE // 1000
    envelope = np.ones(length)
    envelope[:ramp] = envelope[-ramp:][::-1] = 0.5 - 0.5 * np.cos(np.linspace(0, np.pi, ramp))
    burst = 0
    while (start := int((LEAD_S + burst * PERIOD_S) * RATE)) + length <= total:
        hz = burst_bin(slot, burst) * BIN_HZ
        wave = np.sin(2 * np.pi * hz * np.arange(length) / RATE) * envelope
        pcm[start : start + length] = AMPLITUDE * wave
        burst += 1
    return (pcm * 32767).astype("<i2").tobytes()


def decoded_spectra(payloads: list[bytes]) -> tuple[Any, int]:
    """Decode a stream's packets in order (one libopus decoder, as a listener has); for
    each packet, the FFT magnitude of its audio at every burst bin (the largest over its
    20 ms blocks). Also how many packets the decoder refused."""
    import av
    import numpy as np

    decoder = av.CodecContext.create("libopus", "r")
    decoder.sample_rate = RATE
    decoder.layout = "mono"
    bins = [FIRST_BIN + BIN_STEP * i for i in range(FREQUENCIES)]
    rows, refused = [], 0
    for payload in payloads:
        samples = []
        try:
            for frame in decoder.decode(av.Packet(payload)):
                samples.append(frame.to_ndarray().reshape(-1).astype(np.float64))
        except av.FFmpegError:
            refused += 1
        pcm = np.concatenate(samples) if samples else np.zeros(PACKET)
        blocks = np.resize(pcm, (max(1, math.ceil(len(pcm) / PACKET)), PACKET))
        rows.append(np.abs(np.fft.rfft(blocks, axis=1))[:, bins].max(axis=0))
    return np.array(rows).reshape(len(rows), len(bins)), refused


def column(bin_index: int) -> int:
    return (bin_index - FIRST_BIN) // BIN_STEP


@dataclass
class Track:
    """One speaker's packets and where each burst begins in them."""

    slot: int
    packets: list[bytes]
    onsets: list[tuple[int, int]]  # (index of the first packet holding the burst, its bin)
    unique: dict[bytes, int]  # payload -> packet index, for payloads sent once

    @classmethod
    def make(cls, slot: int, seconds: float) -> Track:
        packets = opus_packets(tone_pcm(slot, seconds), sample_rate=RATE, bit_rate=BIT_RATE)
        spectra, _ = decoded_spectra(packets)
        onsets, burst = [], 0
        while (start := round((LEAD_S + burst * PERIOD_S) / 0.02)) < len(packets) - 2:
            b = burst_bin(slot, burst)
            for i in range(max(0, start - 1), min(len(packets), start + 4)):
                if spectra[i, column(b)] >= THRESHOLD:
                    onsets.append((i, b))
                    break
            burst += 1
        counts = Counter(packets)
        unique = {p: i for i, p in enumerate(packets) if counts[p] == 1}
        return cls(slot, packets, onsets, unique)


def unpack(data: bytes) -> list[tuple[int, int, int, int, bytes]]:
    """Packets of one binary frame: (kind, source, seq, ts_ms, payload). Written from the
    contract, not imported from the app, so that the wire format is checked too."""
    out, at = [], 0
    while at + HEADER.size <= len(data):
        kind, source, seq, ts, length = HEADER.unpack_from(data, at)
        at += HEADER.size
        if at + length > len(data):
            raise ValueError("a packet runs past the end of its frame")
        out.append((kind, source, seq, ts, data[at : at + length]))
        at += length
    if at != len(data):
        raise ValueError("bytes left after the last packet")
    return out


# --------------------------------------------------------------------------- listeners


@dataclass
class ListenerSpec:
    key: int
    kind: str  # "ws" | "sse" | "poll"
    user_id: int
    room: str
    url: str
    cookie: str
    media: str = "audio"  # what it asks to receive ("" for none): one kind, as the fallbacks


@dataclass
class Heard:
    spec: ListenerSpec
    frames: list[tuple[int, bytes]] = field(default_factory=list)  # (read at, frame bytes)
    window_bytes: int = 0
    texts: Counter[str] = field(default_factory=Counter)
    error: str = ""
    open: bool = False
    task: asyncio.Task[None] | None = None
    ws: Any = None


class Recorder:
    """The listener process: every listener's connection, and what it hears while a phase
    is recorded."""

    def __init__(self) -> None:
        self.heard: dict[int, Heard] = {}
        self.recording = False
        self.window = (0, 0)
        self.http: Any = None
        self.ws_class = counted_connection(self.count)

    def count(self, heard: Heard, at: int, nbytes: int) -> None:
        if self.window[0] <= at <= self.window[1]:
            heard.window_bytes += nbytes

    def media(self, heard: Heard, at: int, data: bytes) -> None:
        if self.recording:
            heard.frames.append((at, data))

    async def connect(self, specs: list[ListenerSpec]) -> dict[str, Any]:
        import httpx

        if self.http is None and any(s.kind != "ws" for s in specs):
            self.http = httpx.AsyncClient(timeout=httpx.Timeout(60.0), http2=False)
        started = time.monotonic()
        ready = []
        for spec in specs:
            heard = self.heard[spec.key] = Heard(spec)
            opened = asyncio.get_running_loop().create_future()
            listen = {"ws": self.listen_ws, "sse": self.listen_sse, "poll": self.listen_poll}
            heard.task = asyncio.create_task(listen[spec.kind](heard, opened))
            ready.append(opened)
        await asyncio.wait(ready, timeout=60)
        failures = Counter(h.error for h in self.heard.values() if h.error)
        return {
            "open": sum(1 for s in specs if self.heard[s.key].open),
            "failures": dict(failures),
            "seconds": time.monotonic() - started,
        }

    async def listen_ws(self, heard: Heard, opened: asyncio.Future[None]) -> None:
        from websockets.asyncio.client import connect

        spec = heard.spec
        try:
            ws = heard.ws = await connect(
                spec.url,
                additional_headers={"Cookie": f"rt_session={spec.cookie}"},
                open_timeout=60,
                ping_interval=None,
                close_timeout=2,
                proxy=None,
                max_size=2**20,
                create_connection=self.ws_class,
            )
            ws.owner = heard
            # As the page does: follow the room (from now) and ask to hear it.
            media = [spec.media] if spec.media else []
            hello = {"type": "hello", "cursors": {spec.room: None}, "media": media}
            await ws.send(json.dumps(hello))
            while True:
                first = await asyncio.wait_for(ws.recv(), 60)
                if isinstance(first, str) and json.loads(first).get("t") == "hello":
                    break
            heard.open = True
            opened.set_result(None)
            async for raw in ws:
                if isinstance(raw, bytes):
                    self.media(heard, ws.arrived_ns, raw)
                else:
                    self.text(heard, ws.arrived_ns, json.loads(raw))
            heard.error = f"closed {ws.close_code} {ws.close_reason}"
        except Exception as exc:  # noqa: BLE001 - reported with the figures
            heard.error = heard.error or f"{type(exc).__name__}: {str(exc)[:80]}"
        finally:
            heard.open = False
            if not opened.done():
                opened.set_result(None)

    def text(self, heard: Heard, at: int, message: dict[str, Any]) -> None:
        """A text message (an event, a heartbeat...) read at `at`: counted by type."""
        heard.texts[str(message.get("t"))] += 1

    def fallback_event(self, heard: Heard, at: int, message: dict[str, Any]) -> None:
        if message.get("t") == "m":
            self.media(heard, at, base64.b64decode(message["b"]))
        else:
            self.text(heard, at, message)

    async def listen_sse(self, heard: Heard, opened: asyncio.Future[None]) -> None:
        spec = heard.spec
        headers = {
            "Cookie": f"rt_session={spec.cookie}",
            "Accept": "text/event-stream",
            "Accept-Encoding": "identity",
        }
        try:
            async with self.http.stream("GET", spec.url, headers=headers) as response:
                if response.status_code != 200:
                    raise RuntimeError(f"SSE answered {response.status_code}")
                heard.open = True
                opened.set_result(None)
                buffer = b""
                async for chunk in response.aiter_raw():
                    at = time.monotonic_ns()
                    self.count(heard, at, len(chunk))
                    buffer, events = sse_data(buffer, chunk)
                    for data in events:
                        self.fallback_event(heard, at, json.loads(data))
            heard.error = "the stream ended"
        except Exception as exc:  # noqa: BLE001 - reported with the figures
            heard.error = heard.error or f"{type(exc).__name__}: {str(exc)[:80]}"
        finally:
            heard.open = False
            if not opened.done():
                opened.set_result(None)

    async def listen_poll(self, heard: Heard, opened: asyncio.Future[None]) -> None:
        spec = heard.spec
        headers = {"Cookie": f"rt_session={spec.cookie}", "Accept-Encoding": "identity"}
        token, cursors = secrets.token_urlsafe(16), f"{spec.room}="
        heard.open = True
        opened.set_result(None)
        try:
            while True:
                query = {"cursors": cursors, "wait": "25", "media": spec.media, "listener": token}
                response = await self.http.get(spec.url, params=query, headers=headers)
                at = time.monotonic_ns()
                self.count(heard, at, len(response.content) + 200)  # + status and headers
                if response.status_code != 200:
                    raise RuntimeError(f"poll answered {response.status_code}")
                body = response.json()
                for message in body.get("events", []):
                    self.fallback_event(heard, at, message)
                cursors = ",".join(f"{c}={i}" for c, i in body.get("cursors", {}).items())
        except Exception as exc:  # noqa: BLE001 - reported with the figures
            heard.error = heard.error or f"{type(exc).__name__}: {str(exc)[:80]}"
        finally:
            heard.open = False

    def start(self, window: tuple[int, int]) -> None:
        for heard in self.heard.values():
            heard.frames, heard.window_bytes, heard.texts = [], 0, Counter()
        self.window, self.recording = window, True

    def stop(self) -> dict[int, dict[str, Any]]:
        self.recording = False
        return {
            key: {
                "frames": h.frames,
                "bytes": h.window_bytes,
                "texts": dict(h.texts),
                "open": h.open,
                "error": h.error,
            }
            for key, h in self.heard.items()
        }

    async def close(self, kind: str | None) -> None:
        for key, heard in list(self.heard.items()):
            if kind is not None and heard.spec.kind != kind:
                continue
            if heard.ws is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(heard.ws.close(), 3)
            if heard.task is not None:
                heard.task.cancel()
            del self.heard[key]


def listener_process(conn: Any, recorder_class: type[Recorder] = Recorder) -> None:
    raise_fd_limit()

    async def main() -> None:
        recorder = recorder_class()
        while True:
            command, arg = await asyncio.to_thread(conn.recv)
            if command == "connect":
                conn.send(await recorder.connect(arg))
            elif command == "start":
                recorder.start(arg)
                conn.send("recording")
            elif command == "stop":
                conn.send(recorder.stop())
            elif command == "close":
                await recorder.close(arg)
                conn.send("closed")
                if arg is None:
                    return

    run_loop(main())


class Listeners:
    """The listener process, driven over a pipe (`recorder_class`: a Recorder of another
    benchmark's, which does more with what it hears)."""

    def __init__(self, recorder_class: type[Recorder] = Recorder) -> None:
        ctx = mp.get_context("spawn")
        self.pipe, child = ctx.Pipe()
        self.proc = ctx.Process(target=listener_process, args=(child, recorder_class), daemon=True)
        self.proc.start()

    async def ask(self, command: str, arg: Any = None, timeout: float = 120) -> Any:
        self.pipe.send((command, arg))
        if not await asyncio.to_thread(self.pipe.poll, timeout):
            raise RuntimeError(f"the listener process did not answer {command!r}")
        return self.pipe.recv()

    def cpu(self) -> float:
        return cpu_seconds(self.proc.pid) if self.proc.pid else 0.0

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.ask("close", None, timeout=20)
        self.proc.join(5)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(5)


# --------------------------------------------------------------------------- bare relay


def serve_bare(port: int) -> None:
    """The baseline: a speaker's every binary frame, with the 13-byte header, to every
    other socket of its room. Rooms and people come from the URL's query."""
    from websockets.asyncio.server import broadcast, serve

    rooms: dict[str, set[Any]] = defaultdict(set)

    async def handler(ws: Any) -> None:
        path, _, query = ws.request.path.partition("?")
        who = urllib.parse.parse_qs(query)
        room, ws.user = who["room"][0], int(who["user"][0])
        await ws.recv()  # hello or start
        if path == "/ws":
            rooms[room].add(ws)
            try:
                await ws.send('{"t":"hello","transport":"websocket"}')
                await ws.wait_closed()
            finally:
                rooms[room].discard(ws)
            return
        await ws.send(json.dumps({"t": "started", "stream": f"bare-{ws.user}", "room": room}))
        seq = 0
        async for data in ws:
            if isinstance(data, str):  # stop
                break
            seq = (seq + 1) & 0xFFFF
            now = int(time.monotonic() * 1000) & 0xFFFFFFFF
            frame = HEADER.pack(KIND_OPUS, ws.user, seq, now, len(data)) + data
            broadcast([other for other in rooms[room] if other.user != ws.user], frame)
        await ws.close()

    async def main() -> None:
        stop = asyncio.get_running_loop().create_future()
        for sig in (signal.SIGINT, signal.SIGTERM):
            asyncio.get_running_loop().add_signal_handler(sig, stop.set_result, None)
        async with serve(handler, "127.0.0.1", port, max_size=2**16, compression=None):
            await stop

    raise_fd_limit()
    run_loop(main())


# --------------------------------------------------------------------------- phases


@dataclass(frozen=True)
class Urls:
    """Where a target's listeners and speakers connect."""

    ws_base: str
    http_base: str
    bare: bool

    def listen(self, kind: str, user_id: int, room: str) -> str:
        if self.bare:
            return f"{self.ws_base}/ws?room={room}&user={user_id}"
        if kind == "ws":
            return f"{self.ws_base}/ws"
        if kind == "sse":
            return f"{self.http_base}/sse?cursors={urllib.parse.quote(room)}=&media=audio"
        return f"{self.http_base}/poll"

    def speak(self, user_id: int, room: str) -> str:
        if self.bare:
            return f"{self.ws_base}/audio?room={room}&user={user_id}"
        return f"{self.ws_base}/audio"


@dataclass(frozen=True)
class Voice:
    user_id: int
    room: str
    slot: int  # which set of frequencies (0, 1, 2: the speakers of one room)
    offset_s: float  # when this speaker starts, after the phase's start


async def measure_window(server: Server, listeners: Listeners, w0: int, w1: int) -> dict[str, Any]:
    """CPU of the server, the clients and everything else, and the server's peak resident
    memory, between w0 and w1 (CLOCK_MONOTONIC ns)."""
    await asyncio.sleep(max(0.0, (w0 - time.monotonic_ns()) / 1e9))
    pid = server.proc.pid
    sampler = PeakSampler(pid)
    server0, clients0 = cpu_seconds(pid), time.process_time() + listeners.cpu()
    loop0, busy0 = cpu_seconds(pid, thread=pid), machine_busy_seconds()
    await asyncio.sleep(max(0.0, (w1 - time.monotonic_ns()) / 1e9))
    server1, clients1 = cpu_seconds(pid), time.process_time() + listeners.cpu()
    loop1, busy1 = cpu_seconds(pid, thread=pid), machine_busy_seconds()
    seconds = (w1 - w0) / 1e9
    return {
        "server_cpu": (server1 - server0) / seconds * 100,
        # The main thread runs the event loop: the whole audio path (decoding, routing,
        # mixing, sending), not Vosk (its own threads) nor SQLite (aiosqlite's).
        "loop_cpu": (loop1 - loop0) / seconds * 100,
        "client_cpu": (clients1 - clients0) / seconds * 100,
        "other_cpu": max(0.0, busy1 - busy0 - (server1 - server0) - (clients1 - clients0))
        / seconds
        * 100,
        "rss_peak": sampler.stop(),
        "seconds": seconds,
    }


async def run_phase(
    server: Server,
    urls: Urls,
    listeners: Listeners,
    seats: Seating,
    specs: dict[int, ListenerSpec],
    voices: list[Voice],
    tracks: dict[int, Track],
    args: argparse.Namespace,
) -> dict[str, Any]:
    """The voices speak their tracks in real time, together; the listeners record."""
    speakers = [
        Speaker(v.user_id, seats.cookies[v.user_id], v.room, tracks[v.slot].packets, "opus")
        for v in voices
    ]
    try:
        await asyncio.gather(
            *(
                s.connect(urls.speak(v.user_id, v.room))
                for s, v in zip(speakers, voices, strict=True)
            )
        )
        t0 = time.monotonic_ns() + 300_000_000
        w0, w1 = t0 + int(args.warmup * 1e9), t0 + int(args.seconds * 1e9)
        await listeners.ask("start", (w0, w1))
        meter = asyncio.create_task(measure_window(server, listeners, w0, w1))
        await asyncio.gather(
            *(
                talk(s, t0 + int(v.offset_s * 1e9), args)
                for s, v in zip(speakers, voices, strict=True)
            )
        )
        window = await meter
        await asyncio.sleep(args.drain)
        records = await listeners.ask("stop")
    finally:
        await asyncio.gather(*(s.close() for s in speakers))
    sent = {v.user_id: (v, tracks[v.slot], s.spoken) for v, s in zip(voices, speakers, strict=True)}
    figures = analyse(records, specs, sent, w0, w1)
    figures.update(window)
    figures["speakers"] = len(voices)
    figures["send_lag_max_ms"] = max(
        (
            (a - b) / 1e6
            for s in speakers
            for a, b in zip(s.spoken.sent_ns, s.spoken.scheduled_ns, strict=True)
        ),
        default=math.nan,
    )
    messages: Counter[str] = Counter()
    for s in speakers:
        if len(s.spoken.sent_ns) < len(s.frames):
            messages["cut short (the server stopped reading)"] += 1
        messages.update(str(m.get("t")) for m in s.spoken.messages)
        if s.spoken.error:
            messages[f"error: {s.spoken.error[:100]}"] += 1
    figures["speaker_messages"] = dict(messages)
    return figures


def clock_ms_between(earlier: int, later: int) -> float:
    """later - earlier, in ms of CLOCK_MONOTONIC, where either may be a packet's ts_ms (the
    server's relay time: a u32 that wraps; the app and the bare relay both stamp it from
    CLOCK_MONOTONIC, which is what makes the split of "behind live" possible)."""
    d = (later - earlier) % 2**32
    return float(d - 2**32 if d >= 2**31 else d)


async def talk(speaker: Speaker, start_ns: int, args: argparse.Namespace) -> None:
    """The speaker's track from `start_ns`, then stop. A server that has not read (and so
    not closed) the stream 3 s after its end is not waited for: its backlog shows in the
    figures, and the next phase waits for the server to be idle first."""
    deadline = (start_ns - time.monotonic_ns()) / 1e9 + args.seconds + 3.0
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(speaker.speak(start_ns, 1.0), deadline)


def heard_streams(frames: list[tuple[int, bytes]]) -> tuple[dict[int, list[Any]], int]:
    """A listener's packets by source, in the order read: (read at, seq, ts_ms, payload)."""
    streams: dict[int, list[Any]] = defaultdict(list)
    malformed = 0
    for at, frame in frames:
        try:
            packets = unpack(frame)
        except ValueError:
            malformed += 1
            continue
        for kind, source, seq, ts, payload in packets:
            if kind == KIND_OPUS:
                streams[source].append((at, seq, ts, payload))
    return streams, malformed


# Longer than 60 lines because it is one pass over every listener's packets, and the
# figures it fills belong together.
def analyse(
    records: dict[int, dict[str, Any]],
    specs: dict[int, ListenerSpec],
    sent: dict[int, tuple[Voice, Track, Any]],
    w0: int,
    w1: int,
) -> dict[str, Any]:
    import numpy as np

    m2e: dict[str, list[float]] = defaultdict(list)
    kbps: dict[str, list[float]] = defaultdict(list)
    crowded = {r for r, n in Counter(v.room for v, _, _ in sent.values()).items() if n > 1}
    crowded_kbps: list[float] = []
    behind: list[float] = []
    reached: list[float] = []  # speaker -> server relay (ts_ms), forwarded packets
    relayed: list[float] = []  # server relay -> listener, every packet
    counts: Counter[str] = Counter()
    seconds = (w1 - w0) / 1e9
    for key, record in records.items():
        spec = specs[key]
        rate = record["bytes"] * 8 / 1000 / seconds
        kbps[spec.kind].append(rate)
        if spec.room in crowded and spec.kind == "ws":
            crowded_kbps.append(rate)
        if not record["open"]:
            counts["listeners closed"] += 1
        streams, malformed = heard_streams(record["frames"])
        counts["malformed frames"] += malformed
        room_speakers = {u for u, (v, _, _) in sent.items() if v.room == spec.room}
        arrays = {}
        for source, items in streams.items():
            counts["packets"] += len(items)
            if source == spec.user_id:
                counts["own voice packets"] += len(items)
            elif source and source not in room_speakers:
                counts[OTHER_ROOM] += len(items)
            seqs = [seq for _, seq, _, _ in items]
            steps = zip(seqs, seqs[1:], strict=False)
            counts["seq gaps"] += sum(1 for a, b in steps if (b - a) & 0xFFFF != 1)
            spectra, refused = decoded_spectra([p for _, _, _, p in items])
            counts["undecodable packets"] += refused
            arrays[source] = (np.array([at for at, _, _, _ in items], dtype=np.int64), spectra)
            relayed.extend(clock_ms_between(ts, at // 1_000_000) for at, _, ts, _ in items)
            if source in sent:
                _, track, spoken = sent[source]
                for at, _, ts, payload in items:
                    index = track.unique.get(payload)
                    if index is not None and index < len(spoken.sent_ns):
                        behind.append((at - spoken.sent_ns[index]) / 1e6)
                        reached.append(clock_ms_between(spoken.sent_ns[index] // 1_000_000, ts))
        for user, (_, track, spoken) in sent.items():
            if user == spec.user_id or user not in room_speakers:
                continue
            for index, bin_index in track.onsets:
                if index >= len(spoken.sent_ns) or not w0 <= spoken.sent_ns[index] <= w1:
                    continue
                at0 = spoken.sent_ns[index]
                latency = math.inf
                for source in (user, 0):
                    if source not in arrays:
                        continue
                    ats, spectra = arrays[source]
                    hits = np.nonzero(
                        (ats >= at0 - 50_000_000)
                        & (ats <= at0 + HEARD_WITHIN_NS)
                        & (spectra[:, column(bin_index)] >= THRESHOLD)
                    )[0]
                    if hits.size:
                        latency = min(latency, (int(ats[hits[0]]) - at0) / 1e6)
                m2e[spec.kind].append(latency)
                if math.isinf(latency):
                    counts[f"bursts missed ({spec.kind})"] += 1
    finite = [x for xs in m2e.values() for x in xs if not math.isinf(x)]
    return {
        "m2e": {k: sorted(v) for k, v in m2e.items()},
        "kbps": {k: sorted(v) for k, v in kbps.items()},
        "crowded_kbps": sorted(crowded_kbps),
        "behind_p99": percentile(sorted(behind), 0.99),
        "behind_max": max([*behind, *finite], default=math.nan),
        "reached_p99": percentile(sorted(reached), 0.99),
        "reached_max": max(reached, default=math.nan),
        "relayed_p99": percentile(sorted(relayed), 0.99),
        "relayed_max": max(relayed, default=math.nan),
        "counts": dict(counts),
    }


async def measure_target(
    name: str,
    server: Server,
    urls: Urls,
    seats: Seating,
    tracks: dict[int, Track],
    args: argparse.Namespace,
    log: Any,
    fallback: bool,
) -> dict[str, Any]:
    pid = server.proc.pid
    listeners = Listeners()
    out: dict[str, Any] = {"phases": {}, "rss_start": proc_status(pid, "VmRSS")}
    try:
        specs = {}
        for room, _, members in seats.rooms:
            for uid in members:
                key = len(specs)
                specs[key] = ListenerSpec(
                    key, "ws", uid, room, urls.listen("ws", uid, room), seats.cookies[uid]
                )
        connected = await listeners.ask("connect", list(specs.values()))
        out["connected"], out["failures"] = connected["open"], connected["failures"]
        log(
            f"[{name}] {connected['open']}/{len(specs)} listeners connected in "
            f"{connected['seconds']:.1f} s {connected['failures'] or ''}"
        )
        await asyncio.sleep(2.0)  # presence events settle
        out["rss_connected"] = proc_status(pid, "VmRSS")
        cpu0 = cpu_seconds(pid)
        await asyncio.sleep(args.idle_seconds)
        out["idle_cpu"] = (cpu_seconds(pid) - cpu0) / args.idle_seconds * 100
        rooms = seats.rooms
        one = [Voice(rooms[i][1], rooms[i][0], 0, i * ROOM_STAGGER_S) for i in range(len(rooms))]
        first, _, members = rooms[0]
        cross = one[1:] + [Voice(members[s], first, s, CROSS_TALK_OFFSETS_S[s]) for s in range(3)]
        phases = [("one per room", one), ("cross-talk", cross)]
        for phase, voices in phases:
            await quiet(args, log, server, listeners)
            log(f"[{name}] {phase}: {len(voices)} speakers for {args.seconds:g} s ...")
            figures = await run_phase(server, urls, listeners, seats, specs, voices, tracks, args)
            out["phases"][phase] = figures
            log(f"[{name}] {phase}: {summary(figures)}")
        if fallback:
            extra = {}
            for i, uid in enumerate(members[1:]):
                kind, key = ("sse" if i < 4 else "poll"), 1000 + i
                extra[key] = ListenerSpec(
                    key, kind, uid, first, urls.listen(kind, uid, first), seats.cookies[uid]
                )
            connected = await listeners.ask("connect", list(extra.values()))
            specs.update(extra)
            log(f"[{name}] fallback: {connected['open']}/{len(extra)} SSE and long-poll listeners")
            await quiet(args, log, server, listeners)
            voices = [Voice(members[0], first, 0, 0.0)]
            figures = await run_phase(server, urls, listeners, seats, specs, voices, tracks, args)
            out["phases"]["fallback"] = figures
            log(f"[{name}] fallback: {summary(figures)}")
    finally:
        await listeners.close()
    return out


async def quiet(args: argparse.Namespace, log: Any, server: Server, listeners: Listeners) -> None:
    """Wait (at most --quiet-wait seconds each) until the server has worked off what it
    still had to do, and other processes on the machine use under a quarter of a core:
    they would take the cores the figures are about."""
    if args.quiet_wait > 0:
        await asyncio.to_thread(wait_idle, server, log, args.quiet_wait)
        pids = (server.proc.pid, listeners.proc.pid or 0)
        await asyncio.to_thread(wait_for_quiet, args.quiet_wait, log, pids)


def summary(figures: dict[str, Any]) -> str:
    parts = []
    for kind, values in figures["m2e"].items():
        parts.append(
            f"{kind} mouth-to-ear p50 {ms(percentile(values, 0.5))} "
            f"p95 {ms(percentile(values, 0.95))} ms"
        )
    ws = figures["kbps"].get("ws", [])
    parts.append(f"download p95 {percentile(ws, 0.95):.1f} kbps")
    parts.append(f"server CPU {figures['server_cpu']:.1f}% (event loop {figures['loop_cpu']:.1f}%)")
    return ", ".join(parts)


# --------------------------------------------------------------------------- report


def p50_p95(values: list[float]) -> str:
    return f"{ms(percentile(values, 0.5))} / {ms(percentile(values, 0.95))}"


def phase_rows(d: dict[str, Any]) -> list[tuple[str, str]]:
    """The rows of one phase's figures, as (label, cell)."""
    if not d:
        return []
    n = Counter(d["counts"])
    ws = d["kbps"].get("ws", [])
    heard = len(d["m2e"].get("ws", [])) - n["bursts missed (ws)"]
    kbps = f"{percentile(ws, 0.5):.1f} / {percentile(ws, 0.95):.1f} / {max(ws, default=0):.1f}"
    rows = [
        ("mouth-to-ear p50 / p95 (ms), WebSocket", p50_p95(d["m2e"].get("ws", []))),
        ("  bursts heard / missed", f"{heard} / {n['bursts missed (ws)']}"),
        ("behind live p99 / max (ms)", f"{ms(d['behind_p99'])} / {ms(d['behind_max'])}"),
        (
            "  speaker -> relay p99 / max (ms, ts_ms)",
            f"{ms(d['reached_p99'])} / {ms(d['reached_max'])}",
        ),
        (
            "  relay -> listener p99 / max (ms, ts_ms)",
            f"{ms(d['relayed_p99'])} / {ms(d['relayed_max'])}",
        ),
        ("download per listener p50/p95/max (kbps)", kbps),
    ]
    if d["crowded_kbps"]:
        crowded = percentile(d["crowded_kbps"], 0.95)
        rows.append(("  in the cross-talk room, p95 (kbps)", f"{crowded:.1f}"))
    rows += [
        ("server CPU, all threads (% of one core)", f"{d['server_cpu']:.1f}"),
        ("  event-loop thread: the audio path (%)", f"{d['loop_cpu']:.1f}"),
        ("server peak RSS (MB)", f"{d['rss_peak'] / 2**20:.0f}"),
        ("clients' / other processes' CPU (%)", f"{d['client_cpu']:.0f} / {d['other_cpu']:.0f}"),
        ("packets received, all listeners", str(n["packets"])),
        ("  own voice / another room's", f"{n['own voice packets']} / {n[OTHER_ROOM]}"),
        (
            "  malformed / undecodable / seq gaps",
            f"{n['malformed frames']} / {n['undecodable packets']} / {n['seq gaps']}",
        ),
        ("listeners closed during the phase", str(n["listeners closed"])),
        ("speakers' send lag max (ms)", ms(d["send_lag_max_ms"])),
    ]
    return rows


def row(label: str, a: str, b: str = "") -> None:
    print(f"  {label:<44} {a:>20} {b:>20}")


PHASE_TEXT = {
    "one per room": "one speaker in each room",
    "cross-talk": "three at once in the first room, one in each other room",
    "fallback": "one speaker; 4 of the room listen over SSE, 3 over long-polling",
}


def report(ours: dict[str, Any], bare: dict[str, Any] | None, args: argparse.Namespace) -> None:
    b = bare or {"phases": {}}
    listeners = args.rooms * PER_ROOM
    print()
    print(
        f"Voice benchmark: {args.rooms} rooms of {PER_ROOM} ({listeners} listeners on the live "
        f"WebSocket), loopback, one server process (uvicorn --ws {args.ws}, SQLite, "
        + ("no Vosk model)" if args.no_model else "Vosk captioning every talker)")
    )
    print(
        f"  {os.cpu_count()} cores shared by the server, the speakers' and the listeners' "
        f"processes; phases of {args.seconds:g} s, measured after {args.warmup:g} s; "
        f"Opus {BIT_RATE // 1000} kbit/s VBR, 20 ms packets, 200 ms tone bursts every 500 ms "
        f"(a talker sends {ours['sent_kbps']:.1f} kbit/s of Opus on average)"
    )
    print()
    row("", "roundtable", "bare relay" if bare else "")
    row(
        "listeners connected",
        f"{ours['connected']}/{listeners}",
        f"{b['connected']}/{listeners}" if bare else "",
    )
    for label, key in (
        ("server RSS before listeners (MB)", "rss_start"),
        ("server RSS with listeners (MB)", "rss_connected"),
    ):
        row(label, f"{ours[key] / 2**20:.0f}", f"{b[key] / 2**20:.0f}" if bare else "")
    row(
        "idle server CPU, all connected (%)",
        f"{ours['idle_cpu']:.1f}",
        f"{b['idle_cpu']:.1f}" if bare else "",
    )
    for phase in ("one per room", "cross-talk"):
        o, x = ours["phases"][phase], b["phases"].get(phase, {})
        print(f"  -- {phase}: {o['speakers']} speakers, {PHASE_TEXT[phase]}")
        theirs = dict(phase_rows(x))
        for label, cell in phase_rows(o):
            row(label, cell, theirs.get(label, ""))
        if x:
            row("audio path CPU ratio (ours / bare)", f"{o['loop_cpu'] / x['loop_cpu']:.2f}")
        for who, d in (("roundtable", o), ("bare", x)):
            if d and set(d["speaker_messages"]) - {"floor", "recording"}:
                print(f"     {who}: the speakers were told {d['speaker_messages']}")
    fallback = ours["phases"].get("fallback")
    if fallback:
        print(f"  -- fallback (roundtable only): {PHASE_TEXT['fallback']}")
        n = Counter(fallback["counts"])
        for kind, label in (("sse", "Server-Sent Events"), ("poll", "long-polling")):
            values = fallback["m2e"].get(kind, [])
            row(f"mouth-to-ear p50 / p95 (ms), {label}", p50_p95(values))
            row(
                f"  bursts heard / missed ({kind})",
                f"{len(values) - n[f'bursts missed ({kind})']} / {n[f'bursts missed ({kind})']}",
            )
            kbps = fallback["kbps"].get(kind, [])
            row(f"  download per listener p95 (kbps, {kind})", f"{percentile(kbps, 0.95):.1f}")
        row("mouth-to-ear p50 / p95 (ms), WebSocket", p50_p95(fallback["m2e"].get("ws", [])))
        row("server CPU, all threads (% of one core)", f"{fallback['server_cpu']:.1f}")
        row("  event-loop thread: the audio path (%)", f"{fallback['loop_cpu']:.1f}")
    result(ours, bare)


def result(ours: dict[str, Any], bare: dict[str, Any] | None) -> None:
    load = [ours["phases"][p] for p in ("one per room", "cross-talk")]
    m2e = percentile(sorted(x for d in load for x in d["m2e"].get("ws", [])), 0.95)
    fallback = ours["phases"].get("fallback") or {"m2e": {}}
    m2e_fallback = percentile(fallback["m2e"].get("sse", []), 0.95)
    kbps = percentile(ours["phases"]["cross-talk"]["kbps"].get("ws", []), 0.95)
    busiest = max(("one per room", "cross-talk"), key=lambda p: ours["phases"][p]["loop_cpu"])
    cpu = ours["phases"][busiest]["loop_cpu"]
    ratio = math.nan
    if bare and bare["phases"].get(busiest, {}).get("loop_cpu"):
        ratio = cpu / bare["phases"][busiest]["loop_cpu"]
    behind = max(d["behind_max"] for d in ours["phases"].values())
    targets = [
        (f"WebSocket p95 <= {TARGET_M2E_MS:g} ms", m2e <= TARGET_M2E_MS),
        (
            f"fallback (SSE) p95 <= {TARGET_FALLBACK_MS:g} ms",
            None if math.isnan(m2e_fallback) else m2e_fallback <= TARGET_FALLBACK_MS,
        ),
        (f"cross-talk download p95 <= {TARGET_KBPS:g} kbps", kbps <= TARGET_KBPS),
        (f"audio path <= {TARGET_CPU_PCT:g}% of a core ({busiest})", cpu <= TARGET_CPU_PCT),
        (f"never behind live by > {TARGET_BEHIND_MS:g} ms", behind <= TARGET_BEHIND_MS),
    ]
    verdicts = {True: "met", False: "NOT met", None: "not measured"}
    print("  targets: " + "; ".join(f"{label}: {verdicts[ok]}" for label, ok in targets))
    print(
        f"RESULT m2e_p95_ms={ms(m2e)} m2e_fallback_p95_ms={ms(m2e_fallback)} "
        f"listener_kbps_p95={kbps:.1f} audio_cpu_pct={cpu:.1f} bare_cpu_ratio={ratio:.2f}"
    )


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rooms", type=int, default=10, help="breakout rooms of 8")
    parser.add_argument("--seconds", type=float, default=10.0, help="each phase's length")
    parser.add_argument("--warmup", type=float, default=1.0, help="not measured, per phase")
    parser.add_argument("--drain", type=float, default=1.5, help="after each phase")
    parser.add_argument("--idle-seconds", type=float, default=3.0, help="idle CPU window")
    parser.add_argument(
        "--model",
        type=Path,
        default=Path(os.environ.get("VOSK_MODEL_PATH") or ROOT / "var" / "models" / "model-en-us"),
        help="the Vosk model the app loads (the microphone refuses to start without one)",
    )
    parser.add_argument(
        "--no-model",
        action="store_true",
        help="run the app without a Vosk model (for an app whose voice works without captions)",
    )
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=8.0,
        help="before each phase, wait up to this long for the server, then for other "
        "processes, to calm down (0: no)",
    )
    parser.add_argument("--ws", default="websockets-sansio", help="uvicorn's WebSocket layer")
    parser.add_argument("--port", type=int, default=0, help="the app's port (0: a free one)")
    parser.add_argument("--skip-bare", action="store_true")
    parser.add_argument("--skip-fallback", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("--quick", action="store_true", help="6-second phases")
    parser.add_argument("--serve-bare", action="store_true", help=argparse.SUPPRESS)
    if "--quick" in (sys.argv[1:] if argv is None else argv):
        parser.set_defaults(seconds=6.0, idle_seconds=1.0)
    args = parser.parse_args(argv)
    if not 1 <= args.rooms <= 50 or not 3.0 <= args.seconds <= 120:
        parser.error("keep it bounded: 1 to 50 rooms, phases of 3 to 120 seconds")
    if args.warmup >= args.seconds - 1:
        parser.error("the warm-up must leave at least a second to measure")
    return args


def health(port: int) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10) as response:  # noqa: S310 - our own server
        return dict(json.loads(response.read()))


async def measure_all(
    args: argparse.Namespace, tmp: Path, database_url: str, seats: Seating, log: Any
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    tracks = {slot: Track.make(slot, args.seconds) for slot in range(len(CROSS_TALK_OFFSETS_S))}
    sent_kbps = sum(len(p) for p in tracks[0].packets) * 8 / 1000 / args.seconds
    log(
        f"tone tracks: {len(tracks[0].packets)} packets, {len(tracks[0].onsets)} bursts, "
        f"{sent_kbps:.1f} kbit/s of Opus on average"
    )
    base = f"/programmes/{seats.programme_id}/sessions/{seats.session_id}/live"
    port = args.port or free_port()
    app = start_app(tmp, database_url, port, args.ws, None if args.no_model else args.model)
    log(f"roundtable serving on 127.0.0.1:{port} (pid {app.proc.pid})")
    try:
        captions = health(port).get("captions")
        log(f"captions: {captions}")
        if captions != "ok" and not args.no_model:
            raise RuntimeError(f"the Vosk model at {args.model} did not load: {captions}")
        urls = Urls(f"ws://127.0.0.1:{port}{base}", f"http://127.0.0.1:{port}{base}", bare=False)
        ours = await measure_target(
            "roundtable", app, urls, seats, tracks, args, log, not args.skip_fallback
        )
        ours["sent_kbps"] = sent_kbps
    finally:
        stop_server(app)
        tail = app.log_tail(12)
        if tail.strip():
            print("  roundtable server log (last lines):\n    " + tail.replace("\n", "\n    "))
    if args.skip_bare:
        return ours, None
    bare_port = free_port()
    bare = start_bare(tmp, bare_port, script=Path(__file__).resolve())
    log(f"bare relay serving on 127.0.0.1:{bare_port} (pid {bare.proc.pid})")
    try:
        urls = Urls(f"ws://127.0.0.1:{bare_port}", "", bare=True)
        theirs = await measure_target("bare", bare, urls, seats, tracks, args, log, False)
    finally:
        stop_server(bare)
    return ours, theirs


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.serve_bare:
        serve_bare(args.port)
        return 0
    raise_fd_limit()
    started = time.monotonic()

    def log(message: str) -> None:
        print(f"{time.monotonic() - started:7.1f}s  {message}", flush=True)

    tmp = Path(tempfile.mkdtemp(prefix="rt-bench-voice-"))
    try:
        clients = PER_ROOM * args.rooms
        database_url, world = make_database(tmp, clients=clients, groups=args.rooms)
        seats = seating(world, args.rooms)
        log(f"database in {tmp}: {args.rooms} groups of {PER_ROOM}, an open breakout")
        ours, bare = run_loop(measure_all(args, tmp, database_url, seats, log))
        report(ours, bare, args)
        return 0
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        signal.signal(signal.SIGTERM, signal.default_int_handler)
        sys.exit(main())
