"""Fuzzing the live protocol: frames of every bad shape (deep nesting, huge numbers, NaN,
duplicated keys, wrong types in every field, invalid UTF-8, binary on text sockets, broken
fragments) on the live WebSocket, the fallback transports' sends and streams, and the
speaker's audio socket. Whatever arrives, only that connection is answered with an error
or closed with a documented code; no exception reaches the server's log (the suite's
watch, tests/conftest.py, would fail the run too), nothing is logged as an error, and
another person's connection answers throughout.

The frame parser itself is checked with hypothesis: any text gives a frame or a
FrameError, never another exception."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from app.config import Settings
from app.live import channels
from realtime.frames import MAX_DEPTH, FrameError, parse_frame
from tests.audio_fixtures import vosk_model_path_fixture  # noqa: F401 - the fixture
from tests.conftest import SERVER_LOG, LiveServer
from tests.factories import World, make_world
from tests.live_action_helpers import live_path
from tests.nasty_frames import (
    BROKEN_SEQUENCES,
    RAW_VALUES,
    WRONG_VALUES,
    RawWebSocket,
    live_frames,
    random_frames,
    shapes,
    text_frame,
)

# Closes a hostile client may get on the live WebSocket (docs/live.md): 1002 a broken
# WebSocket protocol and 1007 text that is not UTF-8 (both from the server's WebSocket
# layer), 1003 data we cannot accept, 1008 too many frames, 1009 too big. Never 1011.
LIVE_CLOSES = {1002, 1003, 1007, 1008, 1009}
# The audio socket adds 1000 (stopped) and 1001 (idle); 1011 would be a server fault.
AUDIO_CLOSES = LIVE_CLOSES | {1000, 1001}
FRAMES_PER_CONNECTION = 8  # under the 10 malformed frames that close a connection
BUDGET_SECONDS = 60.0

json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=50),
)
json_values = st.recursive(
    json_leaf,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner),
    max_leaves=30,
)


@hypothesis_settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=400), json_values.map(json.dumps), st.sampled_from(shapes())))
def test_any_text_is_a_frame_or_a_frame_error(text: Any) -> None:
    if isinstance(text, bytes):
        text = text.decode("latin-1")
    try:
        frame = parse_frame(text)
    except FrameError as exc:
        assert exc.code and exc.message
    else:
        assert isinstance(frame, dict) and isinstance(frame["type"], str)


@hypothesis_settings(max_examples=100, deadline=None)
@given(st.integers(min_value=MAX_DEPTH + 1, max_value=4000), st.sampled_from(["array", "object"]))
def test_nesting_is_refused_before_decoding(depth: int, kind: str) -> None:
    if kind == "array":
        body = "[" * depth + "1" + "]" * depth
    else:
        body = '{"a":' * depth + "1" + "}" * depth
    with pytest.raises(FrameError) as refused:
        parse_frame('{"type":"ping","x":' + body + "}")
    assert refused.value.code in ("too_deep", "too_big")


class Bystander:
    """Someone else in the session, pinging all along: how long each pong took."""

    def __init__(self, client: Any) -> None:
        self.ws = client
        self.latencies: list[float] = []
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        n = 0
        while True:
            n += 1
            sent = time.monotonic()
            await self.ws.send(json.dumps({"type": "ping", "n": n}))
            while True:
                message = json.loads(await asyncio.wait_for(self.ws.recv(), 10))
                if message.get("t") == "pong" and message.get("n") == n:
                    break
            self.latencies.append(time.monotonic() - sent)
            await asyncio.sleep(0.3)  # well under the 40 frames in 10 seconds

    async def stop(self) -> None:
        failed = self.task.done() and self.task.exception()
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError, websockets.ConnectionClosed):
            await self.task
        await self.ws.close()
        assert not failed, f"the bystander's connection failed: {failed!r}"
        assert self.latencies, "the bystander never heard back"
        assert max(self.latencies) < 5, f"the server stalled: {max(self.latencies):.1f} s"


@contextlib.asynccontextmanager
async def watched(
    live_server: LiveServer, w: World, caplog: pytest.LogCaptureFixture
) -> AsyncIterator[Bystander]:
    """A bystander on the live socket during the block; afterwards, no unhandled exception
    and no error logged."""
    before = len(SERVER_LOG.seen)
    caplog.set_level(logging.WARNING)
    plenary = channels.plenary(w.session.id)
    ws = await websockets.connect(
        live_server.ws + live_path(w) + "/ws",
        additional_headers={"Cookie": live_server.cookie_header(w.participant_b)},
    )
    await ws.send(json.dumps({"type": "hello", "cursors": {plenary: None}}))
    assert json.loads(await ws.recv())["t"] == "hello"
    bystander = Bystander(ws)
    try:
        async with asyncio.timeout(BUDGET_SECONDS):
            yield bystander
    finally:
        await bystander.stop()
    assert SERVER_LOG.seen[before:] == []
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], [r.getMessage() for r in errors]


async def open_live(live_server: LiveServer, w: World) -> Any:
    ws = await websockets.connect(
        live_server.ws + live_path(w) + "/ws",
        additional_headers={"Cookie": live_server.cookie_header(w.participant_a)},
        max_size=None,
    )
    await ws.send(json.dumps({"type": "hello", "cursors": {channels.plenary(w.session.id): None}}))
    assert json.loads(await ws.recv())["t"] == "hello"
    return ws


async def answer_or_close(ws: Any, n: int) -> int | None:
    """After a fuzz frame, a ping: None if it was answered (the connection lives on), else
    the code the connection was closed with."""
    try:
        await ws.send(json.dumps({"type": "ping", "n": n}))
        async with asyncio.timeout(10):
            while True:
                message = json.loads(await ws.recv())
                assert message.get("t") != "error" or message.get("code"), message
                if message.get("t") == "pong" and message.get("n") == n:
                    return None
    except websockets.ConnectionClosed:
        return ws.close_code


async def broken(
    live_server: LiveServer, w: World, route: str, first: str, after: list[str]
) -> dict[str, tuple[int | None, list[str]]]:
    """Each of BROKEN_SEQUENCES on a raw connection of its own, between a first text frame
    and some after it: how each connection ended (its close code) and what it was sent."""
    out = {}
    for name, sequence in BROKEN_SEQUENCES.items():
        raw = await RawWebSocket.connect(
            "127.0.0.1",
            live_server.port,
            live_path(w) + route,
            live_server.cookie_header(w.participant_a),
        )
        for piece in [text_frame(first), *sequence, *map(text_frame, after)]:
            await raw.send(piece)
        out[name] = await raw.until_closed()
    return out


def live_world_frames(w: World) -> list[str | bytes]:
    """The nasty frames, naming this session's channels where they name one."""
    plenary = channels.plenary(w.session.id)
    return [
        f.replace("s1:plenary", plenary) if isinstance(f, str) else f for f in live_frames(seed=17)
    ]


async def test_live_websocket_survives_any_frame(
    live_server: LiveServer, db: Any, caplog: pytest.LogCaptureFixture
) -> None:
    w = await make_world(db)
    frames = live_world_frames(w)
    closes: Counter[int] = Counter()
    async with watched(live_server, w, caplog):
        # After a hello, in turn, on connections that are opened again when closed.
        ws, on_this = await open_live(live_server, w), 0
        for n, fuzz in enumerate(frames):
            if on_this == FRAMES_PER_CONNECTION:
                await ws.close()
                ws, on_this = await open_live(live_server, w), 0
            with contextlib.suppress(websockets.ConnectionClosed):
                await ws.send(fuzz)
            on_this += 1
            code = await answer_or_close(ws, n)
            if code is not None:
                assert code in LIVE_CLOSES, (code, ws.close_reason, fuzz[:200])
                closes[code] += 1
                ws, on_this = await open_live(live_server, w), 0
        await ws.close()
        # As the first frame, instead of a hello: closed with a reason, or taken as hello.
        for fuzz in frames[::6]:
            async with websockets.connect(
                live_server.ws + live_path(w) + "/ws",
                additional_headers={"Cookie": live_server.cookie_header(w.participant_a)},
            ) as first:
                await first.send(fuzz)
                try:
                    reply = json.loads(await asyncio.wait_for(first.recv(), 10))
                    assert reply["t"] == "hello", reply
                except websockets.ConnectionClosed:
                    assert first.close_code in LIVE_CLOSES, (first.close_code, fuzz[:200])
                    assert first.close_reason
        # Frames no ordinary client sends: bad UTF-8, broken fragments, reserved bits.
        hello = json.dumps({"type": "hello", "cursors": {}})
        # A ping, then a frame too big: 1009 ends any connection the sequence left open.
        after = ['{"type":"ping","n":99}', "x" * 9000]
        for name, (code, texts) in (await broken(live_server, w, "/ws", hello, after)).items():
            assert code in LIVE_CLOSES, (name, code, texts)
            closes[code] += 1
    # Every kind of close was met, so none of the checks above was idle.
    assert set(closes) >= {1002, 1003, 1007, 1009}, closes


FALLBACK_FIELDS = ("text", "channel", "client_id", "private")


def form_values() -> list[str]:
    values = [v if isinstance(v, str) else json.dumps(v) for v in WRONG_VALUES]
    return [
        *values,
        *RAW_VALUES,
        "²",
        "١٢",
        "0x10",
        "1_000",
        "\ud800".encode("utf-8", "surrogatepass").decode("latin-1"),
    ]


RAW_BODIES = [
    b"text=%ff%fe%fd&client_id=c1",
    b"text=\xff\xfe\xfd&client_id=c1",
    b"text=a&text=b&client_id=c&client_id=d&channel=x&channel=y",
    b"\x00" * 200,
    b"=" * 500 + b"&" * 500,
    b"%" * 300,
    b'{"text": "json to a form", "client_id": "j1"}',
    b"text=" + b"[" * 5000,
]
CONTENT_TYPES = [
    "application/x-www-form-urlencoded",
    "application/x-www-form-urlencoded; charset=latin-1",
    "multipart/form-data; boundary=",
    "multipart/form-data; boundary=x",
    "application/json",
    "text/plain",
    "",
]
CURSOR_TEXTS = [
    "",
    "=",
    ",,,",
    "s1:plenary=²",
    "s1:plenary=١٢",
    "s1:plenary=-1",
    "s1:plenary=99999999999999999999999",
    "s1:plenary=1.5",
    "s1:plenary=NaN",
    "=1",
    ",".join(f"c{i}=1" for i in range(30)),
    "x" * 1999,
    "\x00=1",
    "s1:plenary=1,s1:plenary=2",
    "%ff=1",
]


async def test_fallback_sends_and_streams_survive_any_input(
    live_server: LiveServer, db: Any, caplog: pytest.LogCaptureFixture
) -> None:
    w = await make_world(db)
    base = live_path(w)
    plenary = channels.plenary(w.session.id)
    statuses: Counter[int] = Counter()
    rng = random.Random(17)

    def check(response: Any, what: str) -> None:
        statuses[response.status_code] += 1
        assert response.status_code < 500, (what, response.status_code, response.text[:300])

    async with watched(live_server, w, caplog), live_server.client(w.participant_a) as http:
        good = {"text": "hi", "channel": plenary, "client_id": "ok1"}
        for field in FALLBACK_FIELDS:
            for value in form_values():
                data = {**good, field: value, "client_id": f"f{rng.getrandbits(40)}"}
                for route in ("/chat", "/hand", "/help"):
                    response = await http.post(
                        base + route, data=data, headers={"HX-Request": "true"}
                    )
                    check(response, f"{route} {field}={value[:40]!r}")
        for body in RAW_BODIES:
            for content_type in CONTENT_TYPES:
                for route in ("/chat", "/hand", "/help", "/messages/1/report"):
                    response = await http.post(
                        base + route,
                        content=body,
                        headers={"Content-Type": content_type, "HX-Request": "true"},
                    )
                    check(response, f"{route} {content_type} {body[:40]!r}")
        for text in [*CURSOR_TEXTS, *(t.replace("s1:", f"s{w.session.id}:") for t in CURSOR_TEXTS)]:
            poll = await http.get(base + "/poll", params={"cursors": text, "wait": "0"})
            check(poll, f"poll {text[:40]!r}")
            if poll.status_code == 200:
                assert isinstance(poll.json()["events"], list)
            sse = await http.get(base + "/sse", params={"cursors": text, "duration": "0"})
            check(sse, f"sse {text[:40]!r}")
            # (A header httpx itself will not send is skipped.)
            with contextlib.suppress(UnicodeEncodeError, httpx.LocalProtocolError):
                resumed = await http.get(
                    base + "/sse", params={"duration": "0"}, headers={"Last-Event-ID": text}
                )
                check(resumed, f"sse Last-Event-ID {text[:40]!r}")
    assert statuses[204] and statuses[400] and statuses[429], statuses


# -- the speaker's audio socket (needs the speech model) --


@pytest.fixture
def settings(settings: Settings, request: pytest.FixtureRequest) -> Settings:
    if "vosk_model_path" not in request.fixturenames:
        return settings
    model: Path = request.getfixturevalue("vosk_model_path")
    return settings.model_copy(update={"vosk_model_path": model})


START = {"type": "start", "codec": "pcm16", "sample_rate": 16000, "consent": True}


def start_messages() -> list[str | bytes]:
    out: list[str | bytes] = [*shapes()]
    for field in START:
        for value in WRONG_VALUES:
            out.append(json.dumps({**START, field: value}))
        for raw in RAW_VALUES:
            out.append(json.dumps({**START, field: "__RAW__"}).replace('"__RAW__"', raw))
    out.append('{"type":"start","codec":"pcm16","codec":"opus","sample_rate":16000,"consent":true}')
    out += random_frames(random.Random(23), 30)
    return out


async def open_audio(live_server: LiveServer, w: World) -> Any:
    return await websockets.connect(
        live_server.ws + live_path(w) + "/audio",
        additional_headers={"Cookie": live_server.cookie_header(w.participant_a)},
        max_size=None,
    )


async def closed_with(ws: Any) -> int | None:
    try:
        async with asyncio.timeout(15):
            async for _message in ws:
                pass
    except websockets.ConnectionClosed:
        pass
    return ws.close_code


async def test_audio_socket_survives_any_frame(
    live_server: LiveServer,
    db: Any,
    caplog: pytest.LogCaptureFixture,
    vosk_model_path: Path,
) -> None:
    w = await make_world(db)
    closes: Counter[int] = Counter()
    async with watched(live_server, w, caplog):
        # The first message, instead of a start.
        for fuzz in start_messages():
            ws = await open_audio(live_server, w)
            await ws.send(fuzz)
            with contextlib.suppress(websockets.ConnectionClosed):
                first = json.loads(await asyncio.wait_for(ws.recv(), 10))
                if first.get("t") == "started":
                    await ws.send(json.dumps({"type": "stop"}))
            code = await closed_with(ws)
            assert code in AUDIO_CLOSES, (code, ws.close_reason, fuzz[:200])
            closes[code] += 1
        # After a start: commands of every shape, and audio that is not audio.
        commands = [*shapes(), *random_frames(random.Random(29), 20)]
        rng = random.Random(31)
        for offset in range(0, len(commands), FRAMES_PER_CONNECTION):
            codec = "opus" if offset % 2 else "pcm16"
            ws = await open_audio(live_server, w)
            await ws.send(json.dumps({**START, "codec": codec, "sample_rate": 48000}))
            started = json.loads(await asyncio.wait_for(ws.recv(), 10))
            assert started["t"] == "started", started
            with contextlib.suppress(websockets.ConnectionClosed):
                for fuzz in commands[offset : offset + FRAMES_PER_CONNECTION]:
                    await ws.send(fuzz)
                    await ws.send(rng.randbytes(rng.choice([0, 1, 3, 960, 1921])))
                await ws.send(json.dumps({"type": "stop"}))
            code = await closed_with(ws)
            assert code in AUDIO_CLOSES, (code, ws.close_reason)
            closes[code] += 1
        # Broken WebSocket frames after a start.
        stop = ['{"type":"stop"}']
        for name, (code, texts) in (
            await broken(live_server, w, "/audio", json.dumps(START), stop)
        ).items():
            assert code in AUDIO_CLOSES, (name, code, texts)
            closes[code] += 1
    assert set(closes) >= {1000, 1002, 1003, 1007, 1009}, closes
