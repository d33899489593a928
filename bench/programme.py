"""The whole programme live in one run: 80 participants in 10 breakout rooms of 8, one person
speaking in every room (two at once in one), voice to everyone, captions, chat, hands and
help requests, then the rooms closing and everyone back in the plenary. Side by side, in
the same run: the same speech through raw Vosk (its own process, fed in real time) and the
same voice through a bare `websockets` relay (bench/voice.py's).

    python bench/programme.py            # about 3 minutes of speech, then the baselines
    python bench/programme.py --quick    # about 60 seconds of speech
    python bench/programme.py --help     # --rooms, --seconds, --workers, --skip-raw ...

What it does, all on 127.0.0.1:
  1. a fresh SQLite database (bench/realtime.py's `make_database`: the groups, their
     participants and an open breakout) plus one host;
  2. the app under uvicorn in its own process (bench/realtime.py's `start_app`: production
     settings, one process, the in-process broker, the real Vosk model);
  3. client processes (asyncio + `websockets`; httpx for the fallbacks): every participant
     with their own session cookie follows their room and their own channel as the page
     does, and asks to hear the room (`"media":["audio"]`); in each room one participant is
     on Server-Sent Events and one on long-polling (`media=audio`, `listener=`). The host
     follows the plenary and the help desk;
  4. speakers (this process): one per room on the microphone socket `.../live/audio`, two
     in the first room (cross-talk), sending espeak-ng speech (bench/captions.py's tracks:
     sentences with pauses, known words) as 20 ms Opus packets at 20 kbit/s, each when its
     audio would have been captured;
  5. meanwhile, posted as the page posts them: chat (a message every few seconds in each
     room, and every so often a burst of 10 at once in one room), raised and lowered hands,
     requests for help;
  6. the host closes the breakouts (`.../breakouts/close`); each page, told so, fetches its
     room (`.../live/room`) and follows what it shows; the host posts in the plenary, and
     every participant must receive it;
  7. raw Vosk: the same tracks through `vosk.KaldiRecognizer` in a process of its own, fed
     in real time (100 ms frames) in a pool of os.cpu_count() threads;
  8. the bare relay (bench/voice.py `--serve-bare`): the same speakers and 80 listeners.

Figures: caption latency per word (bench/captions.py's `analyse`: from the moment the
frame holding the word's end was sent to the earliest caption showing it, at every
listener of the room), voice mouth-to-ear (each forwarded packet: read time at a listener
minus the time the speaker sent that very payload; while two talk at once the server sends
a mix, measured at the talkers from the other's utterance onsets), chat delivery (read time
minus the send time carried in the text, at every member of the room), what is missing,
the server's CPU and peak RSS, each participant's download. CLOCK_MONOTONIC is shared by
every process of the machine.

The last line is machine-readable:
RESULT speakers=<..> caption_p95_s=<..> voice_p95_ms=<..> chat_p99_ms=<..> missing=<..>
cpu_pct=<..> rss_mb=<..>
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
import random
import re
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# Run as a script, this file's folder comes first on the path, where bench/realtime.py
# would hide the `realtime` package the app imports: look in the project root instead.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(ROOT))

from bench.captions import (  # noqa: E402 - after the path fix above
    FRAME_BYTES,
    SAMPLE_RATE,
    PeakSampler,
    Phase,
    Received,
    Speaker,
    Spoken,
    Track,
    analyse,
    counted_connection,
    fmt_s,
    make_tracks,
    opus_packets,
    partial_text,
    require_speech,
    seating,
    sse_data,
    wait_for_quiet,
)
from bench.realtime import (  # noqa: E402
    CSRF_VALUE,
    SECRET,
    TEXT_PATTERN,
    FormPoster,
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
)
from bench.voice import KIND_OPUS, clock_ms_between, unpack  # noqa: E402

PER_ROOM = 8
VOICE_BIT_RATE = 20000  # what the page's AudioEncoder is asked for
PACKET_S = 0.02
SPEECH_RMS = 200.0  # the router's threshold (docs/voice.md): quieter packets are not sent on
ONSET_RMS = 600.0  # an utterance's first packet, for the mix measurement
# 0.3 s of quiet before an onset: more than the mixer keeps of a talker (3 packets).
ONSET_QUIET_PACKETS = 15
HEARD_WITHIN_NS = 1_500_000_000
CHANNEL_ATTR = re.compile(r'data-channel="([^"]+)"\s+data-last-id="(\d*)"')
# Targets from the issue.
TARGET_CAPTION_P95_S, TARGET_VOICE_P95_MS, TARGET_CHAT_P99_MS, TARGET_RSS_MB = (
    1.0,
    250.0,
    50.0,
    1536.0,
)


# --------------------------------------------------------------------------- people


@dataclass(frozen=True)
class PersonSpec:
    key: int
    user_id: int
    kind: str  # "ws" | "sse" | "poll"
    room: str  # their breakout room's channel ("" for the host)
    cookie: str
    follows: tuple[str, ...]  # the channels the page shows at first


# The answers to a chat frame (app/live/chat_frames.py).
ANSWERS = ("ack", "error")


@dataclass(frozen=True)
class Links:
    """Where clients connect and post, for the app or the bare relay."""

    ws: str  # the live WebSocket (the app) or the bare relay's base
    http: str  # the live base, http://.../live ("" for the bare relay)
    csrf_token: str = ""
    csrf_cookie: str = ""

    @property
    def bare(self) -> bool:
        return not self.http


@dataclass
class Person:
    spec: PersonSpec
    cursors: dict[str, int | None]
    ws: Any = None
    task: asyncio.Task[None] | None = None
    open: bool = False
    error: str = ""
    window_bytes: int = 0
    kinds: Counter[str] = field(default_factory=Counter)
    chat: list[tuple[str, int]] = field(default_factory=list)  # (key, read at)
    captions: list[tuple[int, str]] = field(default_factory=list)  # (read at, raw frame)
    media: list[tuple[int, bytes]] = field(default_factory=list)  # (read at, packets)
    switches: list[str] = field(default_factory=list)  # what a room fetch showed
    closures: list[str] = field(default_factory=list)  # why the server ended a connection
    listener: str = field(default_factory=lambda: secrets.token_urlsafe(16))


class Crowd:
    """One client process: its share of the participants, their connections and posts."""

    def __init__(self, links: Links) -> None:
        self.links = links
        self.people: dict[int, Person] = {}
        self.window = (0, 0)
        self.recording = False
        self.http: Any = None
        self.posters: dict[str, FormPoster] = {}
        self.ws_class = counted_connection(self.count)
        self.actions: list[dict[str, Any]] = []
        self.pending: set[asyncio.Task[Any]] = set()
        self.stopping = False
        # Chat frames sent on a WebSocket, waiting for their answer, by client id.
        self.answers: dict[str, asyncio.Future[dict[str, Any]]] = {}

    def count(self, person: Person, at: int, nbytes: int) -> None:
        if self.window[0] <= at <= self.window[1]:
            person.window_bytes += nbytes

    # -- receiving

    def on_text(self, person: Person, at: int, raw: str) -> None:
        try:
            frame = json.loads(raw)
        except ValueError:
            person.kinds["malformed"] += 1
            return
        kind = str(frame.get("t"))
        person.kinds[kind] += 1
        answer = self.answers.pop(str(frame.get("client_id")), None) if kind in ANSWERS else None
        if answer is not None and not answer.done():
            answer.set_result(frame)
            return
        if kind == "m":
            if self.recording:
                person.media.append((at, base64.b64decode(frame.get("b", ""))))
            return
        channel, index = frame.get("c"), frame.get("i")
        if isinstance(channel, str) and isinstance(index, int) and index:
            person.cursors[channel] = index
        if kind == "chat.message":
            match = TEXT_PATTERN.search(str(frame.get("h", "")))
            if match is not None:
                person.chat.append((match.group(1), at))
        elif kind.startswith("caption.") and self.recording:
            person.captions.append((at, raw))
        elif kind in ("breakout.closed", "room.changed") and not self.links.bare:
            task = asyncio.create_task(self.switch_room(person))
            self.pending.add(task)
            task.add_done_callback(self.pending.discard)

    async def switch_room(self, person: Person) -> None:
        """As the page does (static/js/live.js switchRoom): fetch the room, follow the
        channels it shows from the ids it shows, say hello again (or reconnect)."""
        headers = {"Cookie": f"rt_session={person.spec.cookie}", "HX-Request": "true"}
        try:
            response = await self.client().get(self.links.http + "/room", headers=headers)
            found = CHANNEL_ATTR.findall(response.text) if response.status_code == 200 else []
        except Exception as exc:  # noqa: BLE001 - counted
            person.switches.append(f"error: {type(exc).__name__}")
            return
        if not found:
            person.switches.append(f"no channels ({response.status_code})")
            return
        person.cursors = {c: int(i) if i else None for c, i in found}
        person.switches.append(",".join(sorted(person.cursors)))
        if person.spec.kind == "ws" and person.ws is not None:
            with contextlib.suppress(Exception):
                await person.ws.send(json.dumps(self.hello(person)))
        elif person.spec.kind == "sse" and person.task is not None:
            person.task.cancel()
            person.task = asyncio.create_task(self.keep_listening(person, None))
        # A long-poll asks with the new cursors next time.

    def hello(self, person: Person) -> dict[str, Any]:
        return {"type": "hello", "cursors": dict(person.cursors), "media": ["audio"]}

    def client(self) -> Any:
        import httpx

        if self.http is None:
            self.http = httpx.AsyncClient(timeout=httpx.Timeout(60.0), http2=False)
        return self.http

    # -- connecting

    async def connect(self, specs: list[PersonSpec]) -> dict[str, Any]:
        started = time.monotonic()
        ready = []
        for spec in specs:
            person = self.people[spec.key] = Person(spec, dict.fromkeys(spec.follows))
            opened = asyncio.get_running_loop().create_future()
            person.task = asyncio.create_task(self.keep_listening(person, opened))
            ready.append(opened)
        await asyncio.wait(ready, timeout=60)
        return {
            "open": sum(1 for p in self.people.values() if p.open),
            "failures": dict(Counter(p.error for p in self.people.values() if p.error)),
            "seconds": time.monotonic() - started,
        }

    async def keep_listening(self, person: Person, opened: asyncio.Future[None] | None) -> None:
        """As the page does (static/js/live.js): when the server ends the connection (or a
        poll is refused), connect again 2 s later with the cursors it has; each ending is
        kept, and reported."""
        listen = {"ws": self.listen_ws, "sse": self.listen_sse, "poll": self.listen_poll}
        while not self.stopping:
            await listen[person.spec.kind](person, opened)
            opened = None
            if self.stopping:
                return
            person.closures.append(person.error)
            person.error = ""
            await asyncio.sleep(2.0)

    def ws_url(self, person: Person) -> str:
        if self.links.bare:
            return f"{self.links.ws}/ws?room={person.spec.room}&user={person.spec.user_id}"
        return self.links.ws

    async def listen_ws(self, person: Person, opened: asyncio.Future[None] | None) -> None:
        from websockets.asyncio.client import connect

        try:
            ws: Any = await connect(
                self.ws_url(person),
                additional_headers={"Cookie": f"rt_session={person.spec.cookie}"},
                open_timeout=60,
                ping_interval=None,
                close_timeout=2,
                proxy=None,
                max_size=2**20,
                create_connection=self.ws_class,
            )
            person.ws, ws.owner = ws, person
            await ws.send(json.dumps(self.hello(person)))
            person.open = True
            if opened is not None and not opened.done():
                opened.set_result(None)
            async for raw in ws:
                if isinstance(raw, bytes):
                    if self.recording:
                        person.media.append((ws.arrived_ns, raw))
                    person.kinds["binary"] += 1
                else:
                    self.on_text(person, ws.arrived_ns, raw)
            person.error = f"closed {ws.close_code} {ws.close_reason}"
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - reported with the figures
            person.error = person.error or f"{type(exc).__name__}: {str(exc)[:80]}"
        finally:
            person.open = False
            if opened is not None and not opened.done():
                opened.set_result(None)

    def cursor_text(self, person: Person) -> str:
        return ",".join(f"{c}={'' if i is None else i}" for c, i in person.cursors.items())

    async def listen_sse(self, person: Person, opened: asyncio.Future[None] | None) -> None:
        headers = {
            "Cookie": f"rt_session={person.spec.cookie}",
            "Accept": "text/event-stream",
            "Accept-Encoding": "identity",
        }
        query = urllib.parse.urlencode({"cursors": self.cursor_text(person), "media": "audio"})
        try:
            url = f"{self.links.http}/sse?{query}"
            async with self.client().stream("GET", url, headers=headers) as response:
                if response.status_code != 200:
                    raise RuntimeError(f"SSE answered {response.status_code}")
                person.open = True
                if opened is not None and not opened.done():
                    opened.set_result(None)
                buffer = b""
                async for chunk in response.aiter_raw():
                    at = time.monotonic_ns()
                    self.count(person, at, len(chunk))
                    buffer, events = sse_data(buffer, chunk)
                    for data in events:
                        self.on_text(person, at, data.decode())
            person.error = "the stream ended"
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - reported with the figures
            person.error = person.error or f"{type(exc).__name__}: {str(exc)[:80]}"
        finally:
            person.open = False
            if opened is not None and not opened.done():
                opened.set_result(None)

    async def listen_poll(self, person: Person, opened: asyncio.Future[None] | None) -> None:
        headers = {"Cookie": f"rt_session={person.spec.cookie}", "Accept-Encoding": "identity"}
        person.open = True
        if opened is not None:
            opened.set_result(None)
        try:
            while True:
                query = {
                    "cursors": self.cursor_text(person),
                    "wait": "25",
                    "media": "audio",
                    "listener": person.listener,
                }
                response = await self.client().get(
                    self.links.http + "/poll", params=query, headers=headers
                )
                at = time.monotonic_ns()
                self.count(person, at, len(response.content) + 200)  # + status and headers
                if response.status_code != 200:
                    raise RuntimeError(f"poll answered {response.status_code}")
                body = response.json()
                for message in body.get("events", []):
                    self.on_text(person, at, json.dumps(message))
                for channel, index in body.get("cursors", {}).items():
                    if channel in person.cursors:
                        person.cursors[channel] = index
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - reported with the figures
            person.error = person.error or f"{type(exc).__name__}: {str(exc)[:80]}"
        finally:
            person.open = False

    # -- posting

    def poster(self, path: str) -> FormPoster:
        if path not in self.posters:
            self.posters[path] = FormPoster(self.links.http + path)
        return self.posters[path]

    async def post(self, action: dict[str, Any]) -> None:
        """One action as the page posts it (the form, the cookies, the CSRF header and
        HX-Request); the answer's status and time are kept."""
        person = self.people[action["key"]]
        cookie = f"rt_session={person.spec.cookie}; {self.links.csrf_cookie}"
        form = dict(action["form"])
        sent = time.monotonic_ns()
        if action["path"] == "/chat":
            form["text"] = f"bench {action['tag']} {sent}"
            form["client_id"] = f"bench-{action['tag']}"
        try:
            if action["path"] == "/chat" and person.spec.kind == "ws" and person.open:
                outcome = await self.chat_frame(person, form)
            else:
                status = await self.poster(action["path"]).post(
                    form, cookie=cookie, csrf=self.links.csrf_token
                )
                outcome = str(status)
        except Exception as exc:  # noqa: BLE001 - every failure is counted
            outcome = type(exc).__name__
        self.actions.append(
            {
                **action,
                "sent": sent,
                "outcome": outcome,
                "answer_ms": (time.monotonic_ns() - sent) / 1e6,
            }
        )

    async def chat_frame(self, person: Person, form: dict[str, str]) -> str:
        """A chat message as the page sends it while its WebSocket is open (static/js/
        live.js): a chat.send frame, answered by "ack" (counted as the post's 204) or
        "error" (its code)."""
        answer = asyncio.get_running_loop().create_future()
        self.answers[form["client_id"]] = answer
        frame = {"type": "chat.send", "private": False, **form}
        await person.ws.send(json.dumps(frame))
        got = await asyncio.wait_for(answer, 30)
        return "204" if got["t"] == "ack" else str(got.get("code"))

    async def run(self, plan: dict[str, Any]) -> dict[str, Any]:
        """Record from the window's start; post this process's actions at their times."""
        self.window, self.recording = (plan["w0"], plan["w1"]), True
        for person in self.people.values():
            person.window_bytes = 0
        for action in sorted(plan["actions"], key=lambda a: a["when"]):
            delay = (action["when"] - time.monotonic_ns()) / 1e9
            if delay > 0:
                await asyncio.sleep(delay)
            task = asyncio.create_task(self.post(action))
            self.pending.add(task)
            task.add_done_callback(self.pending.discard)
        return {"scheduled": len(plan["actions"])}

    # -- after the run

    def collect(
        self, sent: dict[int, list[int]], lookup: dict[bytes, tuple[int, int]]
    ) -> dict[str, Any]:
        """What each person received, reduced here so the pipe stays small: chat keys with
        read times, captions parsed, and for voice the latency of every forwarded packet
        (its payload is one a speaker sent once) and the loudness of every mixed one."""
        self.recording = False
        out = {}
        for key, person in self.people.items():
            out[key] = {
                "user_id": person.spec.user_id,
                "kind": person.spec.kind,
                "room": person.spec.room,
                "open": person.open,
                "error": person.error,
                "bytes": person.window_bytes,
                "kinds": dict(person.kinds),
                "chat": person.chat,
                "captions": [parse_caption(at, raw) for at, raw in person.captions],
                "voice": voice_figures(person, sent, lookup),
                "switches": person.switches,
                "closures": person.closures,
                "follows": sorted(person.cursors),
            }
            person.chat, person.captions, person.media = [], [], []
        return {"people": out, "actions": self.actions}

    async def close(self) -> None:
        self.stopping = True
        for task in list(self.pending):
            task.cancel()
        for person in self.people.values():
            if person.ws is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(person.ws.close(), 3)
            if person.task is not None:
                person.task.cancel()
        for poster in self.posters.values():
            await poster.close()
        if self.http is not None:
            await self.http.aclose()


def parse_caption(at: int, raw: str) -> tuple[Any, ...]:
    """(read at, kind, stream, words, word ends, segment) of one caption event."""
    frame = json.loads(raw)
    data = frame.get("d") or {}
    stream = str(data.get("stream", ""))
    if frame.get("t") == "caption.final":
        words = data.get("words") or []
        return (
            at,
            "final",
            stream,
            [str(w[0]).lower() for w in words],
            [float(w[2]) for w in words],
            data.get("segment"),
        )
    if frame.get("t") == "caption.partial":
        # The speaker's name is in the fragment only when the text is not in `d`; the
        # bench's names never hold a word the model knows, so they are left out below.
        return (at, "partial", stream, partial_text(frame, "").split(), [], None)
    return (at, str(frame.get("t")), stream, [], [], None)


def packet_rms(payloads: list[bytes]) -> list[float]:
    """Each packet decoded in order (one libopus decoder, as a listener has): its RMS."""
    import av
    import numpy as np

    decoder = av.CodecContext.create("libopus", "r")
    decoder.sample_rate = 48000
    decoder.layout = "mono"
    out = []
    for payload in payloads:
        samples = []
        try:
            for frame in decoder.decode(av.Packet(payload)):
                values = frame.to_ndarray().reshape(-1)
                # Floats in [-1, 1] (fltp) or 16-bit integers (s16), by the decoder's format.
                scale = 32768.0 if values.dtype.kind == "f" else 1.0
                samples.append(values.astype(np.float64) * scale)
        except av.FFmpegError:
            pass
        pcm = np.concatenate(samples) if samples else np.zeros(1)
        out.append(float(np.sqrt(np.mean(pcm**2))))
    return out


def voice_figures(
    person: Person, sent: dict[int, list[int]], lookup: dict[bytes, tuple[int, int]]
) -> dict[str, Any]:
    forwarded: list[float] = []  # ms, each forwarded packet: read - sent
    relayed: list[float] = []  # ms, each packet: read - the relay's ts_ms
    by_source: Counter[str] = Counter()
    mixed: list[tuple[int, bytes]] = []
    got: dict[int, list[tuple[int, int]]] = defaultdict(list)  # speaker -> (index, read at)
    for at, frame in person.media:
        try:
            packets = unpack(frame)
        except ValueError:
            by_source["malformed frames"] += 1
            continue
        for kind, source, _seq, ts, payload in packets:
            if kind != KIND_OPUS:
                continue
            relayed.append(clock_ms_between(ts, at // 1_000_000))
            if source == 0:
                by_source["mixed"] += 1
                mixed.append((at, payload))
                continue
            if source == person.spec.user_id:
                by_source["own voice"] += 1
            hit = lookup.get(payload)
            if hit is not None and hit[0] == 0:
                by_source["repeated"] += 1
                continue
            if hit is None or hit[0] != source or hit[0] not in sent:
                by_source["unmatched"] += 1
                continue
            speaker, index = hit
            if index < len(sent[speaker]):
                forwarded.append((at - sent[speaker][index]) / 1e6)
                got[speaker].append((index, at))
                by_source["forwarded"] += 1
    rms = packet_rms([p for _, p in mixed]) if mixed else []
    return {
        "forwarded_ms": forwarded,
        "relayed_ms": relayed,
        "counts": dict(by_source),
        "mixed": [(at, r) for (at, _), r in zip(mixed, rms, strict=True)],
        "got": dict(got),
    }


def crowd_process(conn: Any, links: Links) -> None:
    raise_fd_limit()

    async def main() -> None:
        crowd = Crowd(links)
        while True:
            command, arg = await asyncio.to_thread(conn.recv)
            if command == "connect":
                conn.send(await crowd.connect(arg))
            elif command == "run":
                conn.send(await crowd.run(arg))
            elif command == "collect":
                conn.send(crowd.collect(*arg))
            elif command == "close":
                await crowd.close()
                conn.send("closed")
                return

    run_loop(main())


class Crowds:
    """The client processes, driven over pipes; person k lives in process k mod N."""

    def __init__(self, links: Links, workers: int) -> None:
        ctx = mp.get_context("spawn")
        self.pipes, self.procs = [], []
        for _ in range(workers):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=crowd_process, args=(child, links), daemon=True)
            proc.start()
            self.pipes.append(parent)
            self.procs.append(proc)

    def owner(self, key: int) -> int:
        return key % len(self.pipes)

    async def ask(self, command: str, args: list[Any], timeout: float = 300) -> list[Any]:
        for pipe, arg in zip(self.pipes, args, strict=True):
            pipe.send((command, arg))
        out = []
        for pipe, proc in zip(self.pipes, self.procs, strict=True):
            if not await asyncio.to_thread(pipe.poll, timeout):
                raise RuntimeError(f"client process {proc.pid} did not answer {command!r}")
            out.append(pipe.recv())
        return out

    async def ask_all(self, command: str, arg: Any = None, timeout: float = 300) -> list[Any]:
        return await self.ask(command, [arg] * len(self.pipes), timeout)

    def cpu(self) -> float:
        return sum(cpu_seconds(p.pid) for p in self.procs if p.pid)

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.ask_all("close", timeout=20)
        for proc in self.procs:
            proc.join(5)
            if proc.is_alive():
                proc.kill()
                proc.join(5)


# --------------------------------------------------------------------------- the world


@dataclass
class Cast:
    """Who is who: the rooms, the people's connections, the speakers and the host."""

    programme_id: int
    session_id: int
    rooms: list[tuple[str, list[int]]]  # (channel, members)
    people: list[PersonSpec]
    voices: list[tuple[int, str, int]]  # (speaker user id, room, track index)
    host_id: int
    host_cookie: str
    cookies: dict[int, str]

    @property
    def base(self) -> str:
        return f"/programmes/{self.programme_id}/sessions/{self.session_id}/live"

    @property
    def plenary(self) -> str:
        return f"s{self.session_id}:plenary"


def add_host(database_url: str, programme_id: int) -> int:
    """A host for the programme (in no group): the one who closes the breakouts."""
    from sqlalchemy import create_engine
    from sqlalchemy.orm import Session

    from app.models import Membership, Role, User

    engine = create_engine(database_url)
    with Session(engine) as db:
        host = User(display_name="Bench Host", pronouns="she/her")
        db.add(host)
        db.flush()
        db.add(Membership(user_id=host.id, programme_id=programme_id, role=Role.HOST.value))
        db.commit()
        host_id = int(host.id)
    engine.dispose()
    return host_id


def cast_of(world: Any, rooms: int, host_id: int, fallback: bool) -> Cast:
    """Every member of every room on the live connection (the page: their room and their
    own channel), the 7th of each room on SSE and the 8th on long-polling; the first member
    speaks, and in the first room the second too (cross-talk)."""
    from app.security import SessionClaims, Signer

    seats = seating(world, rooms)
    sid = world.session_id
    host_cookie = Signer(SECRET).session_cookie(SessionClaims(user_id=host_id, epoch=0))
    people: list[PersonSpec] = []
    voices: list[tuple[int, str, int]] = []
    for r, (room, speaker, members) in enumerate(seats.rooms):
        for j, uid in enumerate(members):
            kind = {6: "sse", 7: "poll"}.get(j, "ws") if fallback else "ws"
            people.append(
                PersonSpec(len(people), uid, kind, room, seats.cookies[uid], (room, f"u{uid}"))
            )
        voices.append((speaker, room, r))
        if r == 0:
            voices.append((members[1], room, rooms))
    voices.sort(key=lambda v: v[2])
    host = PersonSpec(
        len(people),
        host_id,
        "ws",
        "",
        host_cookie,
        (f"s{sid}:plenary", f"s{sid}:help", f"u{host_id}"),
    )
    people.append(host)
    return Cast(
        world.programme_id,
        sid,
        [(room, members) for room, _, members in seats.rooms],
        people,
        voices,
        host_id,
        host_cookie,
        seats.cookies,
    )


def plan_actions(args: argparse.Namespace, cast: Cast, t0: int, t_end: int) -> list[dict[str, Any]]:
    """Chat in every room (a message every --chat-every seconds on average, senders in
    turn), a burst of 10 at once in one room every --burst-every seconds (rooms in turn),
    hands raised and lowered 8 s later, requests for help. Times in CLOCK_MONOTONIC ns."""
    rng = random.Random(args.seed)  # noqa: S311 - a schedule, nothing secret
    key_of = {p.user_id: p.key for p in cast.people}
    speakers = {uid for uid, _, _ in cast.voices}
    actions: list[dict[str, Any]] = []
    second = 1_000_000_000

    def add(when: float, uid: int, path: str, form: dict[str, str], tag: str = "") -> None:
        if when < t_end:
            actions.append(
                {"when": int(when), "key": key_of[uid], "path": path, "form": form, "tag": tag}
            )

    n = 0
    for room, members in cast.rooms:
        order = members[:]
        rng.shuffle(order)
        when, k = t0 + rng.uniform(0, args.chat_every) * second, 0
        while when < t_end:
            add(when, order[k % len(order)], "/chat", {"channel": room}, f"c{n}")
            when += rng.uniform(0.5, 1.5) * args.chat_every * second
            n, k = n + 1, k + 1
    when, b = t0 + args.burst_every / 2 * second, 0
    while when < t_end:
        room, members = cast.rooms[b % len(cast.rooms)]
        for j in range(10):
            add(when, members[j % len(members)], "/chat", {"channel": room}, f"b{b}x{j}")
        when, b = when + args.burst_every * second, b + 1
    quiet = [uid for _, members in cast.rooms for uid in members if uid not in speakers]
    rng.shuffle(quiet)
    when, h = t0 + 5 * second, 0
    while when < t_end:
        uid = quiet[h % len(quiet)]
        add(when, uid, "/hand", {"action": "raise"})
        add(when + 8 * second, uid, "/hand", {"action": "lower"})
        when, h = when + args.hand_every * second, h + 1
    when, k = t0 + 10 * second, 0
    while when < t_end:
        add(when, quiet[-1 - k % len(quiet)], "/help", {"note": f"bench help {k}"})
        when, k = when + args.help_every * second, k + 1
    return actions


def packets_for(tracks: list[Track]) -> list[list[bytes]]:
    """Each track as the page's microphone sends it: 20 ms Opus packets at 20 kbit/s."""
    return [opus_packets(t.pcm, sample_rate=SAMPLE_RATE, bit_rate=VOICE_BIT_RATE) for t in tracks]


def payload_lookup(cast: Cast, packets: list[list[bytes]]) -> dict[bytes, tuple[int, int]]:
    """payload -> (speaker, index) for payloads sent once by one speaker; (0, -1) for those
    sent more than once (digital silence between sentences, which the router forwards
    while a talker counts as talking): they cannot be told apart, so they are not timed."""
    counts: Counter[bytes] = Counter(p for _, _, t in cast.voices for p in packets[t])
    return {
        p: ((uid, i) if counts[p] == 1 else (0, -1))
        for uid, _, t in cast.voices
        for i, p in enumerate(packets[t])
    }


# --------------------------------------------------------------------------- one run


@dataclass
class Meter:
    """CPU of the server (all threads and its event loop's), of the clients (the client
    processes and this one, which runs the speakers) and of everything else, and the
    server's peak RSS, over a window."""

    pid: int
    crowds: Crowds
    sampler: PeakSampler | None = None
    start: tuple[float, ...] = ()

    def read(self) -> tuple[float, ...]:
        return (
            time.monotonic(),
            cpu_seconds(self.pid),
            cpu_seconds(self.pid, thread=self.pid),
            self.crowds.cpu() + time.process_time(),
            machine_busy_seconds(),
        )

    def begin(self) -> None:
        self.sampler = PeakSampler(self.pid)
        self.start = self.read()

    def end(self) -> dict[str, float]:
        wall, server, loop, clients, busy = (
            b - a for a, b in zip(self.start, self.read(), strict=True)
        )
        assert self.sampler is not None
        return {
            "seconds": wall,
            "server_cpu": server / wall * 100,
            "loop_cpu": loop / wall * 100,
            "client_cpu": clients / wall * 100,
            "other_cpu": max(0.0, busy - server - clients) / wall * 100,
            "rss_peak": max(self.sampler.stop(), 0) / 2**20,
            "rss_hwm": proc_status(self.pid, "VmHWM") / 2**20,
        }


def speaker_url(links: Links, uid: int, room: str) -> str:
    if links.bare:
        return f"{links.ws}/audio?room={room}&user={uid}"
    return links.ws.removesuffix("/ws") + "/audio"


async def speak_all(
    cast: Cast,
    links: Links,
    server: Server,
    packets: list[list[bytes]],
    crowds: Crowds,
    args: argparse.Namespace,
    log: Any,
) -> tuple[list[Speaker], int, int, dict[str, float], list[Any]]:
    """Connect the speakers, then all at once: speech (each speaker 0.1 s after the
    previous), the posts, the meter. Returns the speakers, the window and its figures."""
    if args.quiet_wait > 0:
        pids = (server.proc.pid, *(p.pid or 0 for p in crowds.procs))
        await asyncio.to_thread(wait_for_quiet, args.quiet_wait, log, pids)
    speakers = [
        Speaker(uid, cast.cookies[uid], room, packets[t], "opus") for uid, room, t in cast.voices
    ]
    await asyncio.gather(
        *(s.connect(speaker_url(links, s.spoken.user_id, s.spoken.room)) for s in speakers)
    )
    longest = max(len(s.frames) for s in speakers) * PACKET_S
    log(f"{len(speakers)} speakers connected; speaking for {longest:.0f} s ...")
    t0 = time.monotonic_ns() + 1_000_000_000
    w1 = t0 + int(longest * 1e9) + 100_000_000 * len(speakers)
    actions = [] if links.bare else plan_actions(args, cast, t0, w1 - 2_000_000_000)
    plans: list[dict[str, Any]] = [{"w0": t0, "w1": w1, "actions": []} for _ in crowds.pipes]
    for action in actions:
        plans[crowds.owner(action["key"])]["actions"].append(action)
    meter = Meter(server.proc.pid, crowds)
    runner = asyncio.create_task(crowds.ask("run", plans, timeout=longest + 120))
    await asyncio.sleep(max(0.0, (t0 - time.monotonic_ns()) / 1e9))
    meter.begin()

    async def one(i: int, speaker: Speaker) -> None:
        deadline = (w1 - time.monotonic_ns()) / 1e9 + 30
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(speaker.speak(t0 + i * 100_000_000, 1.0), deadline)

    talking = asyncio.gather(*(one(i, s) for i, s in enumerate(speakers)))
    await asyncio.sleep(max(0.0, (w1 - time.monotonic_ns()) / 1e9))
    window = meter.end()
    await talking
    await runner
    await asyncio.sleep(args.drain)
    return speakers, t0, w1, window, actions


# --------------------------------------------------------------------------- figures


def merged(results: list[dict[str, Any]]) -> tuple[dict[int, dict[str, Any]], list[dict[str, Any]]]:
    people: dict[int, dict[str, Any]] = {}
    actions: list[dict[str, Any]] = []
    for r in results:
        people.update(r["people"])
        actions.extend(r["actions"])
    return people, actions


def chat_figures(
    people: dict[int, dict[str, Any]], actions: list[dict[str, Any]], cast: Cast
) -> dict[str, Any]:
    """Every accepted message (204) should reach every member of its room once."""
    members = {room: set(m) for room, m in cast.rooms}
    posts = [a for a in actions if a["path"] == "/chat"]
    accepted = {a["tag"]: a for a in posts if a["outcome"] == "204"}
    got: dict[str, dict[int, int]] = defaultdict(dict)
    duplicates = 0
    for person in people.values():
        for key, at in person["chat"]:
            if key in got and person["user_id"] in got[key]:
                duplicates += 1
            got[key].setdefault(person["user_id"], at)
    kind_of = {p["user_id"]: p["kind"] for p in people.values()}
    latencies, missing = [], 0
    by_kind: dict[str, list[float]] = defaultdict(list)
    for tag, action in accepted.items():
        for uid in members[action["form"]["channel"]]:
            at = got.get(tag, {}).get(uid)
            if at is None:
                missing += 1
            latency = math.inf if at is None else (at - action["sent"]) / 1e6
            latencies.append(latency)
            by_kind[kind_of.get(uid, "?")].append(latency)
    latencies.sort()
    answers = sorted(a["answer_ms"] for a in accepted.values())
    return {
        "posted": len(posts),
        "accepted": len(accepted),
        "refused": dict(Counter(a["outcome"] for a in posts if a["outcome"] != "204")),
        "deliveries": len(latencies) - missing,
        "missing": missing,
        "duplicates": duplicates,
        "p50": percentile(latencies, 0.5),
        "p99": percentile(latencies, 0.99),
        "max": latencies[-1] if latencies else math.nan,
        "answer_p50": percentile(answers, 0.5),
        "answer_p99": percentile(answers, 0.99),
        "p99_by_kind": {k: percentile(sorted(v), 0.99) for k, v in sorted(by_kind.items())},
    }


def help_figures(
    people: dict[int, dict[str, Any]], actions: list[dict[str, Any]], cast: Cast
) -> dict[str, Any]:
    """Hands: each raise or lower reaches the room (hand.update) and the help desk
    (help.update); a request for help reaches the help desk."""
    ok = [a for a in actions if a["path"] in ("/hand", "/help") and a["outcome"] == "200"]
    hands = sum(1 for a in ok if a["path"] == "/hand")
    host = next(p for p in people.values() if p["user_id"] == cast.host_id)
    room_got = sum(p["kinds"].get("hand.update", 0) for p in people.values() if p["room"])
    return {
        "hands": sum(1 for a in actions if a["path"] == "/hand"),
        "helps": sum(1 for a in actions if a["path"] == "/help"),
        "refused": dict(
            Counter(
                f"{a['path']} {a['outcome']}"
                for a in actions
                if a["path"] in ("/hand", "/help") and a["outcome"] != "200"
            )
        ),
        "room_missing": max(0, hands * PER_ROOM - room_got),
        "desk_missing": max(0, len(ok) - host["kinds"].get("help.update", 0)),
        "answer_p99": percentile(sorted(a["answer_ms"] for a in ok), 0.99),
    }


def caption_figures(
    people: dict[int, dict[str, Any]], speakers: list[Speaker], tracks: list[Track], cast: Cast
) -> Phase:
    """bench/captions.py's analysis: every word at every listener of the room."""
    listeners = []
    for person in people.values():
        if not person["room"]:
            continue
        events: dict[str, list[Received]] = defaultdict(list)
        for at, kind, stream, words, ends, segment in person["captions"]:
            if kind in ("partial", "final"):
                events[stream].append(Received(kind, at, words, ends, segment))
        listeners.append(SimpleNamespace(room=person["room"], events=events))
    phase = Phase(speakers=len(speakers), speed=1.0)
    spoken_tracks = [tracks[t] for _, _, t in cast.voices]
    analyse(phase, [s.spoken for s in speakers], listeners, spoken_tracks)  # type: ignore[arg-type]
    phase.audio_s = sum(s.spoken.audio_s for s in speakers)
    return phase


def words_captioned(people: dict[int, dict[str, Any]], speakers: list[Speaker]) -> int:
    """Words in the finals any listener received (each final once): a final the server
    never sent is missing from every listener, which only this count (beside the words
    spoken, and raw Vosk's) shows."""
    finals: dict[tuple[str, Any], int] = {}
    streams = {s.spoken.stream for s in speakers}
    for person in people.values():
        for _, kind, stream, words, _, segment in person["captions"]:
            if kind == "final" and stream in streams:
                finals[(stream, segment)] = len(words)
    return sum(finals.values())


def sentences_missed(track: Track, ends: list[float]) -> int:
    """Sentences of the track with no word of any final ending within them (stream seconds,
    a little slack either side): what a listener never saw captioned, whether the final was
    lost on its way or never made."""
    return sum(
        1 for start, end in track.spans if not any(start - 0.2 <= e <= end + 0.6 for e in ends)
    )


def sentences_figures(
    people: dict[int, dict[str, Any]], speakers: list[Speaker], tracks: list[Track], cast: Cast
) -> tuple[int, int]:
    """(sentences missed, sentences expected), summed over every listener of each room."""
    track_of = {uid: tracks[t] for uid, _, t in cast.voices}
    missed = expected = 0
    for person in people.values():
        for speaker in speakers:
            spoken = speaker.spoken
            if spoken.room != person["room"] or not spoken.stream:
                continue
            ends = [
                e
                for _, kind, stream, _, word_ends, _ in person["captions"]
                if kind == "final" and stream == spoken.stream
                for e in word_ends
            ]
            missed += sentences_missed(track_of[spoken.user_id], ends)
            expected += len(track_of[spoken.user_id].spans)
    return missed, expected


def onsets(rms: list[float]) -> list[int]:
    """Packets that start an utterance (or a word): loud after 0.3 s of quiet."""
    return [
        k
        for k in range(ONSET_QUIET_PACKETS, len(rms))
        if rms[k] >= ONSET_RMS and max(rms[k - ONSET_QUIET_PACKETS : k]) < SPEECH_RMS
    ]


def mix_latencies(
    people: dict[int, dict[str, Any]],
    speakers: list[Speaker],
    cast: Cast,
    packets: list[list[bytes]],
) -> list[float]:
    """While two talk at once the server sends each a mix of the other (a new encoding,
    source 0): at each talker, from each of the other's utterance onsets (as sent) to the
    first packet of it heard, forwarded or mixed (loud: the other was quiet before)."""
    crowded = Counter(room for _, room, _ in cast.voices)
    out: list[float] = []
    for listener in people.values():
        talkers = [v for v in cast.voices if crowded[v[1]] > 1 and v[1] == listener["room"]]
        if listener["user_id"] not in {v[0] for v in talkers}:
            continue
        mixed = [(at, r) for at, r in listener["voice"]["mixed"] if r >= SPEECH_RMS]
        for uid, _, t in talkers:
            if uid == listener["user_id"]:
                continue
            sent = next(s.spoken.sent_ns for s in speakers if s.spoken.user_id == uid)
            forwarded = listener["voice"]["got"].get(uid, [])
            for k in onsets(packet_rms(packets[t])):
                if k >= len(sent):
                    continue
                at0 = sent[k]
                heard = [at for at, _ in mixed if at >= at0]
                heard += [at for index, at in forwarded if index >= k]
                first = min(heard, default=math.inf)
                out.append((first - at0) / 1e6 if first - at0 <= HEARD_WITHIN_NS else math.inf)
    return sorted(out)


def voice_figures_all(
    people: dict[int, dict[str, Any]],
    speakers: list[Speaker],
    cast: Cast,
    packets: list[list[bytes]],
    w0: int,
    w1: int,
) -> dict[str, Any]:
    by_kind: dict[str, list[float]] = defaultdict(list)
    relayed: list[float] = []
    counts: Counter[str] = Counter()
    kbps: dict[str, list[float]] = defaultdict(list)
    seconds = (w1 - w0) / 1e9
    for person in people.values():
        if not person["room"]:
            continue
        by_kind[person["kind"]].extend(person["voice"]["forwarded_ms"])
        relayed.extend(person["voice"]["relayed_ms"])
        counts.update(person["voice"]["counts"])
        kbps[person["kind"]].append(person["bytes"] * 8 / 1000 / seconds)
    mixes = mix_latencies(people, speakers, cast, packets)
    ws = sorted(by_kind.get("ws", []) + mixes)
    return {
        "ws": ws,
        "forwarded": {k: sorted(v) for k, v in by_kind.items()},
        "mix": mixes,
        "relayed_p99": percentile(sorted(relayed), 0.99),
        "counts": dict(counts),
        "kbps": {k: sorted(v) for k, v in kbps.items()},
        "all_kbps": sorted(x for v in kbps.values() for x in v),
    }


# --------------------------------------------------------------------------- the app


async def host_post(links: Links, cast: Cast, path: str, form: dict[str, str]) -> tuple[int, float]:
    poster = FormPoster(links.http + path)
    cookie = f"rt_session={cast.host_cookie}; {links.csrf_cookie}"
    started = time.monotonic_ns()
    try:
        status = await poster.post(form, cookie=cookie, csrf=links.csrf_token)
    finally:
        await poster.close()
    return status, (time.monotonic_ns() - started) / 1e6


async def close_breakouts(links: Links, cast: Cast, crowds: Crowds, log: Any) -> dict[str, Any]:
    """The host closes the rooms; each page fetches its room and follows it; the host says
    something in the plenary: everyone must hear it, on the channels their page shows."""
    status, answer_ms = await host_post(links, cast, "/breakouts/close", {"warning_seconds": "0"})
    log(f"host closed the breakouts: {status} in {answer_ms:.0f} ms")
    await asyncio.sleep(4.0)  # the pages fetch their room and say hello again
    sent = time.monotonic_ns()
    form = {"channel": cast.plenary, "text": f"bench plenary {sent}", "client_id": "bench-plenary"}
    said, _ = await host_post(links, cast, "/chat", form)
    await asyncio.sleep(4.0)
    people, _ = merged(await crowds.ask_all("collect", ({}, {})))
    participants = [p for p in people.values() if p["room"]]
    heard = [p for p in participants if any(k == "plenary" for k, _ in p["chat"])]
    following = [p for p in participants if cast.plenary in p["follows"]]
    latencies = sorted((at - sent) / 1e6 for p in heard for k, at in p["chat"] if k == "plenary")
    return {
        "close_status": status,
        "close_ms": answer_ms,
        "said_status": said,
        "participants": len(participants),
        "heard": len(heard),
        "following": len(following),
        "switch_errors": dict(
            Counter(s for p in participants for s in p["switches"] if cast.plenary not in s)
        ),
        "still_open": sum(1 for p in participants if p["open"]),
        "p99": percentile(latencies, 0.99),
    }


# Longer than 60 lines because it is the app's whole run in order: start, connect, speak
# with everything else going on, collect, close the rooms.
async def measure_app(
    args: argparse.Namespace,
    tmp: Path,
    database_url: str,
    cast: Cast,
    tracks: list[Track],
    packets: list[list[bytes]],
    log: Any,
) -> dict[str, Any]:
    from app.security import CSRF_COOKIE, Signer

    port = args.port or free_port()
    app = start_app(tmp, database_url, port, args.ws, args.model)
    out: dict[str, Any] = {"rss_start": proc_status(app.proc.pid, "VmRSS") / 2**20}
    crowds: Crowds | None = None
    try:
        import urllib.request

        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10) as r:  # noqa: S310
            captions = json.loads(r.read()).get("captions")
        if captions != "ok":
            raise RuntimeError(f"the Vosk model at {args.model} did not load: {captions}")
        log(f"roundtable serving on 127.0.0.1:{port} (pid {app.proc.pid}), captions {captions}")
        links = Links(
            ws=f"ws://127.0.0.1:{port}{cast.base}/ws",
            http=f"http://127.0.0.1:{port}{cast.base}",
            csrf_token=Signer(SECRET).csrf_token(CSRF_VALUE),
            csrf_cookie=f"{CSRF_COOKIE}={CSRF_VALUE}",
        )
        crowds = Crowds(links, args.workers)
        shares: list[list[PersonSpec]] = [[] for _ in crowds.pipes]
        for spec in cast.people:
            shares[crowds.owner(spec.key)].append(spec)
        answers = await crowds.ask("connect", shares)
        out["connected"] = sum(a["open"] for a in answers)
        out["connect_failures"] = [a["failures"] for a in answers if a["failures"]]
        log(
            f"{out['connected']}/{len(cast.people)} connected "
            f"({Counter(p.kind for p in cast.people)}) {out['connect_failures'] or ''}"
        )
        await asyncio.sleep(3.0)  # presence settles
        out["rss_connected"] = proc_status(app.proc.pid, "VmRSS") / 2**20
        speakers, w0, w1, window, actions = await speak_all(
            cast, links, app, packets, crowds, args, log
        )
        out.update(window)
        sent = {s.spoken.user_id: s.spoken.sent_ns for s in speakers}
        people, done = merged(
            await crowds.ask_all("collect", (sent, payload_lookup(cast, packets)))
        )
        out["chat"] = chat_figures(people, done, cast)
        out["help"] = help_figures(people, done, cast)
        out["captions"] = caption_figures(people, speakers, tracks, cast)
        out["words"] = words_captioned(people, speakers)
        out["sentences_missed"], out["sentences"] = sentences_figures(
            people, speakers, tracks, cast
        )
        out["words_spoken"] = sum(len(tracks[t].text.split()) for _, _, t in cast.voices)
        out["voice"] = voice_figures_all(people, speakers, cast, packets, w0, w1)
        out["open_after"] = sum(1 for p in people.values() if p["open"])
        out["closed_why"] = dict(Counter(c[:90] for p in people.values() for c in p["closures"]))
        out["speaker_errors"] = [s.spoken.error for s in speakers if s.spoken.error]
        out["late_actions"] = len(actions) - len(done)
        log(
            f"speech done: captions p95 {fmt_s(out['captions'].p(0.95))} s, chat p99 "
            f"{ms(out['chat']['p99'])} ms, voice p95 {ms(percentile(out['voice']['ws'], 0.95))} ms"
        )
        out["closing"] = await close_breakouts(links, cast, crowds, log)
        out["rss_hwm"] = proc_status(app.proc.pid, "VmHWM") / 2**20
    finally:
        if crowds is not None:
            await crowds.close()
        stop_server(app)
        tail = app.log_tail(12)
        if tail.strip():
            print("  roundtable server log (last lines):\n    " + tail.replace("\n", "\n    "))
    return out


async def measure_bare(
    args: argparse.Namespace, tmp: Path, cast: Cast, packets: list[list[bytes]], log: Any
) -> dict[str, Any]:
    """The same speakers and listeners (all on WebSockets) through bench/voice.py's relay."""
    port = free_port()
    bare = start_bare(tmp, port, script=ROOT / "bench" / "voice.py")
    log(f"bare relay serving on 127.0.0.1:{port} (pid {bare.proc.pid})")
    links = Links(ws=f"ws://127.0.0.1:{port}", http="")
    people = [
        PersonSpec(p.key, p.user_id, "ws", p.room, p.cookie, p.follows)
        for p in cast.people
        if p.room
    ]
    crowds = Crowds(links, args.workers)
    out: dict[str, Any] = {}
    try:
        shares: list[list[PersonSpec]] = [[] for _ in crowds.pipes]
        for spec in people:
            shares[crowds.owner(spec.key)].append(spec)
        answers = await crowds.ask("connect", shares)
        out["connected"] = sum(a["open"] for a in answers)
        log(f"[bare] {out['connected']}/{len(people)} listeners connected")
        await asyncio.sleep(1.0)
        speakers, w0, w1, window, _ = await speak_all(cast, links, bare, packets, crowds, args, log)
        out.update(window)
        sent = {s.spoken.user_id: s.spoken.sent_ns for s in speakers}
        collected, _ = merged(
            await crowds.ask_all("collect", (sent, payload_lookup(cast, packets)))
        )
        out["voice"] = voice_figures_all(collected, speakers, cast, packets, w0, w1)
        log(f"[bare] voice p95 {ms(percentile(out['voice']['ws'], 0.95))} ms")
    finally:
        await crowds.close()
        stop_server(bare)
    return out


# --------------------------------------------------------------------------- raw Vosk


def raw_realtime(model_path: Path, count: int, seconds: float, threads: int) -> dict[str, Any]:
    """The tracks through KaldiRecognizer (words on), each fed in real time in 100 ms
    frames (the speakers 0.1 s apart, as the app's), each frame followed by Result() or
    PartialResult(), in a pool of `threads` threads; the same per-word latency as the
    app's, from the frame holding the word's end to the result showing it."""
    from concurrent.futures import ThreadPoolExecutor

    import vosk

    vosk.SetLogLevel(-1)
    tracks = make_tracks(count, seconds)
    model = vosk.Model(str(model_path))
    rss_model = proc_status(os.getpid(), "VmRSS")
    pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="raw-vosk")

    def feed(recognizer: Any, frame: bytes | None) -> tuple[str, str]:
        if frame is None:
            return "final", str(recognizer.FinalResult())
        if recognizer.AcceptWaveform(frame):
            return "final", str(recognizer.Result())
        return "partial", str(recognizer.PartialResult())

    async def stream(i: int, track: Track, t0: int) -> tuple[Spoken, list[Received]]:
        loop = asyncio.get_running_loop()
        recognizer = vosk.KaldiRecognizer(model, SAMPLE_RATE)
        recognizer.SetWords(True)
        frames = [track.pcm[j : j + FRAME_BYTES] for j in range(0, len(track.pcm), FRAME_BYTES)]
        spoken = Spoken(i, f"raw{i}", len(frames) * 0.1, 0.1, stream=f"raw{i}")
        events: list[Received] = []
        for n, frame in enumerate([*frames, None]):
            when = t0 + (n + 1) * 100_000_000
            await asyncio.sleep(max(0.0, (when - time.monotonic_ns()) / 1e9))
            if frame is not None:
                spoken.scheduled_ns.append(when)
                spoken.sent_ns.append(time.monotonic_ns())
            kind, text = await loop.run_in_executor(pool, feed, recognizer, frame)
            at, result = time.monotonic_ns(), json.loads(text)
            if kind == "partial":
                events.append(Received("partial", at, str(result.get("partial", "")).split()))
            elif result.get("result"):
                words = result["result"]
                ends = [float(w["end"]) for w in words]
                events.append(
                    Received("final", at, [str(w["word"]) for w in words], ends, len(events))
                )
        spoken.closed_ns = time.monotonic_ns()
        return spoken, events

    async def everyone() -> list[tuple[Spoken, list[Received]]]:
        t0 = time.monotonic_ns() + 500_000_000
        return await asyncio.gather(
            *(stream(i, t, t0 + i * 100_000_000) for i, t in enumerate(tracks))
        )

    cpu0, wall0, busy0 = time.process_time(), time.monotonic(), machine_busy_seconds()
    try:
        results = asyncio.run(everyone())
    finally:
        pool.shutdown(wait=True)
    wall, cpu = time.monotonic() - wall0, time.process_time() - cpu0
    phase = Phase(speakers=count, speed=1.0)
    listeners = [SimpleNamespace(room=s.room, events={s.stream: e}) for s, e in results]
    analyse(phase, [s for s, _ in results], listeners, tracks)  # type: ignore[arg-type]
    return {
        "p50": phase.p(0.5),
        "p95": phase.p(0.95),
        "settled_p95": phase.p(0.95, phase.settled),
        "finals": phase.finals,
        "words": sum(len(e.words) for _, events in results for e in events if e.kind == "final"),
        "sentences_missed": sum(
            sentences_missed(t, [x for e in events if e.kind == "final" for x in e.ends])
            for t, (_, events) in zip(tracks, results, strict=True)
        ),
        "sentences": sum(len(t.spans) for t in tracks),
        "wer": phase.wer,
        "cpu_pct": cpu / wall * 100,
        "other_pct": max(0.0, machine_busy_seconds() - busy0 - cpu) / wall * 100,
        "rss_model": rss_model / 2**20,
        "rss_peak": proc_status(os.getpid(), "VmHWM") / 2**20,
    }


def run_raw(args: argparse.Namespace, count: int, log: Any) -> dict[str, Any] | None:
    """The raw baseline in its own process; None (and why, in the log) when it fails or
    falls so far behind real time that it does not finish: the app's figures still print."""
    command = [sys.executable, str(Path(__file__).resolve()), "--raw-child", str(count)]
    command += ["--seconds", str(args.seconds), "--model", str(args.model)]
    limit = args.seconds * 4 + 120
    try:
        done = subprocess.run(  # noqa: S603 - this script
            command, cwd=ROOT, check=True, capture_output=True, text=True, timeout=limit
        )
        return dict(json.loads(done.stdout.strip().splitlines()[-1]))
    except subprocess.TimeoutExpired:
        log(f"raw Vosk did not finish within {limit:.0f} s (far behind real time): no baseline")
    except (subprocess.CalledProcessError, ValueError, IndexError) as exc:
        log(f"raw Vosk failed: {exc} {getattr(exc, 'stderr', '')[-500:]}")
    return None


# --------------------------------------------------------------------------- report


def pair(values: list[float], lo: float = 0.5, hi: float = 0.95) -> str:
    return f"{ms(percentile(values, lo))} / {ms(percentile(values, hi))}"


def kbps_cell(values: list[float]) -> str:
    if not values:
        return ""
    return f"{percentile(values, 0.5):.1f}/{percentile(values, 0.95):.1f}/{values[-1]:.1f}"


def caption_rows(ours: dict[str, Any], raw: dict[str, Any] | None) -> list[tuple[str, ...]]:
    c, r = ours["captions"], raw or {}
    return [
        (
            "caption latency p50 / p95 (s)",
            f"{fmt_s(c.p(0.5))} / {fmt_s(c.p(0.95))}",
            f"{fmt_s(r['p50'])} / {fmt_s(r['p95'])}" if raw else "",
        ),
        (
            "  p95 after each stream's first 10 s (s)",
            fmt_s(c.p(0.95, c.settled)),
            fmt_s(r["settled_p95"]) if raw else "",
        ),
        (
            "  sentences never captioned, at listeners",
            f"{ours['sentences_missed']} / {ours['sentences']}",
            f"{r['sentences_missed']} / {r['sentences']}" if raw else "",
        ),
        (
            "  finals / missing at listeners",
            f"{c.finals} / {c.missing_finals}",
            f"{r.get('finals', '')}",
        ),
        (
            "  words in finals / spoken",
            f"{ours['words']} / {ours['words_spoken']}",
            f"{r['words']} / {ours['words_spoken']}" if raw else "",
        ),
        ("  word error rate", fmt_s(c.wer), fmt_s(r["wer"]) if raw else ""),
        ("  caption streams that failed", str(len(c.errors))),
    ]


def voice_rows(v: dict[str, Any], bv: dict[str, Any] | None) -> list[tuple[str, ...]]:
    b = bv or {"ws": [], "counts": {}, "kbps": {}, "relayed_p99": math.nan}
    vc, bc = Counter(v["counts"]), Counter(b["counts"])
    rows = [
        ("voice mouth-to-ear p50 / p95 (ms), WebSocket", pair(v["ws"]), "", pair(b["ws"])),
        ("  SSE", pair(v["forwarded"].get("sse", []))),
        ("  long-polling", pair(v["forwarded"].get("poll", []))),
        ("  two at once: mixed, at the talkers", f"{pair(v['mix'])} ({len(v['mix'])})"),
        ("  relay -> listener p99 (ms, ts_ms)", ms(v["relayed_p99"]), "", ms(b["relayed_p99"])),
    ]
    for label, keys in (
        ("  packets timed / mixed / repeated", ("forwarded", "mixed", "repeated")),
        ("  unmatched / own voice / malformed", ("unmatched", "own voice", "malformed frames")),
    ):
        rows.append(
            (label, "/".join(str(vc[k]) for k in keys), "", "/".join(str(bc[k]) for k in keys))
        )
    for kind in ("ws", "sse", "poll"):
        rows.append(
            (
                f"download per participant p50/p95/max, {kind} (kbps)",
                kbps_cell(v["kbps"].get(kind, [])),
                "",
                kbps_cell(b["kbps"].get(kind, [])),
            )
        )
    return rows


def chat_rows(chat: dict[str, Any], hands: dict[str, Any]) -> list[tuple[str, ...]]:
    return [
        (
            "chat delivery p50 / p99 / max (ms)",
            f"{ms(chat['p50'])} / {ms(chat['p99'])} / {ms(chat['max'])}",
        ),
        (
            "  p99 by transport (ms)",
            ", ".join(f"{k} {ms(v)}" for k, v in chat.get("p99_by_kind", {}).items()),
        ),
        (
            "  posted / accepted / refused",
            f"{chat['posted']} / {chat['accepted']} / {sum(chat['refused'].values())}",
        ),
        (
            "  deliveries / missing / twice",
            f"{chat['deliveries']} / {chat['missing']} / {chat['duplicates']}",
        ),
        (
            "  sender's answer (204) p50 / p99 (ms)",
            f"{ms(chat['answer_p50'])} / {ms(chat['answer_p99'])}",
        ),
        ("hands raised or lowered / help requests", f"{hands['hands']} / {hands['helps']}"),
        (
            "  missing: in the room / at the help desk",
            f"{hands['room_missing']} / {hands['desk_missing']}",
        ),
        ("  answer p99 (ms)", ms(hands["answer_p99"])),
        ("live poll", "none yet"),
    ]


def machine_rows(
    ours: dict[str, Any], raw: dict[str, Any] | None, bare: dict[str, Any] | None
) -> list[tuple[str, ...]]:
    cores = os.cpu_count() or 1
    r, b = raw or {}, bare or {}

    def cell(d: dict[str, Any], key: str, scale: float = 1.0) -> str:
        return f"{d[key] / scale:.0f}" if key in d else ""

    def peak(d: dict[str, Any]) -> str:
        return f"{max(d['rss_peak'], d['rss_hwm']):.0f}" if d else ""

    return [
        (
            "server CPU (% of one core)",
            cell(ours, "server_cpu"),
            cell(r, "cpu_pct"),
            cell(b, "server_cpu"),
        ),
        (
            f"  (% of the machine: {cores} cores)",
            cell(ours, "server_cpu", cores),
            cell(r, "cpu_pct", cores),
            cell(b, "server_cpu", cores),
        ),
        ("  event-loop thread (% of one core)", cell(ours, "loop_cpu"), "", cell(b, "loop_cpu")),
        ("bench clients' CPU (% of one core)", cell(ours, "client_cpu"), "", cell(b, "client_cpu")),
        (
            "other processes' CPU (% of one core)",
            cell(ours, "other_cpu"),
            cell(r, "other_pct"),
            cell(b, "other_cpu"),
        ),
        (
            "server RSS started / connected (MB)",
            f"{ours['rss_start']:.0f} / {ours['rss_connected']:.0f}",
            cell(r, "rss_model"),
        ),
        ("server peak RSS (MB)", peak(ours), f"{r['rss_peak']:.0f}" if raw else "", peak(b)),
    ]


def report(
    ours: dict[str, Any],
    raw: dict[str, Any] | None,
    bare: dict[str, Any] | None,
    args: argparse.Namespace,
    cast: Cast,
) -> None:
    closing = ours["closing"]
    fallback = sum(1 for p in cast.people if p.kind != "ws")
    print()
    print(
        f"Programme benchmark: {len(cast.people) - 1} participants in {len(cast.rooms)} breakout "
        f"rooms of {PER_ROOM} ({fallback} on SSE or long-polling) and a host; "
        f"a speaker in every room, two at once in the first ({len(cast.voices)} microphone "
        f"streams), {ours['seconds']:.0f} s "
        f"measured; one server process (uvicorn --ws {args.ws}, SQLite, in-process broker, Vosk)"
    )
    print(
        f"  {os.cpu_count()} cores shared by the server, {args.workers} client processes and "
        "this one (the speakers); load average now " + " ".join(f"{x:.2f}" for x in os.getloadavg())
    )
    print()
    connected: tuple[str, ...] = (f"{ours['connected']}/{len(cast.people)}", "")
    if bare:
        connected += (f"{bare['connected']}/{len(cast.people) - 1}",)
    rows = [
        ("", "roundtable", "raw Vosk", "bare relay"),
        ("connected", *connected),
        *caption_rows(ours, raw),
        *voice_rows(ours["voice"], bare["voice"] if bare else None),
        *chat_rows(ours["chat"], ours["help"]),
        *machine_rows(ours, raw, bare),
        (
            f"breakouts closed by the host ({closing['close_status']})",
            f"{closing['close_ms']:.0f} ms",
        ),
        (
            "  participants following the plenary",
            f"{closing['following']}/{closing['participants']}",
        ),
        (
            "  heard the host there, p99",
            f"{closing['heard']}/{closing['participants']}, {ms(closing['p99'])} ms",
        ),
        ("  still connected", f"{closing['still_open']}/{closing['participants']}"),
    ]
    for label, *cells in rows:
        print(f"  {label:<50}" + "".join(f" {c:>18}" for c in cells))
    notes = {
        "chat refused": ours["chat"]["refused"],
        "hands/help refused": ours["help"]["refused"],
        "connections closed": ours["closed_why"],
        "speaker errors": ours["speaker_errors"],
        "posts still unanswered when the figures were collected": ours["late_actions"],
        "room fetches that did not show the plenary": closing["switch_errors"],
        "caption stream errors": ours["captions"].errors[:3],
    }
    for label, value in notes.items():
        if value:
            print(f"  {label}: {value}")
    result(ours, args)


def result(ours: dict[str, Any], args: argparse.Namespace) -> None:
    c, v, chat, closing = ours["captions"], ours["voice"], ours["chat"], ours["closing"]
    caption_p95, voice_p95, chat_p99 = c.p(0.95), percentile(v["ws"], 0.95), chat["p99"]
    # A sentence no final ever showed a listener is a final missing there, whether it was
    # lost on the way (the analysis's missing finals) or the server never made it.
    missing = max(c.missing_finals, ours["sentences_missed"]) + chat["missing"]
    rss = max(ours["rss_peak"], ours["rss_hwm"])
    back = closing["heard"] == closing["following"] == closing["participants"]
    targets = [
        (f"caption p95 <= {TARGET_CAPTION_P95_S:g} s", caption_p95 <= TARGET_CAPTION_P95_S),
        (f"voice p95 <= {TARGET_VOICE_P95_MS:g} ms", voice_p95 <= TARGET_VOICE_P95_MS),
        (f"chat p99 <= {TARGET_CHAT_P99_MS:g} ms", chat_p99 <= TARGET_CHAT_P99_MS),
        ("nothing missing", missing == 0 and not chat["refused"]),
        (f"RSS <= {TARGET_RSS_MB / 1024:g} GB", rss <= TARGET_RSS_MB),
        ("everyone back in the plenary", back),
    ]
    verdicts = {True: "met", False: "NOT met"}
    print("  targets: " + "; ".join(f"{label}: {verdicts[ok]}" for label, ok in targets))
    print(
        f"RESULT speakers={len({room for _, room, _ in ours['speakers']})} "
        f"caption_p95_s={fmt_s(caption_p95)} "
        f"voice_p95_ms={ms(voice_p95)} chat_p99_ms={ms(chat_p99)} missing={missing} "
        f"cpu_pct={ours['server_cpu']:.0f} rss_mb={rss:.0f}"
    )


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rooms", type=int, default=10, help="breakout rooms of 8")
    parser.add_argument("--seconds", type=float, default=180.0, help="speech per speaker (about)")
    parser.add_argument(
        "--chat-every",
        type=float,
        default=4.0,
        help="seconds between a room's messages, on average",
    )
    parser.add_argument(
        "--burst-every", type=float, default=30.0, help="seconds between bursts of 10"
    )
    parser.add_argument("--hand-every", type=float, default=15.0)
    parser.add_argument("--help-every", type=float, default=30.0)
    parser.add_argument(
        "--drain", type=float, default=3.0, help="after the speech, before collecting"
    )
    parser.add_argument("--workers", type=int, default=3, help="client processes")
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=60.0,
        help="before each phase, wait up to this long for other processes to use under a "
        "quarter of a core (0: no)",
    )
    parser.add_argument("--no-fallback", action="store_true", help="everyone on the WebSocket")
    parser.add_argument("--skip-raw", action="store_true", help="no raw Vosk baseline")
    parser.add_argument("--skip-bare", action="store_true", help="no bare relay baseline")
    parser.add_argument(
        "--model",
        type=Path,
        default=Path(os.environ.get("VOSK_MODEL_PATH") or ROOT / "var" / "models" / "model-en-us"),
    )
    parser.add_argument("--ws", default="websockets-sansio", help="uvicorn's WebSocket layer")
    parser.add_argument("--port", type=int, default=0, help="the app's port (0: a free one)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("--quick", action="store_true", help="about 60 s of speech")
    parser.add_argument("--raw-child", type=int, default=0, help=argparse.SUPPRESS)
    if "--quick" in (sys.argv[1:] if argv is None else argv):
        parser.set_defaults(seconds=60.0, burst_every=20.0)
    args = parser.parse_args(argv)
    if not 1 <= args.rooms <= 20 or not 10 <= args.seconds <= 600:
        parser.error("keep it bounded: 1 to 20 rooms, 10 to 600 seconds of speech")
    if args.raw_child:
        return args
    require_speech(parser, args.model)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.raw_child:
        print(
            json.dumps(raw_realtime(args.model, args.raw_child, args.seconds, os.cpu_count() or 2))
        )
        return 0
    raise_fd_limit()
    started = time.monotonic()

    def log(message: str) -> None:
        print(f"{time.monotonic() - started:7.1f}s  {message}", flush=True)

    tmp = Path(tempfile.mkdtemp(prefix="rt-bench-programme-"))
    try:
        database_url, world = make_database(tmp, clients=PER_ROOM * args.rooms, groups=args.rooms)
        host_id = add_host(database_url, world.programme_id)
        cast = cast_of(world, args.rooms, host_id, not args.no_fallback)
        tracks = make_tracks(len(cast.voices), args.seconds)
        packets = packets_for(tracks)
        log(
            f"database in {tmp}: {args.rooms} rooms of {PER_ROOM}, a host; {len(tracks)} speech "
            f"tracks of {statistics.mean(t.seconds for t in tracks):.0f} s"
        )
        ours = run_loop(measure_app(args, tmp, database_url, cast, tracks, packets, log))
        ours["speakers"] = cast.voices
        raw = None
        if not args.skip_raw:
            if args.quiet_wait > 0:
                wait_for_quiet(args.quiet_wait, log)
            log(f"raw Vosk: {len(tracks)} streams in real time, in a process of its own ...")
            raw = run_raw(args, len(tracks), log)
            if raw is not None:
                log(f"raw Vosk: p95 {fmt_s(raw['p95'])} s, CPU {raw['cpu_pct']:.0f}% of a core")
        bare = None
        if not args.skip_bare:
            try:
                bare = run_loop(measure_bare(args, tmp, cast, packets, log))
            except Exception as exc:  # noqa: BLE001 - the app's figures still print
                log(f"the bare relay's run failed: {type(exc).__name__}: {exc}")
        report(ours, raw, bare, args, cast)
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
