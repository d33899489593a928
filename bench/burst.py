"""Chat burst benchmark: everyone in a room posts at once ("type your name in the chat"),
against the real app and, in the same run, against a bare Starlette endpoint that writes
the same rows to the same kind of database (the floor).

    python bench/burst.py                      # 24 participants, 20 posts in flight, 1,000 posts
    python bench/burst.py --participants 80 --in-flight 80 --posts 2000
    python bench/burst.py --help

What it does, all on 127.0.0.1:
  1. a fresh SQLite database in a temporary folder (bench/realtime.py's `make_database`,
     with no breakout open: everyone is in the plenary room);
  2. the app under uvicorn in its own process (production settings: SQLite, the
     in-process broker), as `scripts/serve` runs it;
  3. one listener on the live WebSocket following the plenary, and the posters: each
     participant with their own session cookie, posting the page's form (`POST
     .../live/chat` with `HX-Request`, as htmx sends it: the one way in for chat); a share
     of them (`--websocket-share`) hold their own live WebSocket open meanwhile, as a page
     does (shown as "ws"), the others post without one ("http"). All posts start at once,
     at most `--in-flight` outstanding; post k is participant k mod N's, so each person
     posts many times quickly and the per-person limit (5 in 5 s) refuses some with 429;
  4. every answer is classified: accepted (204), refused with a reason (429/503 with
     Retry-After), or failed (any other 5xx, a transport error, no answer within
     `--timeout`, or at all within `--max-seconds`). Latency is from sending the post to
     its answer;
  5. afterwards: every accepted message must have reached the listener once, and be
     stored once; the server log must hold no `Exception in ASGI application`;
  6. the same posts, over HTTP, against a bare Starlette app (`--serve-bare`, uvicorn in
     its own process) whose one route inserts the row into `chat_messages` of a copy of
     the database, one aiosqlite connection, one commit per post: no session cookie, no
     CSRF, no rules, no events, no fan-out.

No retries: this is the offered burst, as a tester firing requests sees it (the page
itself retries a refused send after Retry-After, with the same client id).

The last line is machine-readable:
RESULT posts=<..> accepted=<..> refused=<..> failed=<..> p50_ms=<accepted> p99_ms=<accepted>
       bare_p50_ms=<..> bare_p99_ms=<..> p99_ratio=<ours/bare> throughput_ratio=<ours/bare>
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
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
    cpu_seconds,
    free_port,
    make_database,
    percentile,
    raise_fd_limit,
    start_app,
    stop_server,
    wait_listening,
)

TOKEN = re.compile(r"burst-(\d+)-x")
ASGI_FAILURE = "Exception in ASGI application"
CSRF_COOKIE_VALUE = "bench-csrf"


@dataclass
class Outcome:
    index: int
    via: str  # "http", or "ws": posted by someone holding a live WebSocket
    kind: str  # "accepted", "refused", "failed"
    reason: str
    seconds: float
    retry_after: str | None = None


@dataclass
class Run:
    name: str
    outcomes: list[Outcome] = field(default_factory=list)
    wall_seconds: float = 0.0
    server_cpu: float = 0.0
    delivered: Counter[int] = field(default_factory=Counter)
    stored: Counter[int] = field(default_factory=Counter)
    log_failures: int = 0
    notes: list[str] = field(default_factory=list)

    def of(self, kind: str) -> list[Outcome]:
        return [o for o in self.outcomes if o.kind == kind]

    def latencies_ms(self, kind: str = "accepted") -> list[float]:
        return sorted(o.seconds * 1000 for o in self.of(kind))


def fmt(value: float) -> str:
    if math.isnan(value):
        return "n/a"
    return f"{value:.1f}"


# --------------------------------------------------------------------------- posters


async def post_http(
    client: Any, url: str, index: int, timeout: float, *, via: str = "http"
) -> Outcome:
    """The page's form post; `via` says whether its poster holds a live WebSocket."""
    data = {"text": f"Hello, I am here burst-{index}-x", "client_id": f"b{index}"}
    started = time.perf_counter()
    try:
        response = await client.post(
            url, data=data, headers={"HX-Request": "true"}, timeout=timeout
        )
    except Exception as exc:
        return Outcome(index, via, "failed", type(exc).__name__, time.perf_counter() - started)
    took = time.perf_counter() - started
    status = response.status_code
    if status in (200, 204):
        return Outcome(index, via, "accepted", str(status), took)
    retry_after = response.headers.get("retry-after")
    if status >= 500 and status != 503:
        return Outcome(index, via, "failed", str(status), took)
    reason = f"{status} {response.text[:70]!r}"
    return Outcome(index, via, "refused", reason, took, retry_after)


async def open_ws(url: str, cookie: str, channel: str) -> Any:
    from websockets.asyncio.client import connect

    ws = await connect(
        url,
        additional_headers={"Cookie": cookie},
        open_timeout=30,
        ping_interval=None,
        max_size=None,
        proxy=None,
    )
    await ws.send(json.dumps({"type": "hello", "cursors": {channel: None}}))
    hello = json.loads(await asyncio.wait_for(ws.recv(), 10))
    if hello.get("t") != "hello":
        raise RuntimeError(f"no hello: {hello}")
    return ws


async def listen(ws: Any, delivered: Counter[int]) -> None:
    with contextlib.suppress(Exception):
        async for raw in ws:
            message = json.loads(raw)
            if message.get("t") == "chat.message":
                found = TOKEN.search(message.get("h", ""))
                if found:
                    delivered[int(found.group(1))] += 1


async def all_posts(one: Any, args: argparse.Namespace) -> list[Outcome]:
    """Every post, started together; those still unanswered after `--max-seconds` count as
    failed, so a server that hangs cannot hold the benchmark."""
    tasks = [asyncio.create_task(one(i)) for i in range(args.posts)]
    started = time.perf_counter()
    await asyncio.wait(tasks, timeout=args.max_seconds)
    outcomes = []
    for index, task in enumerate(tasks):
        if task.done() and not task.cancelled() and task.exception() is None:
            outcomes.append(task.result())
        else:
            task.cancel()
            outcomes.append(
                Outcome(index, "?", "failed", "no answer in time", time.perf_counter() - started)
            )
    await asyncio.gather(*tasks, return_exceptions=True)
    return outcomes


async def burst(
    *,
    http_base: str,
    chat_path: str,
    ws_url: str | None,
    cookies: list[str],
    channel: str,
    args: argparse.Namespace,
    run: Run,
) -> None:
    import httpx

    from app.security import Signer

    csrf = Signer(SECRET).csrf_token(CSRF_COOKIE_VALUE)
    ws_count = round(len(cookies) * args.websocket_share) if ws_url else 0
    limits = httpx.Limits(max_connections=4, max_keepalive_connections=4)
    clients = [
        httpx.AsyncClient(
            base_url=http_base,
            headers={"Cookie": cookie, "X-CSRF-Token": csrf},
            limits=limits,
        )
        for cookie in cookies
    ]
    # The live WebSockets of the posters that hold one, as their pages do.
    pages: list[Any] = []
    page_tasks: list[asyncio.Task[None]] = []
    listener = None
    listen_task = None
    try:
        if ws_url:
            listener = await open_ws(ws_url, cookies[-1], channel)
            listen_task = asyncio.create_task(listen(listener, run.delivered))
            for cookie in cookies[:ws_count]:
                pages.append(await open_ws(ws_url, cookie, channel))
                page_tasks.append(asyncio.create_task(listen(pages[-1], Counter())))
        gate = asyncio.Semaphore(args.in_flight)

        async def one(index: int) -> Outcome:
            person = index % len(cookies)
            async with gate:
                via = "ws" if person < ws_count else "http"
                return await post_http(clients[person], chat_path, index, args.timeout, via=via)

        started = time.perf_counter()
        run.outcomes = await all_posts(one, args)
        run.wall_seconds = time.perf_counter() - started
        if listen_task is not None:
            accepted = {o.index for o in run.of("accepted")}
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and not accepted <= set(run.delivered):
                await asyncio.sleep(0.1)
    finally:
        for page in pages:
            with contextlib.suppress(Exception):
                await page.close()
        for task in page_tasks:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        if listener is not None:
            with contextlib.suppress(Exception):
                await listener.close()
        if listen_task is not None:
            listen_task.cancel()
            with contextlib.suppress(BaseException):
                await listen_task
        for client in clients:
            await client.aclose()


def stored_counts(db_path: Path) -> Counter[int]:
    with contextlib.closing(sqlite3.connect(db_path)) as conn:
        rows = conn.execute("SELECT body FROM chat_messages WHERE body LIKE '%burst-%'").fetchall()
    counts: Counter[int] = Counter()
    for (body,) in rows:
        found = TOKEN.search(body)
        if found:
            counts[int(found.group(1))] += 1
    return counts


# --------------------------------------------------------------------------- the floor


def serve_bare(port: int, db_path: Path) -> None:
    """The floor: one route that inserts the post into chat_messages and commits, on one
    aiosqlite connection (WAL, as the app's), and answers 204."""
    import aiosqlite
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    state: dict[str, Any] = {}

    async def post(request: Request) -> Response:
        form = await request.form()
        await state["db"].execute(
            "INSERT INTO chat_messages (session_id, channel, author_id, body, client_id,"
            " created_at) VALUES (?, ?, ?, ?, ?, datetime('now'))",
            (
                int(request.path_params["session_id"]),
                f"s{request.path_params['session_id']}:plenary",
                int(request.headers["x-author"]),
                str(form["text"]),
                str(form["client_id"]),
            ),
        )
        await state["db"].commit()
        return Response(status_code=204)

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> Any:
        state["db"] = await aiosqlite.connect(db_path)
        await state["db"].execute("PRAGMA journal_mode=WAL")
        await state["db"].execute("PRAGMA synchronous=NORMAL")
        yield
        await state["db"].close()

    app = Starlette(
        routes=[Route("/programmes/{p}/sessions/{session_id}/live/chat", post, methods=["POST"])],
        lifespan=lifespan,
    )
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


def start_bare(tmp: Path, port: int, db_path: Path) -> Server:
    log_path = tmp / "bare.log"
    command = [sys.executable, str(Path(__file__).resolve()), "--serve-bare"]
    command += ["--port", str(port), "--database", str(db_path)]
    proc = subprocess.Popen(  # noqa: S603 - this script, as the bare server
        command, cwd=ROOT, stdout=log_path.open("wb"), stderr=subprocess.STDOUT
    )
    server = Server("bare starlette", proc, port, log_path)
    wait_listening(server)
    return server


# --------------------------------------------------------------------------- report


def show(run: Run) -> None:
    accepted, refused, failed = run.of("accepted"), run.of("refused"), run.of("failed")
    lat = run.latencies_ms()
    answered = sorted(o.seconds * 1000 for o in run.outcomes if o.kind != "failed")
    print(f"\n  {run.name}: {len(run.outcomes)} posts in {run.wall_seconds:.1f} s")
    print(f"    accepted {len(accepted):>5}   refused {len(refused):>5}   failed {len(failed):>5}")
    for via in ("http", "ws"):
        ones = [o for o in run.outcomes if o.via == via]
        if ones and run.name != "bare":
            kinds = Counter(o.kind for o in ones)
            print(f"    by {via:<4}    " + "  ".join(f"{k} {n}" for k, n in sorted(kinds.items())))
    reasons = Counter(o.reason for o in refused)
    for reason, n in reasons.most_common(6):
        print(f"    refused {n:>5} x {reason}")
    without = sum(1 for o in refused if o.retry_after is None)
    if refused:
        print(f"    refusals without Retry-After: {without}")
    for reason, n in Counter(o.reason for o in failed).most_common(6):
        print(f"    FAILED  {n:>5} x {reason}")
    print(
        f"    accepted latency ms: p50 {fmt(percentile(lat, 0.5))}  p90 "
        f"{fmt(percentile(lat, 0.9))}  p99 {fmt(percentile(lat, 0.99))}  max "
        f"{fmt(lat[-1] if lat else math.nan)}"
    )
    print(
        f"    any answer ms:       p50 {fmt(percentile(answered, 0.5))}  p99 "
        f"{fmt(percentile(answered, 0.99))}"
    )
    rate = len(run.outcomes) / run.wall_seconds if run.wall_seconds else math.nan
    print(
        f"    answers per second {rate:.0f}, accepted per second "
        f"{len(accepted) / run.wall_seconds if run.wall_seconds else math.nan:.0f}, "
        f"server CPU {run.server_cpu:.1f} s"
    )
    if run.name != "bare":
        ids = {o.index for o in accepted}
        missing = [i for i in ids if run.delivered[i] == 0]
        twice = [i for i, n in run.delivered.items() if n > 1]
        unstored = [i for i in ids if run.stored[i] != 1]
        extra = [i for i in run.stored if i not in ids]
        print(
            f"    delivered to the room: {len(ids) - len(missing)}/{len(ids)} accepted "
            f"(twice: {len(twice)}); stored once: {len(ids) - len(unstored)}/{len(ids)}; "
            f"stored but not acknowledged: {len(extra)}"
        )
        print(f"    '{ASGI_FAILURE}' in the server log: {run.log_failures}")
    for note in run.notes:
        print(f"    note: {note}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--participants", type=int, default=24)
    parser.add_argument("--in-flight", type=int, default=20, help="posts outstanding at once")
    parser.add_argument("--posts", type=int, default=1000)
    parser.add_argument(
        "--websocket-share",
        type=float,
        default=0.25,
        help="share of the posters holding their live WebSocket open while they post",
    )
    parser.add_argument("--timeout", type=float, default=40.0, help="seconds to wait for an answer")
    parser.add_argument(
        "--max-seconds", type=float, default=120.0, help="the longest a burst may take"
    )
    parser.add_argument("--skip-bare", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("--serve-bare", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--database", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_bare:
        serve_bare(args.port, args.database)
        return 0
    if not 1 <= args.participants <= 2000 or not 1 <= args.posts <= 20_000:
        parser.error("--participants 1..2000 and --posts 1..20000")
    raise_fd_limit()
    started = time.monotonic()

    def log(message: str) -> None:
        print(f"{time.monotonic() - started:7.1f}s  {message}", flush=True)

    tmp = Path(tempfile.mkdtemp(prefix="rt-burst-"))
    app: Server | None = None
    bare: Server | None = None
    try:
        log(f"database in {tmp}: {args.participants} participants, everyone in the plenary")
        database_url, world = make_database(tmp, clients=args.participants, groups=1)
        db_path = tmp / "bench.db"
        with contextlib.closing(sqlite3.connect(db_path)) as conn:
            conn.execute("DELETE FROM breakouts")
            conn.commit()
        bare_db = tmp / "bare.db"
        shutil.copy(db_path, bare_db)
        from app.security import CSRF_COOKIE, SESSION_COOKIE, SessionClaims, Signer

        signer = Signer(SECRET)
        cookies = [
            f"{SESSION_COOKIE}={signer.session_cookie(SessionClaims(user_id=uid, epoch=0))}; "
            f"{CSRF_COOKIE}={CSRF_COOKIE_VALUE}"
            for uid, _group in world.seats
        ]
        sid = world.session_id
        base = f"/programmes/{world.programme_id}/sessions/{sid}/live"
        channel = f"s{sid}:plenary"

        port = args.port or free_port()
        app = start_app(tmp, database_url, port, "websockets-sansio")
        log(f"roundtable serving on 127.0.0.1:{port} (pid {app.proc.pid})")
        ours = Run("roundtable")
        cpu0 = cpu_seconds(app.proc.pid)
        asyncio.run(
            burst(
                http_base=f"http://127.0.0.1:{port}",
                chat_path=base + "/chat",
                ws_url=f"ws://127.0.0.1:{port}{base}/ws",
                cookies=cookies,
                channel=channel,
                args=args,
                run=ours,
            )
        )
        ours.server_cpu = cpu_seconds(app.proc.pid) - cpu0
        log(f"roundtable burst done in {ours.wall_seconds:.1f} s")
        stop_server(app)
        app_log = app.log_path.read_text(errors="replace")
        ours.log_failures = app_log.count(ASGI_FAILURE)
        tracebacks = app_log.count("Traceback (most recent call last)")
        busy = app_log.count("the database is too busy") + app_log.count("stayed too busy")
        ours.notes.append(
            f"server log: {tracebacks} tracebacks, {busy} warnings of a database too busy"
        )
        app = None
        ours.stored = stored_counts(db_path)

        bare_run: Run | None = None
        if not args.skip_bare:
            bare_port = free_port()
            bare = start_bare(tmp, bare_port, bare_db)
            log(f"bare starlette serving on 127.0.0.1:{bare_port} (pid {bare.proc.pid})")
            bare_run = Run("bare")
            cpu0 = cpu_seconds(bare.proc.pid)
            asyncio.run(bare_burst(bare_port, base, world, args, bare_run))
            bare_run.server_cpu = cpu_seconds(bare.proc.pid) - cpu0
            log(f"bare burst done in {bare_run.wall_seconds:.1f} s")
            stop_server(bare)
            bare = None
        report(ours, bare_run, args)
        return 0
    finally:
        stop_server(app)
        stop_server(bare)
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


async def bare_burst(port: int, base: str, world: Any, args: argparse.Namespace, run: Run) -> None:
    import httpx

    limits = httpx.Limits(max_connections=4, max_keepalive_connections=4)
    clients = [
        httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", headers={"X-Author": str(uid)}, limits=limits
        )
        for uid, _group in world.seats
    ]
    gate = asyncio.Semaphore(args.in_flight)

    async def one(index: int) -> Outcome:
        async with gate:
            return await post_http(
                clients[index % len(clients)], base + "/chat", index, args.timeout
            )

    try:
        started = time.perf_counter()
        run.outcomes = await all_posts(one, args)
        run.wall_seconds = time.perf_counter() - started
    finally:
        for client in clients:
            await client.aclose()


def report(ours: Run, bare: Run | None, args: argparse.Namespace) -> None:
    print(
        f"\nburst: {args.participants} participants, {args.posts} posts, at most "
        f"{args.in_flight} in flight, {args.websocket_share:.0%} of the posters on the "
        f"WebSocket; machine: {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}"
    )
    show(ours)
    lat = ours.latencies_ms()
    p50, p99 = percentile(lat, 0.5), percentile(lat, 0.99)
    bare_p50 = bare_p99 = ratio = throughput_ratio = math.nan
    if bare is not None:
        show(bare)
        bare_lat = bare.latencies_ms()
        bare_p50, bare_p99 = percentile(bare_lat, 0.5), percentile(bare_lat, 0.99)
        ratio = p99 / bare_p99 if bare_p99 else math.nan
        ours_rate = len(ours.outcomes) / ours.wall_seconds
        bare_rate = len(bare.outcomes) / bare.wall_seconds
        throughput_ratio = ours_rate / bare_rate
        print(
            f"\n  ours / bare: accepted p99 {ratio:.2f}x; answers per second "
            f"{throughput_ratio:.2f}x (the bare route checks nothing and sends nothing)"
        )
    print(
        f"RESULT posts={len(ours.outcomes)} accepted={len(ours.of('accepted'))} "
        f"refused={len(ours.of('refused'))} failed={len(ours.of('failed'))} "
        f"p50_ms={fmt(p50)} p99_ms={fmt(p99)} bare_p50_ms={fmt(bare_p50)} "
        f"bare_p99_ms={fmt(bare_p99)} p99_ratio={ratio:.2f} throughput_ratio={throughput_ratio:.2f}"
    )


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    sys.exit(main())
