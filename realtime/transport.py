"""Transports for a live connection (realtime/live_connection.py: LiveConnection, its one
owner): WebSocket first; Server-Sent Events and long-polling over plain HTTP where
WebSockets are blocked. Each only carries what the owner takes and gives: the WebSocket
receives and sends in one task group; on the fallbacks the browser sends by ordinary POSTs.

Close codes: 1003 data we cannot accept, 1008 policy (not allowed, too many frames, no
longer allowed), 1009 frame too big, 1011 server error, 4000 "resync": the client fell
behind and must reconnect with its cursors.

When a connection's person may no longer use it (AccessEnded), every transport first sends
`{"t":"reload","reason":…}`, which tells the page to load itself again (and so to sign in,
or to say the session is closed to them), then ends: the WebSocket with 1008."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Mapping

from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from realtime.connection import HEARTBEAT, AccessEnded, Busy, SlowConsumer
from realtime.events import control
from realtime.frames import FrameError, parse_frame
from realtime.live_connection import Close, Cursors, LiveConnection, parse_cursors
from realtime.media import as_text

logger = logging.getLogger(__name__)

HELLO_TIMEOUT_SECONDS = 10.0
CLOSE_RESYNC = 4000


def parse_cursor_text(text: str) -> Cursors:
    """Cursors in a URL or an SSE id: `channel=id,channel=id` (id may be empty)."""
    if len(text) > 2000:
        raise FrameError("bad_cursors", "too many cursors")
    raw: dict[str, int | None] = {}
    for part in filter(None, text.split(",")):
        channel, sep, value = part.rpartition("=")
        if not sep:
            raise FrameError("bad_cursors", "cursors look like channel=id,channel=id")
        if value and not (value.isascii() and value.isdigit()):  # int() refuses "²"
            raise FrameError("bad_cursors", f"the id for {channel[:100]} must be a whole number")
        raw[channel] = int(value) if value else None
    return parse_cursors(raw)


def cursor_text(cursors: Mapping[str, int]) -> str:
    return ",".join(f"{c}={i}" for c, i in sorted(cursors.items()))


async def serve_websocket(websocket: WebSocket, live: LiveConnection) -> None:
    """Run one WebSocket until either side ends it; the connection is always released."""
    await websocket.accept()
    try:
        backlog = await _first_hello(websocket, live)
        if backlog is None:
            return
        try:
            for message in backlog:
                await websocket.send_text(message)
        except WebSocketDisconnect:
            return  # gone before its hello was answered
        try:
            async with asyncio.TaskGroup() as group:
                # Neither side returns: the first to raise (the client left, broke a
                # rule, fell behind, lost access) cancels the other.
                group.create_task(_send_loop(websocket, live))
                group.create_task(_receive_loop(websocket, live))
        except* _ClientLeft:
            pass
        except* Exception as failures:
            await _close_for(websocket, failures.exceptions[0])
    finally:
        await live.close()


async def _first_hello(websocket: WebSocket, live: LiveConnection) -> list[str] | None:
    """The answer to the client's first frame, which must be a hello; None when the
    connection ended instead (closed with the reason)."""
    try:
        first = await asyncio.wait_for(websocket.receive(), HELLO_TIMEOUT_SECONDS)
    except TimeoutError:
        await _close(websocket, 1008, "send a hello frame first")
        return None
    if first["type"] == "websocket.disconnect":
        return None
    try:
        hello = parse_frame(first.get("text") or "")
        if hello["type"] != "hello":
            raise FrameError("hello_first", "the first frame must be a hello")
        return await live.hello(hello)
    except FrameError as exc:
        await _close(websocket, 1003 if exc.code != "too_big" else 1009, exc.message)
        return None


class _ClientLeft(Exception):
    """The client closed the WebSocket: nothing more to say to it."""


async def _close_for(websocket: WebSocket, failure: BaseException) -> None:
    if isinstance(failure, SlowConsumer):
        await _close(websocket, CLOSE_RESYNC, "resync: too far behind")
    elif isinstance(failure, Busy):
        await _close(websocket, 1013, "the server is busy; reconnect in a moment")
    elif isinstance(failure, AccessEnded):
        with contextlib.suppress(RuntimeError, WebSocketDisconnect):
            await websocket.send_text(reload_message(failure))
        await _close(websocket, 1008, failure.reason)
    elif isinstance(failure, Close):
        await _close(websocket, failure.code, failure.reason)
    elif not isinstance(failure, (WebSocketDisconnect, RuntimeError)):
        logger.error("live connection failed", exc_info=failure)
        await _close(websocket, 1011, "server error; reconnect")


async def _send_loop(websocket: WebSocket, live: LiveConnection) -> None:
    # Heartbeats come through the queue from the hub's one timer.
    while True:
        for message in await live.next() or ():
            if isinstance(message, bytes):
                await websocket.send_bytes(message)
            else:
                await websocket.send_text(message)


async def _receive_loop(websocket: WebSocket, live: LiveConnection) -> None:
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            raise _ClientLeft()
        text = message.get("text")
        if text is None:
            replies = await live.receive_media(message.get("bytes") or b"")
        else:
            replies = await live.receive_text(text)
        for reply in replies:
            await websocket.send_text(reply)


def reload_message(ended: AccessEnded) -> str:
    return control("reload", reason=ended.reason)


async def _close(websocket: WebSocket, code: int, reason: str) -> None:
    if websocket.application_state == WebSocketState.CONNECTED:
        with contextlib.suppress(RuntimeError, WebSocketDisconnect):
            await websocket.close(code=code, reason=reason[:120])


async def sse_stream(
    connection: LiveConnection,
    backlog: list[str],
    *,
    max_seconds: float = 300.0,
) -> AsyncIterator[bytes]:
    """Server-Sent Events. Each event's id carries all cursors, so the browser's automatic
    reconnect (Last-Event-ID) resumes exactly. Streams end after `max_seconds` so proxies
    that buffer do not hold them forever; the client reconnects."""
    deadline = time.monotonic() + max_seconds
    try:
        yield b"retry: 2000\n\n"
        yield _sse(control("hello", transport="sse"), connection)
        for message in backlog:
            yield _sse(message, connection)
        while time.monotonic() < deadline:
            try:
                messages = await connection.next(timeout=max(0.0, deadline - time.monotonic()))
            except SlowConsumer:
                yield _sse(control("reconnect", reason="resync: too far behind"), connection)
                return
            except Busy:
                yield _sse(control("reconnect", reason="busy"), connection)
                return
            except AccessEnded as ended:
                yield _sse(reload_message(ended), connection)
                return
            for item in messages or ():
                # A heartbeat is an event without an id (the last id stands): the page only
                # sees events, and reconnects when it has seen none for a minute. Media has
                # no id either: it is never replayed.
                if isinstance(item, bytes):
                    yield f"data: {as_text(item)}\n\n".encode()
                else:
                    yield _SSE_HEARTBEAT if item == HEARTBEAT else _sse(item, connection)
    finally:
        await connection.close()


_SSE_HEARTBEAT = f"data: {HEARTBEAT}\n\n".encode()


def _sse(message: str, connection: LiveConnection) -> bytes:
    return f"id: {cursor_text(connection.cursors)}\ndata: {message}\n\n".encode()


async def long_poll(
    connection: LiveConnection, backlog: list[str], *, wait: float = 25.0
) -> list[str]:
    """One long-poll: what was missed, else wait up to `wait` seconds for something new,
    then gather whatever else arrives within a moment. Media comes as base64 text; the
    connection's inbox goes on collecting it until the next poll."""
    out: list[str | bytes] = list(backlog)
    try:
        if not out:
            first = await connection.next(timeout=wait)
            out.extend(first or [])
            if first:
                await asyncio.sleep(0.05)
        out.extend(await connection.next_nowait())
        return [as_text(m) if isinstance(m, bytes) else m for m in out]
    except SlowConsumer:
        return [control("reconnect", reason="resync: too far behind")]
    except Busy:
        # What arrived before the check was the person's to see; the rest waits.
        return [
            *(as_text(m) if isinstance(m, bytes) else m for m in out),
            control("reconnect", reason="busy"),
        ]
    except AccessEnded as ended:
        # What arrived before the access ended was the person's to see.
        return [*(as_text(m) if isinstance(m, bytes) else m for m in out), reload_message(ended)]
    finally:
        await connection.close(keep_hearing=True)
