"""Page-weight benchmark: what each main page costs a browser on a weak connection.

    python bench/pageweight.py                     # every page; the room idles for 120 s
    python bench/pageweight.py --idle-seconds 30   # shorter idle windows
    python bench/pageweight.py --help

What it does, all on 127.0.0.1:
  1. a fresh SQLite database in a temporary folder, migrated with `alembic upgrade head`:
     one programme, a session under way with its breakout rooms open, two groups of 8
     (a facilitator and 7 participants each), a host; typed notes on group A's evidence
     board, a codebook of themes with codings; chat history in group A's room (sent through
     the app's own chat route once it runs);
  2. the app under uvicorn in its own process (production settings, the in-process broker);
  3. Debian's Chromium driven by Playwright, one fresh browser context (an empty cache) per
     page, with Chromium's network emulation at 256 kbit/s down, 64 kbit/s up and 800 ms
     of latency (`Network.emulateNetworkConditions`), counting through the DevTools
     protocol's Network domain every request and the bytes received for it
     (`encodedDataLength`: headers and body as they crossed the wire, compressed), the live
     WebSocket's handshake and frames included;
  4. time to interactive: from navigation until the load event, or for a live page until
     the live connection is established (the page says "Live");
  5. a second visit to the room page in the same context: what the cache saves;
  6. idle: the room page left open for --idle-seconds, with the bytes counted on the
     server's TCP sockets (`ss -ti`: payload both ways plus 52 bytes of IP and TCP header
     per segment, acknowledgements included), over the WebSocket and then over each
     fallback (Server-Sent Events, long-polling) for --fallback-idle-seconds;
  7. join: a participant opens the room page (empty cache, throttled), types a first chat
     message when the page says "Live", and the clock stops when the message is shown in
     the room's log (the server's echo over the live connection);
  8. baselines in the same run: the room page as the app served it, saved as a static
     file beside a copy of static/, loaded the same way (live transports blocked) from
     (a) Python's `http.server` (no compression, no cache headers) and (b) a bare Starlette
     app with gzip (`GZipMiddleware` + `StaticFiles`, no database, no templates): the floor
     for the same content. The client bundles of BigBlueButton (about 1.4 MB gzipped) and
     Jitsi Meet (about 3 MB) are printed as reference figures.

KB are 1,000 bytes; kbps are 1,000 bits per second.

The last line is machine-readable:
RESULT room_kb=<..> room_requests=<..> idle_kbps=<..> join_s=<throttled join and first message>
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# Run as a script, this file's folder comes first on the path, where bench/realtime.py
# would hide the `realtime` package the app imports: look in the project root instead.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(ROOT))

from bench.realtime import (  # noqa: E402 - after the path fix above
    SECRET,
    Server,
    free_port,
    start_app,
    stop_server,
    wait_listening,
)

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-quic",
    "--no-first-run",
    "--disable-sync",
]
# The weak connection: 256 kbit/s down, 64 kbit/s up, 800 ms round trip.
THROTTLE = {
    "offline": False,
    "latency": 800,
    "downloadThroughput": 256_000 / 8,
    "uploadThroughput": 64_000 / 8,
}
# Reference figures: the web clients' JavaScript bundles, gzipped (from the issue).
REFERENCES = [("BigBlueButton client", 1_400_000), ("Jitsi Meet client", 3_000_000)]
TARGET_KB, TARGET_REQUESTS, TARGET_IDLE_KBPS, TARGET_JOIN_S = 60, 10, 2.0, 15.0
# Bytes of IPv4 and TCP header (with timestamps) per segment, for the wire figure.
SEGMENT_OVERHEAD = 52
LIVE_TRANSPORT = re.compile(r"/live/(ws|sse|poll)(\?|$)")
CSRF_COOKIE_VALUE = "bench"


def kb(n: float) -> str:
    return f"{n / 1000:.1f}"


# --------------------------------------------------------------------------- database


@dataclass
class World:
    programme_id: int
    session_id: int
    group_a: int
    group_b: int
    host: int
    facilitator: int
    # Group A's participants; the first is the one whose pages are measured.
    participants: list[int]


NOTES = [
    "We talked about who gets to speak first in meetings and why it is nearly always the "
    "same people. Three of us said we wait to be asked.",
    "Photos of the flip chart: barriers to taking part (time, caring duties, jargon, "
    "travel costs) and what would help (papers a week before, plain English).",
    "A story from the community centre: the new ramp went in, but the meeting room is "
    "still upstairs, so people still cannot get there.",
    "Ideas for the next session: start with small groups, give everyone the questions in "
    "advance, and keep a quiet channel for people who do not want to speak.",
    "What trust means to us: being told what happened to what we said last time, and "
    "being paid for our time like the professionals in the room.",
    "Notes from the walk: bus stops without shelters, pavements blocked by bins, and a "
    "library that closes before people finish work.",
]
THEMES = [
    ("Being heard", "Who speaks, who is listened to, and what changes as a result."),
    ("Access to meetings", "Physical, digital and timing barriers to taking part."),
    ("Trust", "Feedback loops, payment and follow-through."),
    ("Plain language", "Jargon, papers and how information reaches people."),
    ("Local places", "Buildings, transport and the streets people use."),
]


def make_database(tmp: Path) -> tuple[str, World]:
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

    from app.evidence.models import Coding, EvidenceItem, EvidenceKind, Theme
    from app.live.models import Breakout
    from app.models import (
        Group,
        GroupFacilitator,
        Membership,
        Programme,
        ProgrammeSession,
        Role,
        User,
    )

    now = datetime.now(UTC)
    engine = create_engine(url)
    with Session(engine) as db:
        programme = Programme(
            title="Inclusive Leadership, autumn cohort",
            description="Six sessions on leading with people who use our services.",
            timezone="Europe/London",
            group_capacity=8,
        )
        db.add(programme)
        db.flush()
        session = ProgrammeSession(
            programme_id=programme.id,
            title="Session 3: being heard",
            starts_at=now - timedelta(minutes=20),
            ends_at=now + timedelta(hours=2),
        )
        groups = [
            Group(programme_id=programme.id, name=name, position=i)
            for i, name in enumerate(["Group A", "Group B"])
        ]
        db.add(session)
        db.add_all(groups)
        db.flush()

        def person(name: str, pronouns: str = "they/them") -> User:
            user = User(display_name=name, pronouns=pronouns, email=None)
            db.add(user)
            db.flush()
            return user

        def member(user: User, role: Role, group: Group | None = None) -> None:
            db.add(
                Membership(
                    user_id=user.id,
                    programme_id=programme.id,
                    role=role.value,
                    group_id=group.id if group else None,
                )
            )

        host = person("Hana Host", "she/her")
        member(host, Role.HOST)
        facilitators = []
        participants: dict[int, list[User]] = {}
        for group in groups:
            letter = group.name[-1]
            facilitator = person(f"Fola Facilitator {letter}")
            member(facilitator, Role.FACILITATOR)
            db.add(GroupFacilitator(group_id=group.id, user_id=facilitator.id))
            facilitators.append(facilitator)
            participants[group.id] = []
            for i in range(7):
                user = person(f"Participant {letter}{i + 1}", "she/her" if i % 2 else "he/him")
                member(user, Role.PARTICIPANT, group)
                participants[group.id].append(user)
        db.add(Breakout(session_id=session.id, opened_at=now, ends_at=now + timedelta(hours=1)))

        group_a = groups[0]
        themes = [
            Theme(programme_id=programme.id, name=name, description=description)
            for name, description in THEMES
        ]
        db.add_all(themes)
        items = []
        for i, text in enumerate(NOTES):
            item = EvidenceItem(
                programme_id=programme.id,
                group_id=group_a.id,
                session_id=session.id,
                uploader_id=participants[group_a.id][i].id,
                kind=EvidenceKind.NOTE.value,
                title=text.split(":")[0][:60],
                note_markdown=text,
                search_text=text,
            )
            items.append(item)
        db.add_all(items)
        db.flush()
        for i, item in enumerate(items):
            for theme in (themes[i % len(themes)], themes[(i + 2) % len(themes)]):
                db.add(Coding(item_id=item.id, theme_id=theme.id, coder_id=host.id))
        db.commit()
        world = World(
            programme_id=programme.id,
            session_id=session.id,
            group_a=group_a.id,
            group_b=groups[1].id,
            host=host.id,
            facilitator=facilitators[0].id,
            participants=[u.id for u in participants[group_a.id]],
        )
    engine.dispose()
    return url, world


def session_cookie(user_id: int) -> str:
    from app.security import SessionClaims, Signer

    return Signer(SECRET).session_cookie(SessionClaims(user_id=user_id, epoch=0))


def csrf_token() -> str:
    from app.security import Signer

    return Signer(SECRET).csrf_token(CSRF_COOKIE_VALUE)


def http(port: int, path: str, user_id: int | None, data: dict[str, str] | None = None) -> bytes:
    cookies = [f"rt_csrf={CSRF_COOKIE_VALUE}"]
    if user_id is not None:
        cookies.append(f"rt_session={session_cookie(user_id)}")
    headers = {"Cookie": "; ".join(cookies), "X-CSRF-Token": csrf_token(), "HX-Request": "true"}
    body = urllib.parse.urlencode(data).encode() if data is not None else None
    request = urllib.request.Request(  # noqa: S310 - our own server on 127.0.0.1
        f"http://127.0.0.1:{port}{path}", data=body, headers=headers
    )
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
        return bytes(response.read())


def status_of(port: int, path: str, user_id: int) -> int:
    try:
        http(port, path, user_id)
    except urllib.error.HTTPError as exc:
        return exc.code
    return 200


CHAT = [
    "Morning all, can everyone see the questions?",
    "Yes, thanks. I have been thinking about the first one since last week.",
    "For me being heard means someone comes back and says what they did with it.",
    "Agree. Last time nobody told us what happened to our ideas.",
    "Can we note that down for the board?",
    "I will add it as a note after this.",
]


def seed_chat(port: int, world: World) -> int:
    """Chat history in group A's room, sent through the app's chat route."""
    base = f"/programmes/{world.programme_id}/sessions/{world.session_id}/live"
    channel = f"s{world.session_id}:g{world.group_a}"
    senders = [world.facilitator, *world.participants[1:6]]
    sent = 0
    for round_ in range(3):
        for i, user_id in enumerate(senders):
            text = CHAT[(i + round_) % len(CHAT)]
            form = {"text": text, "channel": channel, "client_id": f"seed{round_}x{i}"}
            http(port, base + "/chat", user_id, form)
            sent += 1
    return sent


# --------------------------------------------------------------------------- measuring


@dataclass
class Request:
    url: str
    kind: str = ""
    status: int = 0
    received: int = 0  # bytes as they crossed the wire, headers included
    header_bytes: int = 0
    streamed: int = 0
    finished: bool = False
    from_cache: bool = False
    websocket: bool = False
    frames_in: int = 0

    @property
    def bytes(self) -> int:
        return self.received if self.finished else self.header_bytes + self.streamed

    @property
    def over_network(self) -> bool:
        return not self.from_cache and (self.websocket or self.bytes > 0 or not self.finished)


@dataclass
class NetLog:
    """Every request of one page as the DevTools protocol reports it."""

    requests: dict[str, Request] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)

    def attach(self, cdp: Any) -> None:
        cdp.on("Network.requestWillBeSent", self._will_send)
        cdp.on("Network.responseReceived", self._response)
        cdp.on("Network.dataReceived", self._data)
        cdp.on("Network.loadingFinished", self._finished)
        cdp.on("Network.loadingFailed", self._failed)
        cdp.on("Network.requestServedFromCache", self._cached)
        cdp.on("Network.webSocketCreated", self._ws_created)
        cdp.on("Network.webSocketHandshakeResponseReceived", self._ws_handshake)
        cdp.on("Network.webSocketFrameReceived", self._ws_frame)

    def _add(self, key: str, request: Request) -> None:
        self.requests[key] = request
        self.order.append(key)

    def _will_send(self, e: dict[str, Any]) -> None:
        rid = e["requestId"]
        if rid in self.requests and e.get("redirectResponse"):
            # A redirect: the earlier hop is a request of its own.
            old = self.requests.pop(rid)
            old.finished = True
            old.received = old.received or e["redirectResponse"].get("encodedDataLength", 0)
            self._add(f"{rid}#{len(self.order)}", old)
        self._add(rid, Request(url=e["request"]["url"], kind=e.get("type", "")))

    def _response(self, e: dict[str, Any]) -> None:
        r = self.requests.get(e["requestId"])
        if r is None:
            return
        response = e["response"]
        r.status = response.get("status", 0)
        r.header_bytes = int(response.get("encodedDataLength", 0))
        if response.get("fromDiskCache") or response.get("fromPrefetchCache"):
            r.from_cache = True

    def _data(self, e: dict[str, Any]) -> None:
        r = self.requests.get(e["requestId"])
        if r is not None:
            r.streamed += int(e.get("encodedDataLength", 0))

    def _finished(self, e: dict[str, Any]) -> None:
        r = self.requests.get(e["requestId"])
        if r is not None:
            r.finished = True
            r.received = int(e.get("encodedDataLength", 0))

    def _failed(self, e: dict[str, Any]) -> None:
        r = self.requests.get(e["requestId"])
        if r is not None:
            r.finished = True
            r.received = r.header_bytes + r.streamed
            r.status = r.status or -1

    def _cached(self, e: dict[str, Any]) -> None:
        r = self.requests.get(e["requestId"])
        if r is not None:
            r.from_cache = True

    def _ws_created(self, e: dict[str, Any]) -> None:
        self._add(e["requestId"], Request(url=e["url"], kind="WebSocket", websocket=True))

    def _ws_handshake(self, e: dict[str, Any]) -> None:
        r = self.requests.get(e["requestId"])
        if r is None:
            return
        response = e["response"]
        r.status = response.get("status", 0)
        text = response.get("headersText")
        if not text:
            lines = [f"HTTP/1.1 {r.status} {response.get('statusText', '')}"]
            lines += [f"{k}: {v}" for k, v in response.get("headers", {}).items()]
            text = "\r\n".join(lines) + "\r\n\r\n"
        r.header_bytes = len(text.encode())

    def _ws_frame(self, e: dict[str, Any]) -> None:
        r = self.requests.get(e["requestId"])
        if r is None:
            return
        size = len(e["response"].get("payloadData", "").encode())
        # Server frames are unmasked: 2 bytes of header, 4 with a 16-bit length.
        r.streamed += size + (2 if size < 126 else 4 if size < 65536 else 10)
        r.frames_in += 1

    def network(self, exclude: re.Pattern[str] | None = None) -> list[Request]:
        rows = [self.requests[k] for k in self.order if k in self.requests]
        rows = [r for r in rows if r.over_network and not r.url.startswith("data:")]
        if exclude is not None:
            rows = [r for r in rows if not exclude.search(r.url)]
        return rows


@dataclass
class PageFigures:
    name: str
    path: str
    received: int = 0
    requests: int = 0
    tti_s: float = 0.0
    dcl_s: float = 0.0
    rows: list[Request] = field(default_factory=list)
    note: str = ""


async def open_context(browser: Any, base: str, user_id: int | None, *, throttle: bool) -> Any:
    context = await browser.new_context(base_url=base)
    cookies = [{"name": "rt_csrf", "value": CSRF_COOKIE_VALUE, "url": base, "httpOnly": True}]
    if user_id is not None:
        cookie = session_cookie(user_id)
        cookies.append({"name": "rt_session", "value": cookie, "url": base, "httpOnly": True})
    await context.add_cookies(cookies)
    context.throttled = throttle
    return context


async def instrumented_page(context: Any) -> tuple[Any, Any, NetLog]:
    page = await context.new_page()
    page.set_default_timeout(60_000)
    cdp = await context.new_cdp_session(page)
    log = NetLog()
    log.attach(cdp)
    await cdp.send("Network.enable")
    if context.throttled:
        await cdp.send("Network.emulateNetworkConditions", THROTTLE)
    return page, cdp, log


# The status line says "Live" once the connection is up (its <noscript> text, which also
# starts with "Live", must not count).
LIVE_READY = (
    "() => { const s = document.getElementById('live-status'), t = s && s.textContent.trim();"
    " return t === 'Live' || t === 'Live (compatibility mode)'; }"
)


async def load(page: Any, path: str, *, live: bool) -> tuple[float, float]:
    """Navigates; returns (time to interactive, DOMContentLoaded), in seconds."""
    started = time.monotonic()
    await page.goto(path, wait_until="load")
    if live:
        await page.wait_for_function(LIVE_READY, polling=50)
    tti = time.monotonic() - started
    dcl = await page.evaluate(
        "() => performance.getEntriesByType('navigation')[0].domContentLoadedEventEnd / 1000"
    )
    return tti, float(dcl)


async def measure_page(
    browser: Any,
    base: str,
    name: str,
    path: str,
    user_id: int | None,
    *,
    live: bool = False,
    exclude: re.Pattern[str] | None = None,
    block_live: bool = False,
    settle: float = 2.0,
) -> tuple[PageFigures, Any, Any, NetLog]:
    context = await open_context(browser, base, user_id, throttle=True)
    page, cdp, log = await instrumented_page(context)
    if block_live:
        await block_live_transports(page)
    tti, dcl = await load(page, path, live=live)
    await page.wait_for_timeout(settle * 1000)
    rows = log.network(exclude)
    figures = PageFigures(name, path, sum(r.bytes for r in rows), len(rows), tti, dcl, rows)
    return figures, context, page, log


async def block_live_transports(page: Any) -> None:
    async def refuse(ws: Any) -> None:
        await ws.close(code=1006, reason="blocked")

    await page.route_web_socket(re.compile(r".*/live/ws$"), refuse)


# --------------------------------------------------------------------------- idle


def socket_counters(port: int) -> dict[str, tuple[int, int]]:
    """Per connection to the server's port: (payload bytes both ways, segments both ways)."""
    out = subprocess.run(
        ["ss", "-tinH", "state", "established", f"( sport = :{port} )"],  # noqa: S607
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    counters: dict[str, tuple[int, int]] = {}
    peer = ""
    for line in out.splitlines():
        if not line.startswith((" ", "\t")):
            parts = line.split()
            peer = parts[-1] if parts else ""
            continue
        # (\b: not data_segs_out and data_segs_in, which leave out pure acknowledgements.)
        values = dict(re.findall(r"\b(bytes_acked|bytes_received|segs_out|segs_in):(\d+)", line))
        payload = int(values.get("bytes_acked", 0)) + int(values.get("bytes_received", 0))
        segments = int(values.get("segs_out", 0)) + int(values.get("segs_in", 0))
        counters[peer] = (payload, segments)
    return counters


@dataclass
class IdleFigures:
    transport: str
    seconds: float
    payload: int
    segments: int
    http_requests: int
    frames: int
    new_urls: list[str] = field(default_factory=list)

    @property
    def wire(self) -> int:
        return self.payload + self.segments * SEGMENT_OVERHEAD

    @property
    def kbps(self) -> float:
        return self.wire * 8 / 1000 / self.seconds


async def measure_idle(
    page: Any, log: NetLog, port: int, transport: str, seconds: float, expected: str
) -> IdleFigures:
    status = await page.locator("#live-status").text_content()
    if (status or "").strip() != expected:
        raise RuntimeError(f"{transport}: the page says {status!r}, not {expected!r}")
    await page.wait_for_timeout(3000)  # presence and other joins settle
    before = {k: log.requests[k].bytes for k in log.order if k in log.requests}
    frames_before = sum(r.frames_in for r in log.requests.values())
    first = socket_counters(port)
    last = dict(first)
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        await asyncio.sleep(min(1.0, seconds - (time.monotonic() - started)))
        # A connection that closes drops out of `ss`: keep its last figures.
        last.update(socket_counters(port))
    elapsed = time.monotonic() - started
    payload = sum(v[0] - first.get(k, (0, 0))[0] for k, v in last.items())
    segments = sum(v[1] - first.get(k, (0, 0))[1] for k, v in last.items())
    new = [k for k in log.order if k not in before and not log.requests[k].websocket]
    frames = sum(r.frames_in for r in log.requests.values()) - frames_before
    urls = [urllib.parse.urlsplit(log.requests[k].url).path for k in new]
    return IdleFigures(transport, elapsed, payload, segments, len(new), frames, urls)


async def idle_on(
    browser: Any, base: str, port: int, path: str, user_id: int, transport: str, seconds: float
) -> IdleFigures:
    context = await open_context(browser, base, user_id, throttle=False)
    try:
        page, _cdp, log = await instrumented_page(context)
        if transport != "websocket":
            await block_live_transports(page)
        if transport == "long-poll":
            await page.add_init_script("delete window.EventSource;")
        await page.goto(path)
        expected = "Live" if transport == "websocket" else "Live (compatibility mode)"
        await page.wait_for_function(
            f"() => (document.getElementById('live-status') || {{}}).textContent === {expected!r}",
            timeout=30_000,
        )
        return await measure_idle(page, log, port, transport, seconds, expected)
    finally:
        await context.close()


# --------------------------------------------------------------------------- join


async def measure_join(browser: Any, base: str, path: str, user_id: int) -> tuple[float, float]:
    """(navigation to own first message shown and acknowledged, Enter to that), throttled."""
    context = await open_context(browser, base, user_id, throttle=True)
    try:
        page, _cdp, _log = await instrumented_page(context)
        text = f"Hello from a slow line {time.time_ns() % 100000}"
        started = time.monotonic()
        await page.goto(path, wait_until="commit")
        await page.wait_for_function(LIVE_READY, polling=50)
        await page.locator("#chat-text").fill(text)
        sent = time.monotonic()
        await page.locator("#chat-text").press("Enter")
        await page.locator(".log .msg", has_text=text).wait_for(state="visible")
        # ...and the send acknowledged: the chat route answered and the composer was cleared.
        # (Chromium's emulation delays HTTP responses, but not WebSocket frames, so the echo
        # can come before the answer.)
        await page.wait_for_function("() => document.getElementById('chat-text').value === ''")
        done = time.monotonic()
        return done - started, done - sent
    finally:
        await context.close()


# --------------------------------------------------------------------------- baselines


def static_copy(tmp: Path, port: int, path: str, user_id: int) -> Path:
    """The room page as the app served it, beside a copy of static/."""
    copy = tmp / "static-copy"
    shutil.copytree(ROOT / "static", copy / "static")
    page_dir = copy / path.strip("/")
    page_dir.mkdir(parents=True)
    (page_dir / "index.html").write_bytes(http(port, path, user_id))
    return copy


def start_static_server(tmp: Path, copy: Path, port: int, kind: str) -> Server:
    log_path = tmp / f"{kind}.log"
    if kind == "http.server":
        command = [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"]
        command += ["--directory", str(copy)]
    else:
        command = [sys.executable, str(Path(__file__).resolve()), "--serve-static", str(copy)]
        command += ["--port", str(port)]
    proc = subprocess.Popen(  # noqa: S603 - our own command lines
        command, cwd=ROOT, stdout=log_path.open("wb"), stderr=subprocess.STDOUT
    )
    server = Server(kind, proc, port, log_path)
    wait_listening(server)
    return server


def serve_static(directory: str, port: int) -> None:
    """The floor: the same files through Starlette's StaticFiles with gzip, nothing else."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.middleware.gzip import GZipMiddleware
    from starlette.staticfiles import StaticFiles

    app = Starlette(
        routes=[],
        middleware=[Middleware(GZipMiddleware, minimum_size=500)],
    )
    app.mount("/", StaticFiles(directory=directory, html=True))
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


# --------------------------------------------------------------------------- report


def print_rows(figures: PageFigures) -> None:
    for r in figures.rows:
        where = urllib.parse.urlsplit(r.url)
        name = where.path + ("?" + where.query[:20] if where.query else "")
        if len(name) > 70:
            name = "..." + name[-67:]
        extra = f"  ({r.frames_in} frames)" if r.websocket else ""
        print(f"      {r.status:>4} {r.kind[:10]:<10} {kb(r.bytes):>7} KB  {name}{extra}")


def print_page_table(pages: list[PageFigures]) -> None:
    print()
    print(f"  {'page':<42} {'KB':>7} {'requests':>9} {'TTI s':>7} {'DCL s':>7}")
    for p in pages:
        if p.note:
            print(f"  {p.name:<42} {p.note}")
            continue
        print(f"  {p.name:<42} {kb(p.received):>7} {p.requests:>9} {p.tti_s:>7.2f} {p.dcl_s:>7.2f}")


# --------------------------------------------------------------------------- main


async def run(args: argparse.Namespace, tmp: Path, log: Any) -> int:
    from playwright.async_api import async_playwright

    database_url, world = make_database(tmp)
    port = args.port or free_port()
    app = start_app(tmp, database_url, port, "websockets-sansio")
    servers: list[Server] = [app]
    try:
        log(f"roundtable serving on 127.0.0.1:{port} (pid {app.proc.pid})")
        log(f"seeded {seed_chat(port, world)} chat messages in group A's room")
        base = f"http://127.0.0.1:{port}"
        pid, sid, me = world.programme_id, world.session_id, world.participants[0]
        session_path = f"/programmes/{pid}/sessions/{sid}"
        live_path = session_path + "/live"
        pages_spec: list[tuple[str, str, int | None, bool]] = [
            ("sign-in", "/signin", None, False),
            ("home (participant)", "/", me, False),
            ("session lobby (participant)", session_path, me, False),
            ("live room (participant, breakout)", live_path, me, True),
            ("live room, text-only (?text=1)", live_path + "?text=1", me, True),
            (
                "evidence board (participant)",
                f"/programmes/{pid}/groups/{world.group_a}/evidence",
                me,
                False,
            ),
            ("theme overview (host)", f"/programmes/{pid}/themes/overview", world.host, False),
            ("live room (facilitator)", live_path, world.facilitator, True),
            ("live room (host)", live_path, world.host, True),
        ]
        for name, suffix, person in [
            ("facilitator console", f"/console/{world.group_a}", world.facilitator),
            ("host console", "/host", world.host),
        ]:
            pages_spec.append((name, live_path + suffix, person, True))

        pages: list[PageFigures] = []
        room: PageFigures | None = None
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            log("first loads: empty cache, 256/64 kbit/s, 800 ms latency")
            for name, path, who, live in pages_spec:
                if who is not None and status_of(port, path.split("?")[0], who) == 404:
                    pages.append(PageFigures(name, path, note="(not built yet: skipped)"))
                    continue
                figures, context, page, net = await measure_page(
                    browser, base, name, path, who, live=live
                )
                if path == live_path and who == me:
                    room = figures
                    # A second visit in the same context: what the cache saves.
                    await page.close()
                    page2, _cdp, net2 = await instrumented_page(context)
                    tti2, dcl2 = await load(page2, path, live=True)
                    await page2.wait_for_timeout(2000)
                    rows = net2.network()
                    again = PageFigures(
                        "  the same, second visit (cache)",
                        path,
                        sum(r.bytes for r in rows),
                        len(rows),
                        tti2,
                        dcl2,
                        rows,
                    )
                    pages.append(figures)
                    pages.append(again)
                else:
                    pages.append(figures)
                await context.close()
                log(f"  {name}: {kb(figures.received)} KB in {figures.requests} requests")

            assert room is not None
            print("\n  the room page's requests (first visit):")
            print_rows(room)
            print("  ... and on the second visit:")
            print_rows(pages[pages.index(room) + 1])

            log("baselines: the room page saved as a static file")
            copy = static_copy(tmp, port, live_path, me)
            baselines = []
            for kind in ("http.server", "starlette+gzip"):
                server = start_static_server(tmp, copy, free_port(), kind)
                servers.append(server)
                figures, context, _page, _net = await measure_page(
                    browser,
                    f"http://127.0.0.1:{server.port}",
                    f"static copy via {kind}",
                    live_path + "/",
                    None,
                    exclude=LIVE_TRANSPORT,
                    block_live=True,
                )
                await context.close()
                stop_server(server)
                baselines.append(figures)
                log(f"  {kind}: {kb(figures.received)} KB in {figures.requests} requests")

            log(f"join: open the room and send a first message, throttled ({args.joins} runs)")
            joins = [
                await measure_join(browser, base, live_path, world.participants[1 + i % 5])
                for i in range(args.joins)
            ]
            for total, echo in joins:
                log(f"  joined and sent in {total:.2f} s (Enter to shown: {echo:.2f} s)")

            idles = []
            plan = [("websocket", args.idle_seconds)]
            if args.fallback_idle_seconds > 0:
                plan += [("sse", args.fallback_idle_seconds)]
                plan += [("long-poll", args.fallback_idle_seconds)]
            for transport, seconds in plan:
                log(f"idle over {transport} for {seconds:.0f} s")
                idle = await idle_on(browser, base, port, live_path, me, transport, seconds)
                idles.append(idle)
                log(f"  {idle.kbps:.3f} kbps ({idle.wire} bytes on the wire)")
            await browser.close()

        report(pages, room, baselines, joins, idles)
        return 0
    finally:
        for server in servers:
            stop_server(server)


def report(
    pages: list[PageFigures],
    room: PageFigures,
    baselines: list[PageFigures],
    joins: list[tuple[float, float]],
    idles: list[IdleFigures],
) -> None:
    print("\nFirst load of each page, empty cache, 256 kbit/s down / 64 up / 800 ms latency")
    print("(KB received, headers included, as Chromium counts them; TTI = navigation to the")
    print(" load event, or for live pages to the live connection saying 'Live'):")
    print_page_table(pages)

    room_assets = [r for r in room.rows if not LIVE_TRANSPORT.search(r.url)]
    assets_bytes = sum(r.bytes for r in room_assets)
    print("\nBaselines, same run: the room page without its live connection")
    print_page_table(
        [
            PageFigures(
                "ours: room page + assets",
                room.path,
                assets_bytes,
                len(room_assets),
                room.tti_s,
                room.dcl_s,
            ),
            *baselines,
        ]
    )
    for b in baselines:
        ratio = assets_bytes / b.received if b.received else float("nan")
        print(f"  ours / {b.name}: {ratio:.2f}x the bytes")

    print("\nReference figures (client bundles, gzipped; from the issue):")
    for name, size in REFERENCES:
        print(
            f"  {name:<24} {size / 1000:>7.0f} KB   our room page is {room.received / size:.1%}"
            f" of it ({size / max(room.received, 1):.0f}x smaller)"
        )

    print("\nIdle (page open, nothing happening; on the server's TCP sockets, both ways):")
    print(
        f"  {'transport':<10} {'seconds':>8} {'payload B':>10} {'segments':>9} {'wire B':>8}"
        f" {'kbps':>7} {'HTTP reqs':>10} {'frames':>7}"
    )
    for i in idles:
        print(
            f"  {i.transport:<10} {i.seconds:>8.0f} {i.payload:>10} {i.segments:>9} {i.wire:>8}"
            f" {i.kbps:>7.3f} {i.http_requests:>10} {i.frames:>7}"
        )
    for i in idles:
        for path in sorted(set(i.new_urls)):
            print(f"  {i.transport}: {i.new_urls.count(path)} x {path}")
    totals = sorted(t for t, _ in joins)
    join_s = totals[len(totals) // 2]
    print(
        f"\nJoin and first message, throttled: median {join_s:.2f} s of {len(joins)} "
        f"(each: {', '.join(f'{t:.2f}' for t in totals)})"
    )
    print(
        f"\nTargets: room <= {TARGET_KB} KB and <= {TARGET_REQUESTS} requests; idle <= "
        f"{TARGET_IDLE_KBPS} kbps; join and first message <= {TARGET_JOIN_S:.0f} s"
    )
    idle_kbps = idles[0].kbps if idles else float("nan")
    print(
        f"RESULT room_kb={room.received / 1000:.1f} room_requests={room.requests} "
        f"idle_kbps={idle_kbps:.3f} join_s={join_s:.2f}"
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--idle-seconds", type=float, default=120.0, help="room idle, WebSocket")
    parser.add_argument(
        "--fallback-idle-seconds",
        type=float,
        default=60.0,
        help="room idle over SSE and over long-polling (0: skip)",
    )
    parser.add_argument("--joins", type=int, default=3, help="throttled joins (median)")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("--serve-static", metavar="DIR", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.serve_static:
        serve_static(args.serve_static, args.port)
        return 0
    if shutil.which(CHROMIUM) is None:
        print(f"Chromium is not installed at {CHROMIUM} (set CHROMIUM_PATH)", file=sys.stderr)
        return 2
    started = time.monotonic()

    def log(message: str) -> None:
        print(f"{time.monotonic() - started:7.1f}s  {message}", flush=True)

    tmp = Path(tempfile.mkdtemp(prefix="rt-pageweight-"))
    try:
        return asyncio.run(run(args, tmp, log))
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
