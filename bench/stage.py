"""Stage benchmark: a presenter steps through a slide deck in front of 80 viewers, then an
interpreter's video tile goes to the same 80 viewers; against pypdfium2 and Pillow alone
(rendering the deck) and a bare `websockets` relay (the video), in the same run.

    python bench/stage.py              # 19 slide changes, 30 s of video each; about 3 minutes
    python bench/stage.py --quick      # 9 slide changes, 10 s of video each; about 1.5 minutes
    python bench/stage.py --help       # --viewers, --sse, --poll, --interval, --video-seconds ...

What it does, all on 127.0.0.1:
  1. a deck made with fpdf2 (bench/stage_deck.py: 10 pages, 16:9, a title, text and a
     picture on each), rendered by pypdfium2 alone at the server's widths, its text
     extracted, and encoded to WebP by Pillow alone: the per-page baseline;
  2. a fresh SQLite database (bench/realtime.py's `make_database`: one programme, a session
     under way, 80 participants in 10 groups) with no breakout open, so everyone is in the
     plenary; a host (bench/programme.py's `add_host`), and a participant in no group whom
     the host names interpreter for the session and pins on the plenary's stage (the live
     page's forms, `.../live/stage/roles` and `.../live/stage/tiles/pin`) before the video;
  3. the app under uvicorn in its own process (bench/realtime.py's `start_app`: production
     settings, one process, the in-process broker, no Vosk model);
  4. the host uploads the deck through the decks page's upload route (multipart, with the
     CSRF header, as the page's form does): the time until the deck is stored, per page;
  5. slides: 80 viewers (bench/voice.py's listener process, with bench/stage_slides.py's
     `SlideRecorder`) follow the plenary, most on the live WebSocket, `--sse` on
     Server-Sent Events and `--poll` on long-polling; the host posts `.../live/stage/slide`
     (deck_id, number, the CSRF token) every `--interval` seconds. Each viewer, on reading
     a `stage.slide` event, fetches the image it names with its own HTTP client and cache,
     as its browser would (a fresh cached copy is not asked for again; a stale one is
     revalidated with If-None-Match / If-Modified-Since). Shown = the image is there;
     "new" slides are those whose image came from the server, "cached" the others. Like
     static/js/stage.js, each viewer also fetches the next slide's image (the event's
     data-next-srcset) 0.3-1.8 s after a slide is shown, into its cache.
     Latency = shown time minus the time the presenter's post left (CLOCK_MONOTONIC, which
     every process on the machine shares); a slide a viewer never showed counts as
     infinitely late. Bytes per viewer per slide: everything its live connection read during
     the changes (events, heartbeats; long-polls with 200 bytes of status and headers each)
     plus the image responses (status, headers, body), over the number of changes;
  6. video: the same 80 viewers on the live WebSocket asking for video (`"media":["video"]`);
     the interpreter's page (bench/stage_video.py's `Tile`) opens its live WebSocket and
     sends real VP8 frames (libvpx via PyAV, 320x240, 15 frames/s, about 200 kbit/s, a
     keyframe every 2 s and on request) as media packets, each when it would have been
     captured. Frame delivery latency: the viewer's read time minus the tile's send time of
     the same frame (by seq). The server's CPU is read from /proc over the window;
  7. the same video to the same 80 viewers through a bare relay (`--serve-bare`: each packet
     restamped and sent to every viewer; no database, no authorization, no limits, no
     queues). bare_cpu_ratio = the app's CPU / the bare relay's.

The last line is machine-readable:
RESULT slide_p95_ms=<WebSocket viewers, a change shown, p95> slide_kb=<per viewer, all it
       read for the slides (images fetched ahead included) over the slides shown, p95>
       video_viewers=<viewers that received frames>
       video_kbps=<p95 per viewer> video_cpu_pct=<server, % of one core> bare_cpu_ratio=<..>
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import html
import os
import shutil
import signal
import sqlite3
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# Run as a script, this file's folder comes first on the path, where bench/realtime.py
# would hide the `realtime` package the app imports: look in the project root instead.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(ROOT))

from bench import stage_slides, stage_video  # noqa: E402 - after the path fix above
from bench.captions import wait_for_quiet  # noqa: E402
from bench.programme import add_host  # noqa: E402
from bench.realtime import (  # noqa: E402
    CSRF_VALUE,
    SECRET,
    FormPoster,
    Server,
    cpu_seconds,
    free_port,
    make_database,
    raise_fd_limit,
    run_loop,
    start_app,
    start_bare,
    stop_server,
)
from bench.stage_deck import make_deck, raw_render  # noqa: E402
from bench.stage_report import report  # noqa: E402
from bench.voice import Listeners, ListenerSpec, measure_window  # noqa: E402

GROUPS = 10
# After the video's window, people who arrive while the tile goes on sending.
LATE_VIEWERS, LATE_S = 5, 3.0


# --------------------------------------------------------------------------- the programme


class Stage:
    """Who is who, and where things are."""

    def __init__(self, database_url: str, world: Any, host_id: int, interpreter_id: int) -> None:
        from app.security import CSRF_COOKIE, SessionClaims, Signer

        signer = Signer(SECRET)
        self.database_url = database_url
        self.programme_id, self.session_id = world.programme_id, world.session_id
        self.viewers = [user_id for user_id, _ in world.seats]
        self.host_id, self.interpreter_id = host_id, interpreter_id
        people = [*self.viewers, host_id, interpreter_id]
        self.cookies = {
            uid: signer.session_cookie(SessionClaims(user_id=uid, epoch=0)) for uid in people
        }
        self.csrf_token = signer.csrf_token(CSRF_VALUE)
        self.csrf_cookie = f"{CSRF_COOKIE}={CSRF_VALUE}"
        self.plenary = f"s{self.session_id}:plenary"
        self.base = f"/programmes/{self.programme_id}/sessions/{self.session_id}"

    def host_cookie(self) -> str:
        return f"rt_session={self.cookies[self.host_id]}; {self.csrf_cookie}"


def make_stage(tmp: Path, viewers: int) -> Stage:
    """The programme: `viewers` participants in the plenary (no breakout open), a host, and
    the person the host will name interpreter (a participant in no group)."""
    from sqlalchemy import create_engine
    from sqlalchemy.orm import Session

    from app.models import Membership, Role, User

    database_url, world = make_database(tmp, clients=viewers, groups=min(GROUPS, viewers))
    with contextlib.closing(sqlite3.connect(tmp / "bench.db")) as conn:
        conn.execute("DELETE FROM breakouts")
        conn.commit()
    host_id = add_host(database_url, world.programme_id)
    engine = create_engine(database_url)
    with Session(engine) as db:
        interpreter = User(display_name="Bench Interpreter", pronouns="he/him")
        db.add(interpreter)
        db.flush()
        role = Role.PARTICIPANT.value
        db.add(Membership(user_id=interpreter.id, programme_id=world.programme_id, role=role))
        db.commit()
        interpreter_id = int(interpreter.id)
    engine.dispose()
    return Stage(database_url, world, host_id, interpreter_id)


async def pin_interpreter(server: Server, stage: Stage, log: Any) -> None:
    """The host names the interpreter for the session and pins their tile on the plenary's
    stage, with the live page's forms."""
    poster = FormPoster(f"http://127.0.0.1:{server.port}{stage.base}/live/stage/roles")
    who = {"user_id": str(stage.interpreter_id), "csrf_token": stage.csrf_token}
    try:
        named = await poster.post(
            {**who, "role": "interpreter"}, cookie=stage.host_cookie(), csrf=stage.csrf_token
        )
        poster.path = f"{stage.base}/live/stage/tiles/pin"
        pinned = await poster.post(
            {**who, "kind": "interpreter"}, cookie=stage.host_cookie(), csrf=stage.csrf_token
        )
    finally:
        await poster.close()
    log(f"interpreter named ({named}) and pinned ({pinned}) by the host")
    if named >= 400 or pinned >= 400:
        raise RuntimeError(f"the host could not pin the interpreter: {named}, {pinned}")


# --------------------------------------------------------------------------- the deck


def cpu_with_children(pid: int) -> float:
    """CPU seconds of a process and of its children that have ended (the deck's renderer
    is a process of the server's own, waited for)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def stored_deck(tmp: Path) -> tuple[int, int] | None:
    """The newest deck's id and page count, once the app has stored it."""
    with contextlib.closing(sqlite3.connect(tmp / "bench.db")) as conn:
        row = conn.execute("SELECT id, page_count FROM decks ORDER BY id DESC LIMIT 1").fetchone()
    return (int(row[0]), int(row[1])) if row else None


async def upload_deck(
    server: Server, stage: Stage, tmp: Path, pdf: bytes, log: Any
) -> dict[str, Any]:
    """The host uploads the deck as the decks page's form does; timed until it is stored
    (the answer, or the deck's row if the answer comes first)."""
    import httpx

    url = f"http://127.0.0.1:{server.port}{stage.base}/decks"
    headers = {"Cookie": stage.host_cookie(), "X-CSRF-Token": stage.csrf_token}
    files = {"file": ("bench-deck.pdf", pdf, "application/pdf")}
    form = {"title": "Benchmark deck", "csrf_token": stage.csrf_token}
    cpu0 = cpu_with_children(server.proc.pid)
    started = time.perf_counter()
    async with httpx.AsyncClient(timeout=httpx.Timeout(300.0)) as client:
        response = await client.post(url, headers=headers, files=files, data=form)
    answered = time.perf_counter() - started
    deck = stored_deck(tmp)
    while deck is None and response.status_code < 400 and time.perf_counter() - started < 120:
        await asyncio.sleep(0.05)
        deck = stored_deck(tmp)
    seconds = time.perf_counter() - started
    out: dict[str, Any] = {
        "status": response.status_code,
        "answer_s": answered,
        "stored_s": seconds,
        "server_cpu_s": cpu_with_children(server.proc.pid) - cpu0,
        "deck": deck,
    }
    if deck is None:
        out["error"] = f"upload answered {response.status_code}: {response.text[:200]!r}"
        log(out["error"])
    else:
        log(f"deck {deck[0]} stored: {deck[1]} pages in {seconds:.2f} s")
    return out


# --------------------------------------------------------------------------- slides


def slide_specs(stage: Stage, port: int, args: argparse.Namespace) -> dict[int, ListenerSpec]:
    """Most viewers on the WebSocket; `--sse` on Server-Sent Events, `--poll` on long-polling."""
    live = f"{stage.base}/live"
    room = urllib.parse.quote(stage.plenary)
    specs = {}
    for key, user_id in enumerate(stage.viewers):
        if key < args.sse:
            kind, url = "sse", f"http://127.0.0.1:{port}{live}/sse?cursors={room}="
        elif key < args.sse + args.poll:
            kind, url = "poll", f"http://127.0.0.1:{port}{live}/poll"
        else:
            kind, url = "ws", f"ws://127.0.0.1:{port}{live}/ws"
        specs[key] = ListenerSpec(
            key, kind, user_id, stage.plenary, url, stage.cookies[user_id], ""
        )
    return specs


def slide_plan(pages: int, changes: int) -> list[int]:
    """As a presenter goes: forward from page 2, with a jump ahead and a jump back in the
    first pass (slides nobody has fetched ahead: "new"), then the deck again from page 1
    (cached by then)."""
    order = list(range(2, pages + 1))
    if pages >= 8:
        third = pages // 3
        order = [*order[:third], *order[2 * third :], *order[third : 2 * third]]
    while len(order) < changes:
        order += list(range(1, pages + 1))
    return order[:changes]


async def slides_phase(
    server: Server, stage: Stage, deck: tuple[int, int], args: argparse.Namespace, log: Any
) -> dict[str, Any]:
    specs = slide_specs(stage, server.port, args)
    listeners = Listeners(stage_slides.SlideRecorder)
    poster = FormPoster(f"http://127.0.0.1:{server.port}{stage.base}/live/stage/slide")

    async def move(number: int) -> stage_slides.Change:
        form = {"deck_id": str(deck[0]), "number": str(number), "csrf_token": stage.csrf_token}
        change = stage_slides.Change(number, time.monotonic_ns())
        change.status = await poster.post(form, cookie=stage.host_cookie(), csrf=stage.csrf_token)
        change.answered_ns = time.monotonic_ns()
        return change

    try:
        opened = await listeners.ask("connect", list(specs.values()))
        log(
            f"slides: {opened['open']} of {len(specs)} viewers connected {opened['failures'] or ''}"
        )
        first = await move(1)  # the deck on the stage; not measured
        log(f"deck on the stage: the post answered {first.status}")
        await quiet(args, log, server, listeners)
        plan = slide_plan(deck[1], args.changes)
        w0 = time.monotonic_ns() + 200_000_000
        w1 = w0 + int(len(plan) * args.interval * 1e9)
        await listeners.ask("start", (w0, w1 + 2_000_000_000))
        meter = asyncio.create_task(measure_window(server, listeners, w0, w1))
        changes = []
        for n, number in enumerate(plan):
            await asyncio.sleep(
                max(0.0, (w0 + n * args.interval * 1e9 - time.monotonic_ns()) / 1e9)
            )
            changes.append(await move(number))
        window = await meter
        await asyncio.sleep(2.0)
        records = await listeners.ask("stop")
    finally:
        await poster.close()
        await listeners.close()
    kinds = {key: spec.kind for key, spec in specs.items()}
    figures = stage_slides.analyse(records, kinds, changes)
    answer_ms = sorted((c.answered_ns - c.posted_ns) / 1e6 for c in changes)
    cost = await image_cost(server, stage, deck[0])
    return {"figures": figures, "answer_ms": answer_ms, "image_cost": cost, **window}


async def image_cost(
    server: Server, stage: Stage, deck_id: int, rounds: int = 100
) -> dict[str, float]:
    """What one slide image costs the server: `rounds` requests one after the other, each
    asking for the whole image (200), then each revalidating it (304); server CPU ms each."""
    import httpx

    from app.stage.urls import slide_image_url

    origin = f"http://127.0.0.1:{server.port}"
    url = origin + slide_image_url(stage.programme_id, stage.session_id, deck_id, 2)
    headers = {"Cookie": f"rt_session={stage.cookies[stage.viewers[0]]}"}
    out = {}
    async with httpx.AsyncClient(timeout=httpx.Timeout(30.0)) as client:
        # The signed link the stage gives viewers: the live slide's, as the room page has it.
        room = await client.get(f"{origin}{stage.base}/live/room", headers=headers)
        signed = stage_slides.IMG_SRC.search(room.text)
        links = {"": url, "signed_": origin + html.unescape(signed.group(1)) if signed else ""}
        for prefix, link in links.items():
            if not link:
                continue
            etag = (await client.get(link, headers=headers)).headers.get("etag", "")
            for name, extra in (("full", {}), ("revalidated", {"If-None-Match": etag})):
                cpu0, t0 = cpu_seconds(server.proc.pid), time.perf_counter()
                for _ in range(rounds):
                    await client.get(link, headers={**headers, **extra})
                cpu_ms = (cpu_seconds(server.proc.pid) - cpu0) * 1000 / rounds
                out[f"{prefix}{name}_cpu_ms"] = cpu_ms
                out[f"{prefix}{name}_ms"] = (time.perf_counter() - t0) * 1000 / rounds
    return out


async def quiet(args: argparse.Namespace, log: Any, server: Server, listeners: Listeners) -> None:
    """Wait (up to --quiet-wait) for other processes to leave the cores to the measured."""
    if args.quiet_wait:
        exclude = [server.proc.pid, listeners.proc.pid or 0]
        await asyncio.to_thread(wait_for_quiet, args.quiet_wait, log, exclude)


# --------------------------------------------------------------------------- video


async def video_phase(
    server: Server,
    stage: Stage,
    viewer_url: str,
    tile: stage_video.Tile,
    args: argparse.Namespace,
    log: Any,
) -> dict[str, Any]:
    """The tile sends for warm-up + `--video-seconds`; the viewers record the window."""
    late_hello = {"type": "hello", "cursors": {stage.plenary: None}, "media": ["video"]}
    specs = [
        ListenerSpec(key, "ws", uid, stage.plenary, viewer_url, stage.cookies[uid], "video")
        for key, uid in enumerate(stage.viewers)
    ]
    listeners = Listeners()
    try:
        opened = await listeners.ask("connect", specs)
        log(f"video: {opened['open']} of {len(specs)} viewers connected {opened['failures'] or ''}")
        await quiet(args, log, server, listeners)
        await tile.connect()
        start = time.monotonic_ns() + 300_000_000
        w0 = start + int(args.video_warmup * 1e9)
        w1 = w0 + int(args.video_seconds * 1e9)
        await listeners.ask("start", (w0, w1))
        meter = asyncio.create_task(measure_window(server, listeners, w0, w1))
        # Then LATE_S more, while LATE_VIEWERS people arrive: their first picture.
        seconds = args.video_warmup + args.video_seconds + LATE_S
        sending = asyncio.create_task(tile.send(start, int(seconds * stage_video.FPS)))
        window = await meter
        await asyncio.sleep(0.5)
        late = sorted(
            await asyncio.gather(
                *(
                    stage_video.first_picture(viewer_url, stage.cookies[uid], late_hello)
                    for uid in stage.viewers[:LATE_VIEWERS]
                )
            )
        )
        await sending
        await asyncio.sleep(1.0)
        records = await listeners.ask("stop")
    finally:
        await tile.close()
        await listeners.close()
    figures = stage_video.analyse(records, tile.sent, stage.interpreter_id, (w0, w1))
    figures.update(window)
    figures["late_ms"] = late
    return figures


async def run_app(
    args: argparse.Namespace, tmp: Path, stage: Stage, pdf: bytes, log: Any
) -> dict[str, Any]:
    port = args.port or free_port()
    app = start_app(tmp, stage.database_url, port, args.ws)
    log(f"roundtable serving on 127.0.0.1:{port} (pid {app.proc.pid})")
    out: dict[str, Any] = {}
    try:
        out["upload"] = await upload_deck(app, stage, tmp, pdf, log)
        deck = out["upload"]["deck"]
        if deck is not None and not args.skip_slides:
            out["slides"] = await slides_phase(app, stage, deck, args, log)
        if not args.skip_video:
            await pin_interpreter(app, stage, log)
            live = f"ws://127.0.0.1:{port}{stage.base}/live/ws"
            hello = {"type": "hello", "cursors": {stage.plenary: None}}
            tile = stage_video.Tile(live, stage.cookies[stage.interpreter_id], hello)
            out["video"] = await video_phase(app, stage, live, tile, args, log)
    finally:
        stop_server(app)
        out["log"] = app.log_tail(12)
    return out


async def run_bare(args: argparse.Namespace, tmp: Path, stage: Stage, log: Any) -> dict[str, Any]:
    port = free_port()
    bare = start_bare(tmp, port, script=Path(__file__).resolve())
    log(f"bare relay serving on 127.0.0.1:{port} (pid {bare.proc.pid})")
    try:
        url = f"ws://127.0.0.1:{port}/video?user={stage.interpreter_id}"
        tile = stage_video.Tile(url, None, None)
        return await video_phase(bare, stage, f"ws://127.0.0.1:{port}/ws", tile, args, log)
    finally:
        stop_server(bare)


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--viewers", type=int, default=80)
    parser.add_argument("--sse", type=int, default=8, help="slide viewers on Server-Sent Events")
    parser.add_argument("--poll", type=int, default=8, help="slide viewers on long-polling")
    parser.add_argument("--changes", type=int, default=19, help="slide changes measured")
    parser.add_argument("--interval", type=float, default=4.0, help="seconds between changes")
    parser.add_argument("--video-seconds", type=float, default=30.0, help="measured window")
    parser.add_argument("--video-warmup", type=float, default=3.0, help="not measured")
    parser.add_argument("--render-rounds", type=int, default=3, help="raw render: best of")
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=20.0,
        help="before each video window, wait up to this long for other processes to calm down",
    )
    parser.add_argument("--ws", default="websockets-sansio", help="uvicorn's WebSocket layer")
    parser.add_argument("--port", type=int, default=0, help="the app's port (0: a free one)")
    parser.add_argument("--skip-slides", action="store_true")
    parser.add_argument("--skip-video", action="store_true", help="no video (nor its baseline)")
    parser.add_argument("--skip-bare", action="store_true")
    parser.add_argument("--skip-app", action="store_true", help="only the baselines")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("--quick", action="store_true", help="9 changes, 10 s of video")
    parser.add_argument("--serve-bare", action="store_true", help=argparse.SUPPRESS)
    if "--quick" in (sys.argv[1:] if argv is None else argv):
        parser.set_defaults(changes=9, interval=1.5, video_seconds=10.0, video_warmup=2.0)
        parser.set_defaults(render_rounds=2, quiet_wait=8.0)
    return parser.parse_args(argv)


async def measure(args: argparse.Namespace, tmp: Path, log: Any) -> dict[str, Any]:
    pdf = make_deck(tmp / "bench-deck.pdf")
    raw = await asyncio.to_thread(raw_render, pdf, args.render_rounds)
    log(f"deck: {len(pdf) / 1000:.0f} KB, {raw.pages} pages; rendered by pypdfium2 alone")
    stage = await asyncio.to_thread(make_stage, tmp, args.viewers)
    log(f"database in {tmp}: {args.viewers} participants in the plenary, a host, an interpreter")
    out: dict[str, Any] = {"raw": raw, "args": args}
    if not args.skip_app:
        out["app"] = await run_app(args, tmp, stage, pdf, log)
    if not (args.skip_bare or args.skip_video):
        out["bare"] = await run_bare(args, tmp, stage, log)
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.serve_bare:
        stage_video.serve_bare(args.port)
        return 0
    raise_fd_limit()
    started = time.monotonic()

    def log(message: str) -> None:
        print(f"{time.monotonic() - started:7.1f}s  {message}", flush=True)

    tmp = Path(tempfile.mkdtemp(prefix="rt-bench-stage-"))
    try:
        report(run_loop(measure(args, tmp, log)))
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
