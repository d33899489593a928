"""Live-session benchmark: many WebSocket clients chatting in breakout rooms, against the
real app and, in the same run, against a bare `websockets` broadcast server (the ceiling).

    python bench/realtime.py                 # 1,000 clients, 125 groups of 8, 200 msg/s
    python bench/realtime.py --quick         # 80 clients, 10 groups, 40 msg/s, short phases

What it does, all on 127.0.0.1:
  1. a fresh SQLite database in a temporary folder, migrated with `alembic upgrade head`,
     holding one programme, one session, the groups, one participant per client (each in a
     group) and an open breakout, so that each participant's room is their group's room;
  2. the app under uvicorn in its own process (one process: the embedded default, with
     SQLite and the in-process broker);
  3. client processes (asyncio + the `websockets` client), each client with its own
     session cookie, following its room channel and the plenary channel from "now", and
     sending chat as the page does: the composer's form post (`POST .../live/chat` with
     `HX-Request`, over kept-alive HTTP/1.1 connections), answered 204 with the message's id;
  4. phases: connect (time to connect everyone), idle (bytes each client receives while
     nothing happens: heartbeats and pings), warm-up, measure, drain;
  5. the same clients, rates and measurements against a bare broadcast server that keeps
     rooms in a dict and sends each chat frame to the room's members: no database, no
     authorization, no templates, and no HTTP (it is a `websockets` server: its clients
     send each message as a frame on their WebSocket, answered with an ack frame).

Offered load: `--rate` chat messages per second in total, of which `--plenary-rate` go to
the plenary (each delivered to every client) and the rest to rooms (each delivered to the
room's 8 members, the sender included). Senders take turns in a shuffled order, so each
person sends one message every clients/rate seconds, well under the per-person limit of
5 messages in 5 seconds. Each text carries its send time (CLOCK_MONOTONIC, which all
processes on one Linux machine share); a receiver's delivery latency is its receive time
minus that. Deliveries still missing after the drain count as infinitely late in the
percentiles.

The last line is machine-readable:
RESULT clients=<held> rate=<msgs/s delivered> p50_ms=<..> p99_ms=<..> rss_mb=<..> bare_ratio=<..>
       cpu_per_delivery_ratio=<..>  (one line: the server's CPU time per delivery, ours / bare)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import html
import json
import math
import multiprocessing as mp
import os
import random
import re
import resource
import shutil
import signal
import socket
import string
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# Run as a script, this file's folder comes first on the path and its name would hide the
# `realtime` package the app imports: look in the project root instead.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(ROOT))
SECRET = "bench-secret-key-" + "x" * 40
TEXT_PATTERN = re.compile(r"bench (\w+) (\d+)")
CSRF_VALUE = "bench-csrf"
NOFILE = 16384
# Before the idle window: events that the joins caused (presence, coalesced) arrive first.
IDLE_SETTLE_SECONDS = 5.0


# --------------------------------------------------------------------------- helpers


def raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = NOFILE if hard == resource.RLIM_INFINITY else min(NOFILE, hard)
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def proc_status(pid: int, key: str) -> int:
    """A kB figure from /proc/<pid>/status (VmRSS, VmHWM), in bytes; 0 if gone."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def cpu_seconds(pid: int, thread: int | None = None) -> float:
    """CPU seconds (user + system) of a process, or of one of its threads."""
    path = f"/proc/{pid}/stat" if thread is None else f"/proc/{pid}/task/{thread}/stat"
    try:
        with open(path) as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except OSError:
        return 0.0


def machine_busy_seconds() -> float:
    """CPU seconds spent by every process on the machine (all cores), from /proc/stat."""
    try:
        with open("/proc/stat") as fh:
            ticks = [int(x) for x in fh.readline().split()[1:]]
    except OSError:
        return 0.0
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)
    return (sum(ticks[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def percentile(sorted_values: Sequence[float], q: float) -> float:
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(q * len(sorted_values)))
    return sorted_values[rank - 1]


def ms(value: float) -> str:
    if math.isnan(value):
        return "n/a"
    if math.isinf(value):
        return "inf"
    return f"{value:.1f}"


class RssSampler:
    """Samples a process's resident memory every half second; VmHWM gives the true peak."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            self.peak = max(self.peak, proc_status(self.pid, "VmRSS"))

    def stop(self) -> int:
        """Stop sampling; returns the peak resident memory in bytes (call while alive)."""
        self.peak = max(self.peak, proc_status(self.pid, "VmHWM"), proc_status(self.pid, "VmRSS"))
        self._stop.set()
        self._thread.join(2)
        return self.peak


# --------------------------------------------------------------------------- database


@dataclass
class World:
    programme_id: int
    session_id: int
    # (user id, group id) per client, in client order.
    seats: list[tuple[int, int]]


def make_database(tmp: Path, *, clients: int, groups: int) -> tuple[str, World]:
    url = f"sqlite:///{tmp / 'bench.db'}"
    env = {**os.environ, "DATABASE_URL": url, "SECRET_KEY": SECRET}
    subprocess.run(
        [sys.executable, "-m", "alembic", "upgrade", "head"],
        cwd=ROOT,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import create_engine
    from sqlalchemy.orm import Session

    from app.live.models import Breakout
    from app.models import Group, Membership, Programme, ProgrammeSession, Role, User

    now = datetime.now(UTC)
    engine = create_engine(url)
    with Session(engine) as db:
        programme = Programme(
            title="Benchmark programme", timezone="Europe/London", group_capacity=8
        )
        db.add(programme)
        db.flush()
        session = ProgrammeSession(
            programme_id=programme.id,
            title="Benchmark session",
            starts_at=now - timedelta(minutes=10),
            ends_at=now + timedelta(hours=3),
        )
        group_rows = [
            Group(programme_id=programme.id, name=f"Group {i + 1:03d}", position=i)
            for i in range(groups)
        ]
        db.add(session)
        db.add_all(group_rows)
        db.flush()
        users = [
            User(display_name=f"Bench Person {i + 1:04d}", pronouns="they/them")
            for i in range(clients)
        ]
        db.add_all(users)
        db.flush()
        seats = []
        for i, user in enumerate(users):
            group = group_rows[i % groups]
            db.add(
                Membership(
                    user_id=user.id,
                    programme_id=programme.id,
                    role=Role.PARTICIPANT.value,
                    group_id=group.id,
                )
            )
            seats.append((user.id, group.id))
        db.add(Breakout(session_id=session.id, opened_at=now, ends_at=now + timedelta(hours=1)))
        db.commit()
        world = World(programme_id=programme.id, session_id=session.id, seats=seats)
    engine.dispose()
    return url, world


# --------------------------------------------------------------------------- servers


@dataclass
class Server:
    name: str
    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path
    sampler: RssSampler | None = None

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def _child_limits() -> None:
    raise_fd_limit()


def wait_listening(server: Server, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(f"{server.name} exited early:\n{server.log_tail()}")
        with (
            contextlib.suppress(OSError),
            socket.create_connection(("127.0.0.1", server.port), 0.5),
        ):
            return
        time.sleep(0.1)
    raise RuntimeError(f"{server.name} did not start listening:\n{server.log_tail()}")


def start_app(
    tmp: Path, database_url: str, port: int, ws: str, model_path: Path | None = None
) -> Server:
    """The app under uvicorn; without `model_path`, with no Vosk model (no captions)."""
    env = {
        **os.environ,
        "ENVIRONMENT": "production",
        "SECRET_KEY": SECRET,
        "DATABASE_URL": database_url,
        "VOSK_MODEL_PATH": str(model_path or "/nonexistent"),
        "UPLOAD_DIR": str(tmp / "uploads"),
        "BASE_URL": f"http://127.0.0.1:{port}",
    }
    env.pop("REDIS_URL", None)
    log_path = tmp / "app.log"
    command = [sys.executable, "-m", "uvicorn", "app.main:app", "--host", "127.0.0.1"]
    command += ["--port", str(port), "--ws", ws, "--log-level", "warning"]
    # As scripts/serve runs it: no per-message compression (small frames; CPU and memory
    # per connection matter more). The bare server below does the same.
    command += ["--ws-per-message-deflate", "false"]
    proc = subprocess.Popen(  # noqa: S603 - our own command line
        command,
        cwd=ROOT,
        env=env,
        stdout=log_path.open("wb"),
        stderr=subprocess.STDOUT,
        preexec_fn=_child_limits,  # noqa: PLW1509 - only sets a resource limit
    )
    server = Server("roundtable", proc, port, log_path)
    wait_listening(server)
    server.sampler = RssSampler(proc.pid)
    return server


def start_bare(tmp: Path, port: int, script: Path | None = None) -> Server:
    """The bare server: `script` (this one by default) run with `--serve-bare --port`."""
    log_path = tmp / "bare.log"
    script = script or Path(__file__).resolve()
    proc = subprocess.Popen(  # noqa: S603 - a bench script, as the bare server
        [sys.executable, str(script), "--serve-bare", "--port", str(port)],
        cwd=ROOT,
        stdout=log_path.open("wb"),
        stderr=subprocess.STDOUT,
        preexec_fn=_child_limits,  # noqa: PLW1509
    )
    server = Server("bare websockets", proc, port, log_path)
    wait_listening(server)
    server.sampler = RssSampler(proc.pid)
    return server


def stop_server(server: Server | None) -> None:
    if server is None or server.proc.poll() is not None:
        return
    server.proc.send_signal(signal.SIGINT)
    try:
        server.proc.wait(10)
    except subprocess.TimeoutExpired:
        server.proc.kill()
        server.proc.wait(5)


def serve_bare(port: int) -> None:
    """The ceiling: rooms in a dict, each chat frame sent to the room's members as the same
    kind of compact JSON with a small escaped fragment. No database, no authorization."""
    from websockets.asyncio.server import broadcast, serve

    rooms: dict[str, set[Any]] = defaultdict(set)
    seqs: Counter[str] = Counter()
    message_ids = iter(range(1, 1 << 62))

    async def handler(ws: Any) -> None:
        try:
            hello = json.loads(await asyncio.wait_for(ws.recv(), 10))
        except Exception:
            return
        channels = [c for c in hello.get("cursors", {}) if isinstance(c, str)][:16]
        for channel in channels:
            rooms[channel].add(ws)
        try:
            await ws.send('{"t":"hello","transport":"websocket"}')
            async for raw in ws:
                frame = json.loads(raw)
                if frame.get("type") != "chat.send":
                    continue
                channel = frame.get("channel")
                if channel not in channels:
                    continue
                seqs[channel] += 1
                mid = next(message_ids)
                text = html.escape(str(frame.get("text")))
                fragment = (
                    f'<li class="msg" id="m{mid}"><p class="meta"><b>Someone</b> '
                    f'<time>12:00</time></p><p class="text">{text}</p></li>'
                )
                wire = json.dumps(
                    {
                        "c": channel,
                        "i": seqs[channel],
                        "t": "chat.message",
                        "s": "append",
                        "h": fragment,
                    },
                    separators=(",", ":"),
                    ensure_ascii=False,
                )
                broadcast(rooms[channel], wire)
                await ws.send(
                    json.dumps({"t": "ack", "client_id": frame.get("client_id"), "id": mid})
                )
        except Exception:  # noqa: S110 - a client leaving is not an error here
            pass
        finally:
            for channel in channels:
                rooms[channel].discard(ws)

    async def main() -> None:
        stop = asyncio.get_running_loop().create_future()
        for sig in (signal.SIGINT, signal.SIGTERM):
            asyncio.get_running_loop().add_signal_handler(sig, stop.set_result, None)
        async with serve(handler, "127.0.0.1", port, max_size=8192, backlog=2048, compression=None):
            await stop

    raise_fd_limit()
    run_loop(main())


def run_loop(coro: Any) -> Any:
    try:
        import uvloop

        return uvloop.run(coro)
    except ImportError:
        return asyncio.run(coro)


class Profiler:
    """py-spy, if installed, recording the server while a phase runs (collapsed stacks)."""

    def __init__(self, pid: int, path: Path | None) -> None:
        self.proc: subprocess.Popen[bytes] | None = None
        self.path = path
        if path is None:
            return
        if shutil.which("py-spy") is None:
            print("  (py-spy is not installed: no profile)")
            return
        command = ["py-spy", "record", "--pid", str(pid), "--rate", "200", "--format", "raw"]
        command += ["--threads", "--nonblocking", "-o", str(path)]
        self.proc = subprocess.Popen(  # noqa: S603 - py-spy on our own server
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


# --------------------------------------------------------------------------- clients


@dataclass
class ClientSpec:
    index: int
    cookie: str
    room: str


@dataclass
class Client:
    spec: ClientSpec
    ws: Any = None
    task: asyncio.Task[None] | None = None
    closed_code: int | None = None


@dataclass
class PhaseState:
    """What receivers record during one load phase."""

    t0: int
    t1: int
    deliveries: list[tuple[str, int]] = field(default_factory=list)
    in_window: Counter[str] = field(default_factory=Counter)
    acks: dict[str, int] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ChatPost:
    """How a client sends chat to the app: the composer's form post, with the CSRF token
    and cookie a page has."""

    url: str
    csrf_token: str
    csrf_cookie: str


class FormPoster:
    """Form posts over a few kept-alive HTTP/1.1 connections, written by hand: a general
    client (httpx) spends a few milliseconds of the client process's CPU on each post, and
    at hundreds of posts a second the clients, not the server, became what was measured.
    Each post is what the page's htmx composer sends: the form, the cookies, the CSRF
    header and HX-Request."""

    CONNECTIONS = 64

    def __init__(self, url: str) -> None:
        parts = urllib.parse.urlsplit(url)
        self.host, self.port, self.path = parts.hostname or "127.0.0.1", parts.port, parts.path
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self.slots = asyncio.Semaphore(self.CONNECTIONS)

    async def post(self, form: dict[str, str], *, cookie: str, csrf: str) -> int:
        body = urllib.parse.urlencode(form).encode()
        head = (
            f"POST {self.path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\n"
            f"Content-Length: {len(body)}\r\nCookie: {cookie}\r\n"
            f"X-CSRF-Token: {csrf}\r\nHX-Request: true\r\n\r\n"
        ).encode()
        async with self.slots:
            reused = bool(self.idle)
            try:
                return await self._send(head + body, reused=reused)
            except (ConnectionError, asyncio.IncompleteReadError):
                if not reused:
                    raise
                # The server ended a kept-alive connection that had waited too long (uvicorn
                # after 5 s): sent again on a new one, as a browser does. The message's
                # client id makes a second copy impossible.
                return await self._send(head + body, reused=False)

    async def _send(self, request: bytes, *, reused: bool) -> int:
        if reused:
            reader, writer = self.idle.pop()
        else:
            reader, writer = await asyncio.open_connection(self.host, self.port)
        try:
            writer.write(request)
            status, keep = await self._response(reader)
        except BaseException:
            writer.close()
            raise
        if keep:
            self.idle.append((reader, writer))
        else:
            writer.close()
        return status

    @staticmethod
    async def _response(reader: asyncio.StreamReader) -> tuple[int, bool]:
        """The status, and whether the connection may be used again (the body is read)."""
        status_line = await reader.readline()
        if not status_line:
            raise ConnectionError("the server closed the connection")
        status = int(status_line.split()[1])
        length, keep = 0, True
        while (line := await reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            name = name.strip().lower()
            if name == "content-length":
                length = int(value)
            elif name == "connection" and value.strip().lower() == "close":
                keep = False
        if length:
            await reader.readexactly(length)
        return status, keep

    async def close(self) -> None:
        for _, writer in self.idle:
            writer.close()
        self.idle.clear()


class Worker:
    """One client process: connects its share of the clients and runs the phases."""

    def __init__(
        self, url: str, specs: list[ClientSpec], plenary: str, post: ChatPost | None = None
    ) -> None:
        self.url = url
        self.post = post
        self.http: Any = None
        self.posting: set[asyncio.Task[None]] = set()
        self.plenary = plenary
        self.clients = {s.index: Client(s) for s in specs}
        self.bytes_in = 0
        self.frames_in = 0
        self.frame_types: Counter[str] = Counter()
        self.stray_errors: Counter[str] = Counter()
        self.phase: PhaseState | None = None
        self.sent_at: dict[str, int] = {}

    def connection_class(self) -> type:
        from websockets.asyncio.client import ClientConnection

        worker = self

        class CountingConnection(ClientConnection):
            # When this connection's bytes were read from the socket: latency is measured
            # there, before the client's own parsing and task switching, which a burst of
            # plenary frames would otherwise add to the figures.
            arrived_ns = 0

            def data_received(self, data: bytes) -> None:
                self.arrived_ns = time.monotonic_ns()
                worker.bytes_in += len(data)
                super().data_received(data)

        return CountingConnection

    async def connect_all(self, concurrency: int) -> dict[str, Any]:
        from websockets.asyncio.client import connect

        gate = asyncio.Semaphore(concurrency)
        failures: Counter[str] = Counter()
        times: list[float] = []
        cls = self.connection_class()

        async def one(client: Client) -> None:
            async with gate:
                started = time.monotonic()
                try:
                    ws = await connect(
                        self.url,
                        additional_headers={"Cookie": f"rt_session={client.spec.cookie}"},
                        open_timeout=60,
                        ping_interval=None,
                        close_timeout=2,
                        proxy=None,
                        create_connection=cls,
                    )
                    await ws.send(
                        json.dumps(
                            {
                                "type": "hello",
                                "cursors": {client.spec.room: None, self.plenary: None},
                            }
                        )
                    )
                    while True:
                        first = json.loads(await asyncio.wait_for(ws.recv(), 60))
                        if first.get("t") == "hello":
                            break
                        failures[f"before hello: {first.get('t')}"] += 1
                except Exception as exc:  # noqa: BLE001 - every failure is counted
                    failures[type(exc).__name__ + ": " + str(exc)[:80]] += 1
                    return
                times.append(time.monotonic() - started)
                client.ws = ws
                client.task = asyncio.create_task(self.receive(client))

        started = time.monotonic()
        await asyncio.gather(*(one(c) for c in self.clients.values()))
        times.sort()
        return {
            "held": sorted(i for i, c in self.clients.items() if c.ws is not None),
            "failures": dict(failures),
            "elapsed": time.monotonic() - started,
            "connect_ms": [t * 1000 for t in times],
        }

    async def receive(self, client: Client) -> None:
        ws = client.ws
        try:
            async for raw in ws:
                # The latest read on this connection: never earlier than this frame's.
                now = ws.arrived_ns
                self.frames_in += 1
                phase = self.phase
                if raw.startswith('{"c"'):
                    match = TEXT_PATTERN.search(raw)
                    if match is None:
                        self.frame_types["event"] += 1
                        continue
                    self.frame_types["chat"] += 1
                    if phase is None:
                        continue
                    key, sent = match.group(1), int(match.group(2))
                    kind = "plenary" if key[1] == "p" else "room"
                    if phase.t0 <= now <= phase.t1:
                        phase.in_window[kind] += 1
                    if phase.t0 <= sent <= phase.t1:
                        phase.deliveries.append((key, (now - sent) // 1000))
                    continue
                frame = json.loads(raw)
                kind = frame.get("t", "?")
                self.frame_types[kind] += 1
                client_id = frame.get("client_id")
                if kind == "ack" and phase is not None and client_id in self.sent_at:
                    phase.acks[client_id] = (now - self.sent_at[client_id]) // 1000
                elif kind == "error":
                    if phase is not None and client_id in self.sent_at:
                        phase.errors[client_id] = str(frame.get("code"))
                    else:
                        self.stray_errors[str(frame.get("code"))] += 1
        except Exception:  # noqa: BLE001, S110 - the close code says what happened
            pass
        finally:
            client.closed_code = getattr(ws, "close_code", None) or -1

    def stats(self) -> dict[str, Any]:
        return {
            "bytes_in": self.bytes_in,
            "frames_in": self.frames_in,
            "frame_types": dict(self.frame_types),
            "open": sum(
                1 for c in self.clients.values() if c.ws is not None and c.closed_code is None
            ),
        }

    async def run_phase(self, plan: dict[str, Any]) -> dict[str, Any]:
        """Send this worker's share of the schedule; record what arrives until the drain ends."""
        phase = PhaseState(t0=plan["t0"], t1=plan["t1"])
        self.phase = phase
        schedule: list[tuple[int, int, str, str]] = []  # (time, client, channel, key)
        for kind, rate, order in (
            ("r", plan["room_rate"], plan["order"]),
            ("p", plan["plenary_rate"], plan["plenary_order"]),
        ):
            if rate <= 0:
                continue
            count = int((plan["t_stop"] - plan["t_start"]) / 1e9 * rate)
            for k in range(count):
                index = order[k % len(order)]
                client = self.clients.get(index)
                if client is None:
                    continue
                when = plan["t_start"] + int(k * 1e9 / rate)
                channel = client.spec.room if kind == "r" else self.plenary
                schedule.append((when, index, channel, f"{plan['tag']}{kind}{k}"))
        schedule.sort()
        lags: list[int] = []
        sent = skipped = 0
        sent_keys: list[tuple[str, str, str]] = []
        for when, index, channel, key in schedule:
            delay = (when - time.monotonic_ns()) / 1e9
            if delay > 0:
                await asyncio.sleep(delay)
            client = self.clients[index]
            if client.ws is None or client.closed_code is not None:
                skipped += 1
                continue
            now = time.monotonic_ns()
            lags.append((now - when) // 1000)
            client_id = f"bench-{key}"
            self.sent_at[client_id] = now
            message = {"channel": channel, "text": f"bench {key} {now}", "client_id": client_id}
            if self.post is not None:
                task = asyncio.create_task(self.post_form(client, message, now))
                self.posting.add(task)
                task.add_done_callback(self.posting.discard)
            else:
                try:
                    await client.ws.send(json.dumps({"type": "chat.send", **message}))
                except Exception:  # noqa: BLE001
                    skipped += 1
                    continue
            sent += 1
            if plan["t0"] <= now <= plan["t1"]:
                sent_keys.append((key, channel, client_id))
        remaining = (plan["t_end"] - time.monotonic_ns()) / 1e9
        if remaining > 0:
            await asyncio.sleep(remaining)
        for task in list(self.posting):  # unanswered after the drain: no answer
            task.cancel()
        self.phase = None
        window = [
            (key, channel, phase.acks.get(client_id), phase.errors.get(client_id))
            for key, channel, client_id in sent_keys
        ]
        lags.sort()
        return {
            "sent": sent,
            "skipped": skipped,
            "window": window,
            "deliveries": phase.deliveries,
            "in_window": dict(phase.in_window),
            "lag_p99_ms": percentile(lags, 0.99) / 1000 if lags else 0.0,
            "lag_max_ms": lags[-1] / 1000 if lags else 0.0,
            "closed": dict(
                Counter(c.closed_code for c in self.clients.values() if c.closed_code is not None)
            ),
            "stray_errors": dict(self.stray_errors),
        }

    async def post_form(self, client: Client, message: dict[str, str], sent_ns: int) -> None:
        """The page's chat post; its answer is the sender's acknowledgement (204) or a
        refusal (its status)."""
        assert self.post is not None
        if self.http is None:
            self.http = FormPoster(self.post.url)
        cookie = f"rt_session={client.spec.cookie}; {self.post.csrf_cookie}"
        try:
            status = await self.http.post(message, cookie=cookie, csrf=self.post.csrf_token)
            outcome = "ack" if status == 204 else str(status)
        except Exception as exc:  # noqa: BLE001 - every failure is counted
            outcome = type(exc).__name__
        now = time.monotonic_ns()
        phase, client_id = self.phase, message["client_id"]
        if phase is None:
            return
        if outcome == "ack":
            phase.acks[client_id] = (now - sent_ns) // 1000
        else:
            phase.errors[client_id] = outcome

    async def close_all(self) -> None:
        if self.http is not None:
            await self.http.close()

        async def one(client: Client) -> None:
            if client.ws is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(client.ws.close(), 3)
            if client.task is not None:
                client.task.cancel()

        await asyncio.gather(*(one(c) for c in self.clients.values()))


def worker_process(
    conn: Any,
    url: str,
    specs: list[ClientSpec],
    plenary: str,
    concurrency: int,
    post: ChatPost | None,
) -> None:
    raise_fd_limit()

    async def main() -> None:
        worker = Worker(url, specs, plenary, post)
        while True:
            command, arg = await asyncio.to_thread(conn.recv)
            if command == "connect":
                conn.send(await worker.connect_all(concurrency))
            elif command == "stats":
                conn.send(worker.stats())
            elif command == "run":
                conn.send(await worker.run_phase(arg))
            elif command == "close":
                await worker.close_all()
                conn.send("closed")
                return

    run_loop(main())


# --------------------------------------------------------------------------- one target


@dataclass
class Figures:
    name: str
    clients: int
    held: int = 0
    connect_s: float = 0.0
    connect_p99_ms: float = math.nan
    connect_failures: dict[str, int] = field(default_factory=dict)
    idle_bytes_per_min: float = math.nan
    idle_frames_per_min: float = math.nan
    idle_kinds: dict[str, float] = field(default_factory=dict)
    idle_cpu: float = math.nan
    phases: dict[str, dict[str, Any]] = field(default_factory=dict)
    rss_mb: float = 0.0
    rss_start_mb: float = 0.0
    rss_connected_mb: float = 0.0
    open_at_end: int = 0
    notes: list[str] = field(default_factory=list)


class Pool:
    """The client processes, driven over pipes."""

    def __init__(
        self,
        url: str,
        specs: list[ClientSpec],
        plenary: str,
        workers: int,
        concurrency: int,
        post: ChatPost | None = None,
    ) -> None:
        ctx = mp.get_context("spawn")
        self.pipes = []
        self.procs = []
        for w in range(workers):
            parent, child = ctx.Pipe()
            share = specs[w::workers]
            proc = ctx.Process(
                target=worker_process,
                args=(child, url, share, plenary, concurrency, post),
                daemon=True,
            )
            proc.start()
            self.pipes.append(parent)
            self.procs.append(proc)

    def ask(self, command: str, arg: Any = None, timeout: float = 600) -> list[Any]:
        self.tell(command, arg)
        return self.answers(command, timeout)

    def tell(self, command: str, arg: Any = None) -> None:
        for pipe in self.pipes:
            pipe.send((command, arg))

    def answers(self, command: str, timeout: float = 600) -> list[Any]:
        out = []
        for pipe, proc in zip(self.pipes, self.procs, strict=True):
            if not pipe.poll(timeout):
                raise RuntimeError(f"client process {proc.pid} did not answer {command!r}")
            out.append(pipe.recv())
        return out

    def cpu(self) -> float:
        return sum(cpu_seconds(p.pid) for p in self.procs if p.pid)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.ask("close", timeout=20)
        for proc in self.procs:
            proc.join(5)
            if proc.is_alive():
                proc.kill()
                proc.join(5)


def run_target(
    name: str,
    server: Server,
    url: str,
    specs: list[ClientSpec],
    plenary: str,
    args: argparse.Namespace,
    rng: random.Random,
    log: Any,
    post: ChatPost | None = None,
) -> Figures:
    figures = Figures(name=name, clients=len(specs))
    figures.rss_start_mb = proc_status(server.proc.pid, "VmRSS") / 2**20
    pool = Pool(url, specs, plenary, args.workers, args.connect_concurrency, post)
    try:
        log(f"[{name}] connecting {len(specs)} clients ...")
        profiler = Profiler(server.proc.pid, profile_path(args, name, "connect"))
        results = pool.ask("connect")
        profiler.stop()
        held = sorted(i for r in results for i in r["held"])
        figures.held = len(held)
        figures.connect_s = max(r["elapsed"] for r in results)
        connect_ms = sorted(t for r in results for t in r["connect_ms"])
        figures.connect_p99_ms = percentile(connect_ms, 0.99)
        for r in results:
            for reason, n in r["failures"].items():
                figures.connect_failures[reason] = figures.connect_failures.get(reason, 0) + n
        log(f"[{name}] held {figures.held}/{len(specs)} in {figures.connect_s:.1f} s")
        figures.rss_connected_mb = proc_status(server.proc.pid, "VmRSS") / 2**20
        if not held:
            raise RuntimeError(f"{name}: no client could connect: {figures.connect_failures}")

        if args.idle_seconds > 0 and (name == "roundtable" or args.bare_idle):
            log(f"[{name}] idle for {args.idle_seconds:g} s ...")
            time.sleep(IDLE_SETTLE_SECONDS)
            before = pool.ask("stats")
            cpu0 = cpu_seconds(server.proc.pid)
            time.sleep(args.idle_seconds)
            figures.idle_cpu = (cpu_seconds(server.proc.pid) - cpu0) / args.idle_seconds * 100
            after = pool.ask("stats")
            nbytes = sum(a["bytes_in"] - b["bytes_in"] for a, b in zip(after, before, strict=True))
            frames = sum(
                a["frames_in"] - b["frames_in"] for a, b in zip(after, before, strict=True)
            )
            per_client_min = 60 / args.idle_seconds / figures.held
            figures.idle_bytes_per_min = nbytes * per_client_min
            figures.idle_frames_per_min = frames * per_client_min
            kinds: Counter[str] = Counter()
            for a, b in zip(after, before, strict=True):
                kinds.update(a["frame_types"])
                kinds.subtract(b["frame_types"])
            figures.idle_kinds = {k: round(v * per_client_min, 2) for k, v in kinds.items() if v}

        room_members: Counter[str] = Counter(specs[i].room for i in held)
        phases = [(f"step {rate:g}", rate) for rate in args.ladder]
        phases.append(("fixed", args.rate))
        if args.saturate:
            phases.append(("saturate", args.saturate))
        for tag, (phase_name, rate) in zip(string.ascii_lowercase, phases, strict=False):
            wait_idle(server, log)
            figures.phases[phase_name] = measure_phase(
                name, phase_name, tag, rate, pool, server, held, specs, room_members, args, rng, log
            )
        figures.open_at_end = sum(r["open"] for r in pool.ask("stats"))
        if server.sampler is not None:
            figures.rss_mb = server.sampler.stop() / 2**20
    finally:
        pool.close()
    return figures


def wait_idle(server: Server, log: Any, limit: float = 120.0) -> None:
    """Wait until the server has worked off any backlog (under 15% of a core for a second)."""
    started = time.monotonic()
    while time.monotonic() - started < limit:
        before = cpu_seconds(server.proc.pid)
        time.sleep(1.0)
        if cpu_seconds(server.proc.pid) - before < 0.15:
            return
    log(f"[{server.name}] still busy after {limit:g} s; measuring anyway")


def profile_path(args: argparse.Namespace, name: str, phase: str) -> Path | None:
    if not args.profile:
        return None
    folder = Path(args.profile)
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{name}-{phase}.txt"


def measure_phase(
    name: str,
    phase_name: str,
    tag: str,
    rate: float,
    pool: Pool,
    server: Server,
    held: list[int],
    specs: list[ClientSpec],
    room_members: Counter[str],
    args: argparse.Namespace,
    rng: random.Random,
    log: Any,
) -> dict[str, Any]:
    plenary_rate = min(args.plenary_rate, rate)
    room_rate = rate - plenary_rate
    order = list(held)
    rng.shuffle(order)
    plenary_order = list(held)
    rng.shuffle(plenary_order)
    seconds = args.seconds if phase_name == "fixed" else args.step_seconds
    t_start = time.monotonic_ns() + 1_000_000_000
    t0 = t_start + int(args.warmup * 1e9)
    t1 = t0 + int(seconds * 1e9)
    plan = {
        "tag": tag,
        "room_rate": room_rate,
        "plenary_rate": plenary_rate,
        "order": order,
        "plenary_order": plenary_order,
        "t_start": t_start,
        "t0": t0,
        "t1": t1,
        "t_stop": t1,
        "t_end": t1 + int(args.drain * 1e9),
    }
    log(
        f"[{name}] {phase_name}: offering {rate:g} msg/s "
        f"({room_rate:g} room + {plenary_rate:g} plenary), "
        f"{args.warmup:g} s warm-up, {seconds:g} s measured, {args.drain:g} s drain ..."
    )
    pool.tell("run", plan)
    time.sleep(max(0.0, (t0 - time.monotonic_ns()) / 1e9))
    profiler = Profiler(server.proc.pid, profile_path(args, name, phase_name))
    pool_cpu0, server_cpu0, busy0 = pool.cpu(), cpu_seconds(server.proc.pid), machine_busy_seconds()
    time.sleep(max(0.0, (t1 - time.monotonic_ns()) / 1e9))
    pool_cpu1, server_cpu1, busy1 = pool.cpu(), cpu_seconds(server.proc.pid), machine_busy_seconds()
    profiler.stop()
    results = pool.answers("run", timeout=seconds + args.warmup + args.drain + 120)

    window = [w for r in results for w in r["window"]]
    errors = Counter(err for _, _, _, err in window if err)
    expected: dict[str, int] = {}
    for key, channel, _ack, err in window:
        if err:
            continue
        expected[key] = len(held) if channel.endswith(":plenary") else room_members[channel]
    got: Counter[str] = Counter()
    latencies: dict[str, list[float]] = {"room": [], "plenary": []}
    for r in results:
        for key, lat_us in r["deliveries"]:
            got[key] += 1
            latencies["plenary" if "p" in key[1:2] else "room"].append(lat_us / 1000)
    missing = {"room": 0, "plenary": 0}
    for key, n in expected.items():
        kind = "plenary" if key[1] == "p" else "room"
        missing[kind] += max(0, n - got[key])
    for kind in latencies:
        latencies[kind].extend([math.inf] * missing[kind])
        latencies[kind].sort()
    both = sorted(latencies["room"] + latencies["plenary"])
    acks = sorted(ack / 1000 for _, _, ack, _ in window if ack is not None)
    no_answer = sum(1 for _, _, ack, err in window if ack is None and err is None)
    in_window: Counter[str] = Counter()
    for r in results:
        in_window.update(r["in_window"])
    closed: Counter[Any] = Counter()
    for r in results:
        closed.update(r["closed"])
    stray: Counter[str] = Counter()
    for r in results:
        stray.update(r["stray_errors"])
    sent_window = len(window)
    out = {
        "offered": rate,
        "room_rate": room_rate,
        "plenary_rate": plenary_rate,
        "seconds": seconds,
        "sent_per_s": sent_window / seconds,
        "delivered_per_s": sum(in_window.values()) / seconds,
        "room_per_s": in_window["room"] / seconds,
        "plenary_per_s": in_window["plenary"] / seconds,
        "expected": sum(expected.values()),
        "received": sum(min(n, got[k]) for k, n in expected.items()),
        "missing": sum(missing.values()),
        "p50": percentile(both, 0.50),
        "p99": percentile(both, 0.99),
        "max": both[-1] if both else math.nan,
        "room_p50": percentile(latencies["room"], 0.50),
        "room_p99": percentile(latencies["room"], 0.99),
        "plenary_p50": percentile(latencies["plenary"], 0.50),
        "plenary_p99": percentile(latencies["plenary"], 0.99),
        "ack_p50": percentile(acks, 0.50),
        "ack_p99": percentile(acks, 0.99),
        "no_answer": no_answer,
        "errors": dict(errors),
        "stray_errors": dict(stray),
        "closed": {str(k): v for k, v in closed.items()},
        "lag_p99_ms": max(r["lag_p99_ms"] for r in results),
        "lag_max_ms": max(r["lag_max_ms"] for r in results),
        "server_cpu": (server_cpu1 - server_cpu0) / seconds * 100,
        "client_cpu": (pool_cpu1 - pool_cpu0) / seconds * 100,
        "other_cpu": max(
            0.0, (busy1 - busy0) - (server_cpu1 - server_cpu0) - (pool_cpu1 - pool_cpu0)
        )
        / seconds
        * 100,
        "load": os.getloadavg()[0],
    }
    # The server's CPU time for each delivery it made: the cost, whatever the load.
    out["cpu_us_per_delivery"] = (
        (server_cpu1 - server_cpu0) * 1e6 / (out["delivered_per_s"] * seconds)
        if out["delivered_per_s"]
        else math.nan
    )
    log(
        f"[{name}] {phase_name}: delivered {out['delivered_per_s']:.0f}/s, "
        f"p50 {ms(out['p50'])} ms, "
        f"p99 {ms(out['p99'])} ms, missing {out['missing']}, errors {dict(errors) or 0}"
    )
    return out


# --------------------------------------------------------------------------- report


def _cell(d: dict[str, Any], key: str, fmt: str) -> str:
    if not d:
        return ""
    if fmt == "ms":
        return ms(d[key])
    if fmt == "ms2":
        return f"{ms(d[key + '_p50'])} / {ms(d[key + '_p99'])}"
    if fmt == "lag":
        return f"{d['lag_p99_ms']:.1f} / {d['lag_max_ms']:.1f}"
    if fmt == "refused":
        return f"{sum(d['errors'].values())} / {d['no_answer']}"
    return fmt.format(d[key])


PHASE_ROWS = [
    ("messages sent per s (measured window)", "sent_per_s", "{:.1f}"),
    ("deliveries per s (all)", "delivered_per_s", "{:.0f}"),
    ("  room deliveries per s", "room_per_s", "{:.0f}"),
    ("  plenary deliveries per s", "plenary_per_s", "{:.0f}"),
    ("delivery latency p50 (ms)", "p50", "ms"),
    ("delivery latency p99 (ms)", "p99", "ms"),
    ("delivery latency max (ms)", "max", "ms"),
    ("  room p50 / p99 (ms)", "room", "ms2"),
    ("  plenary p50 / p99 (ms)", "plenary", "ms2"),
    ("sender's ack p50 / p99 (ms)", "ack", "ms2"),
    ("deliveries missing after the drain", "missing", "{}"),
    ("sends refused / unanswered", "errors", "refused"),
    ("server CPU (% of one core)", "server_cpu", "{:.0f}"),
    ("server CPU per delivery (µs)", "cpu_us_per_delivery", "{:.0f}"),
    ("client processes' CPU (% of one core)", "client_cpu", "{:.0f}"),
    ("other processes' CPU (% of one core)", "other_cpu", "{:.0f}"),
    ("machine load average (1 min)", "load", "{:.1f}"),
    ("client send lag p99 / max (ms)", "lag_p99_ms", "lag"),
]


def report(ours: Figures, bare: Figures | None, args: argparse.Namespace) -> None:
    def row(label: str, a: str, b: str = "") -> None:
        print(f"  {label:<40} {a:>18} {b:>18}")

    b = bare or Figures(name="-", clients=0)
    print()
    print(
        f"Live-session benchmark: {args.clients} clients in {args.groups} groups of "
        f"{args.clients // args.groups} + one plenary, loopback, one server process "
        f"(uvicorn --ws {args.ws}, SQLite, in-process broker)"
    )
    print(
        f"  {os.cpu_count()} cores shared by the server and {args.workers} client "
        f"process(es); {args.warmup:g} s warm-up, {args.seconds:g} s measured, "
        f"{args.drain:g} s drain; latency = receive - send, CLOCK_MONOTONIC"
    )
    print()
    row("", "roundtable", "bare websockets" if bare else "")
    row("connections held", f"{ours.held}/{ours.clients}", f"{b.held}/{b.clients}" if bare else "")
    row(
        "connections open at the end",
        f"{ours.open_at_end}/{ours.clients}",
        f"{b.open_at_end}/{b.clients}" if bare else "",
    )
    row("time to connect all (s)", f"{ours.connect_s:.1f}", f"{b.connect_s:.1f}" if bare else "")
    row("connect + hello p99 (ms)", ms(ours.connect_p99_ms), ms(b.connect_p99_ms) if bare else "")
    for phase_name, o in ours.phases.items():
        x = b.phases.get(phase_name, {})
        print(
            f"  -- {phase_name}: offered {o['offered']:g} msg/s "
            f"({o['room_rate']:g} to rooms, {o['plenary_rate']:g} to the plenary)"
        )
        for label, key, fmt in PHASE_ROWS:
            row(label, _cell(o, key, fmt), _cell(x, key, fmt))
        for who, d in (("roundtable", o), ("bare", x)):
            if d and (d["errors"] or d["closed"] or d["stray_errors"]):
                print(
                    f"     {who}: refused {d['errors']}, connections closed {d['closed']}, "
                    f"other errors {d['stray_errors']}"
                )
        if x.get("delivered_per_s"):
            row(
                "throughput ratio (ours / bare)",
                f"{o['delivered_per_s'] / x['delivered_per_s']:.2f}",
            )
            row(
                "CPU per delivery ratio (ours / bare)",
                f"{o['cpu_us_per_delivery'] / x['cpu_us_per_delivery']:.1f}",
            )
    row(
        "server RSS before clients (MB)",
        f"{ours.rss_start_mb:.0f}",
        f"{b.rss_start_mb:.0f}" if bare else "",
    )
    row(
        "server RSS when all connected (MB)",
        f"{ours.rss_connected_mb:.0f}",
        f"{b.rss_connected_mb:.0f}" if bare else "",
    )
    row("server peak RSS (MB)", f"{ours.rss_mb:.0f}", f"{b.rss_mb:.0f}" if bare else "")
    if not math.isnan(ours.idle_bytes_per_min):
        bare_idle = bare is not None and not math.isnan(b.idle_bytes_per_min)
        row(
            "idle: bytes received per client per min",
            f"{ours.idle_bytes_per_min:.0f}",
            f"{b.idle_bytes_per_min:.0f}" if bare_idle else "",
        )
        row(
            "idle: data frames per client per min",
            f"{ours.idle_frames_per_min:.1f}",
            f"{b.idle_frames_per_min:.1f}" if bare_idle else "",
        )
        row(
            "idle: server CPU (% of one core)",
            f"{ours.idle_cpu:.1f}",
            f"{b.idle_cpu:.1f}" if bare_idle else "",
        )
        print(
            f"     (over {args.idle_seconds:g} s: TCP payload incl. WebSocket framing, the app's "
            f"heartbeats and uvicorn's pings; data frames by type: {ours.idle_kinds})"
        )
    for who, f in (("roundtable", ours), ("bare", b)):
        if f.connect_failures:
            print(f"  {who} connect failures: {f.connect_failures}")
    fixed = ours.phases["fixed"]
    bare_fixed = b.phases.get("fixed")
    ratio = cpu_ratio = math.nan
    if bare_fixed and bare_fixed["delivered_per_s"]:
        ratio = fixed["delivered_per_s"] / bare_fixed["delivered_per_s"]
        cpu_ratio = fixed["cpu_us_per_delivery"] / bare_fixed["cpu_us_per_delivery"]
    targets = [
        ("all clients held", ours.held == ours.open_at_end == ours.clients),
        (f"p99 <= 50 ms at {args.rate:g} msg/s", fixed["p99"] <= 50),
        ("RSS <= 250 MB", ours.rss_mb <= 250),
        ("throughput >= half of bare", None if math.isnan(ratio) else ratio >= 0.5),
        (
            "CPU per delivery <= 3x bare",
            None if math.isnan(cpu_ratio) else cpu_ratio <= 3,
        ),
    ]
    verdicts = {True: "met", False: "NOT met", None: "not measured"}
    print("  targets: " + "; ".join(f"{label}: {verdicts[ok]}" for label, ok in targets))
    print(
        f"RESULT clients={min(ours.held, ours.open_at_end)} rate={fixed['delivered_per_s']:.0f} "
        f"p50_ms={ms(fixed['p50'])} p99_ms={ms(fixed['p99'])} rss_mb={ours.rss_mb:.0f} "
        f"bare_ratio={ratio:.2f} cpu_per_delivery_ratio={cpu_ratio:.1f}"
    )


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--groups", type=int, default=125)
    parser.add_argument(
        "--rate", type=float, default=200.0, help="chat messages offered per second, in total"
    )
    parser.add_argument("--plenary-rate", type=float, default=1.0, help="of which to the plenary")
    parser.add_argument("--seconds", type=float, default=20.0, help="measured window")
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--drain", type=float, default=5.0)
    parser.add_argument(
        "--idle-seconds", type=float, default=60.0, help="idle bandwidth window (0: skip)"
    )
    parser.add_argument(
        "--bare-idle", action="store_true", help="also measure idle bytes on the bare server"
    )
    parser.add_argument(
        "--saturate", type=float, default=0.0, help="then offer this rate too (capacity)"
    )
    parser.add_argument(
        "--ladder",
        type=lambda text: [float(x) for x in text.split(",") if x],
        default=[],
        metavar="R1,R2,..",
        help="first measure at each of these rates (lowest first), to see where latency breaks",
    )
    parser.add_argument(
        "--step-seconds", type=float, default=10.0, help="measured window of --ladder/--saturate"
    )
    parser.add_argument("--workers", type=int, default=2, help="client processes")
    parser.add_argument(
        "--connect-concurrency", type=int, default=50, help="handshakes in flight per process"
    )
    parser.add_argument("--port", type=int, default=0, help="the app's port (0: a free one)")
    parser.add_argument("--bare-port", type=int, default=0)
    parser.add_argument(
        "--ws", default="websockets-sansio", help="uvicorn's WebSocket implementation"
    )
    parser.add_argument(
        "--send",
        choices=("ws", "form"),
        default="ws",
        help="how the app's clients send chat: as the page does while its WebSocket is open "
        "(a chat.send frame), or the composer's form post (the fallbacks' way)",
    )
    parser.add_argument("--skip-bare", action="store_true")
    parser.add_argument(
        "--keep", action="store_true", help="keep the temporary folder (database, logs)"
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--profile",
        metavar="DIR",
        help="record the servers with py-spy (collapsed stacks) into DIR",
    )
    parser.add_argument(
        "--quick", action="store_true", help="80 clients, 10 groups, 40 msg/s, short phases"
    )
    parser.add_argument("--serve-bare", action="store_true", help=argparse.SUPPRESS)
    if "--quick" in (sys.argv[1:] if argv is None else argv):
        parser.set_defaults(
            clients=80, groups=10, rate=40.0, seconds=5.0, warmup=1.0, drain=2.0, idle_seconds=0.0
        )
    args = parser.parse_args(argv)
    if args.clients < 1 or args.groups < 1 or args.groups > args.clients:
        parser.error("need at least one client per group")
    rates = [args.rate, args.saturate, *args.ladder]
    if args.clients > 5000 or max(rates) > 5000 or args.seconds > 600 or len(args.ladder) > 8:
        parser.error("keep the benchmark bounded: at most 5,000 clients, 5,000 msg/s, 600 s")
    if max(rates) / args.clients * 5 > 4.5:
        parser.error("that rate would push senders into the 5 messages / 5 s limit; add clients")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.serve_bare:
        serve_bare(args.port)
        return 0
    raise_fd_limit()
    started = time.monotonic()

    def log(message: str) -> None:
        print(f"{time.monotonic() - started:7.1f}s  {message}", flush=True)

    rng = random.Random(args.seed)  # noqa: S311 - shuffles the senders, nothing secret
    tmp = Path(tempfile.mkdtemp(prefix="rt-bench-"))
    app: Server | None = None
    bare: Server | None = None
    try:
        log(
            f"database in {tmp}: {args.clients} participants, {args.groups} groups, "
            "an open breakout"
        )
        database_url, world = make_database(tmp, clients=args.clients, groups=args.groups)
        from app.security import CSRF_COOKIE, SessionClaims, Signer

        signer = Signer(SECRET)
        sid = world.session_id
        specs = [
            ClientSpec(
                i, signer.session_cookie(SessionClaims(user_id=uid, epoch=0)), f"s{sid}:g{gid}"
            )
            for i, (uid, gid) in enumerate(world.seats)
        ]
        plenary = f"s{sid}:plenary"
        path = f"/programmes/{world.programme_id}/sessions/{sid}/live/ws"

        port = args.port or free_port()
        app = start_app(tmp, database_url, port, args.ws)
        log(f"roundtable serving on 127.0.0.1:{port} (pid {app.proc.pid})")
        post = (
            ChatPost(
                url=f"http://127.0.0.1:{port}{path.removesuffix('/ws')}/chat",
                csrf_token=signer.csrf_token(CSRF_VALUE),
                csrf_cookie=f"{CSRF_COOKIE}={CSRF_VALUE}",
            )
            if args.send == "form"
            else None
        )
        ours = run_target(
            "roundtable", app, f"ws://127.0.0.1:{port}{path}", specs, plenary, args, rng, log, post
        )
        stop_server(app)
        if app.proc.returncode not in (0, None, -signal.SIGINT):
            ours.notes.append(f"server exit code {app.proc.returncode}")
        tail = app.log_tail(8)
        if tail.strip():
            print("  roundtable server log (last lines):\n    " + tail.replace("\n", "\n    "))
        app = None

        bare_figures = None
        if not args.skip_bare:
            bare_port = args.bare_port or free_port()
            bare = start_bare(tmp, bare_port)
            log(f"bare websockets serving on 127.0.0.1:{bare_port} (pid {bare.proc.pid})")
            bare_figures = run_target(
                "bare", bare, f"ws://127.0.0.1:{bare_port}{path}", specs, plenary, args, rng, log
            )
            stop_server(bare)
            bare = None
        report(ours, bare_figures, args)
        return 0
    finally:
        stop_server(app)
        stop_server(bare)
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
