"""Transports for a live connection: WebSocket first; Server-Sent Events and long-polling
over plain HTTP where WebSockets are blocked. Sending from the browser is an ordinary POST
on the fallbacks, or a frame on the WebSocket.

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
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from realtime.connection import HEARTBEAT, AccessEnded, Connection, SlowConsumer
from realtime.events import control
from realtime.frames import FrameError, parse_frame

logger = logging.getLogger(__name__)

HELLO_TIMEOUT_SECONDS = 10.0
MAX_CHANNELS = 16
MAX_FRAMES_PER_10S = 40
MAX_BAD_FRAMES = 10
CLOSE_RESYNC = 4000

Cursors = dict[str, int | None]
# Checks the channels a client asks for: returns the allowed ones and an error message
# for each refused one.
Authorizer = Callable[[Cursors], Awaitable[tuple[Cursors, list[str]]]]
# Handles an action frame (anything but hello/ping); returns control messages to send back.
FrameHandler = Callable[[dict[str, Any]], Awaitable[list[str]]]


def parse_cursors(raw: object) -> Cursors:
    """Cursors as a client sends them: {"channel": last id or null}."""
    if not isinstance(raw, dict):
        raise FrameError("bad_cursors", "cursors must be an object of channel names to ids")
    if len(raw) > MAX_CHANNELS:
        raise FrameError("bad_cursors", f"at most {MAX_CHANNELS} channels at once")
    out: Cursors = {}
    for channel, value in raw.items():
        if not isinstance(channel, str) or not 0 < len(channel) <= 100:
            raise FrameError("bad_cursors", "channel names are short strings")
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**53
        ):
            raise FrameError("bad_cursors", f"the id for {channel[:100]} must be a whole number")
        out[channel] = value
    return out


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


async def follow_authorized(
    connection: Connection, cursors: Cursors, authorize: Authorizer
) -> list[str]:
    async with connection.following:
        allowed, refusals = await authorize(cursors)
        out = [control("error", code="not_allowed", message=m) for m in refusals]
        out.extend(await connection.follow_held(allowed))
    return out


async def serve_websocket(
    websocket: WebSocket,
    connection: Connection,
    *,
    authorize: Authorizer,
    handle_frame: FrameHandler,
) -> None:
    """Run one WebSocket until either side ends it; the connection is always released."""
    await websocket.accept()
    try:
        try:
            first = await asyncio.wait_for(websocket.receive(), HELLO_TIMEOUT_SECONDS)
        except TimeoutError:
            await _close(websocket, 1008, "send a hello frame first")
            return
        if first["type"] == "websocket.disconnect":
            return
        try:
            hello = parse_frame(first.get("text") or "")
            if hello["type"] != "hello":
                raise FrameError("hello_first", "the first frame must be a hello")
            backlog = await follow_authorized(
                connection, parse_cursors(hello.get("cursors", {})), authorize
            )
        except FrameError as exc:
            await _close(websocket, 1003 if exc.code != "too_big" else 1009, exc.message)
            return
        try:
            for message in [control("hello", transport="websocket"), *backlog]:
                await websocket.send_text(message)
        except WebSocketDisconnect:
            return  # gone before its hello was answered

        sender = asyncio.create_task(_send_loop(websocket, connection))
        receiver = asyncio.create_task(
            _receive_loop(websocket, connection, authorize, handle_frame)
        )
        done, pending = await asyncio.wait({sender, receiver}, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        for task in pending:
            with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, RuntimeError):
                await task
        for task in done:
            failure = task.exception()
            if isinstance(failure, SlowConsumer):
                await _close(websocket, CLOSE_RESYNC, "resync: too far behind")
            elif isinstance(failure, AccessEnded):
                with contextlib.suppress(RuntimeError, WebSocketDisconnect):
                    await websocket.send_text(reload_message(failure))
                await _close(websocket, 1008, failure.reason)
            elif isinstance(failure, _Close):
                await _close(websocket, failure.code, failure.reason)
            elif failure is not None and not isinstance(
                failure, (WebSocketDisconnect, RuntimeError)
            ):
                logger.error("live connection failed", exc_info=failure)
                await _close(websocket, 1011, "server error; reconnect")
    finally:
        await connection.close()


class _Close(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


async def _send_loop(websocket: WebSocket, connection: Connection) -> None:
    # Heartbeats come through the queue from the hub's one timer.
    while True:
        for message in await connection.next() or ():
            await websocket.send_text(message)


async def _receive_loop(
    websocket: WebSocket,
    connection: Connection,
    authorize: Authorizer,
    handle_frame: FrameHandler,
) -> None:
    window_start, frames, bad = time.monotonic(), 0, 0
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
        now = time.monotonic()
        if now - window_start > 10:
            window_start, frames = now, 0
        frames += 1
        if frames > MAX_FRAMES_PER_10S:
            raise _Close(1008, "too many messages; slow down")
        if message.get("text") is None:
            raise _Close(1003, "binary frames are not accepted here")
        replies: list[str]
        try:
            frame = parse_frame(message["text"])
            kind = frame["type"]
            if kind == "ping":
                replies = [
                    control("pong", n=frame.get("n") if isinstance(frame.get("n"), int) else 0)
                ]
            elif kind == "hello":
                # A page that changed room says hello again: answer as to the first, so it
                # knows it is live (then the backlog of the channels it now follows).
                cursors = parse_cursors(frame.get("cursors", {}))
                replies = [
                    control("hello", transport="websocket"),
                    *await follow_authorized(connection, cursors, authorize),
                ]
            else:
                replies = await handle_frame(frame)
        except FrameError as exc:
            if exc.code == "too_big":
                raise _Close(1009, exc.message) from exc
            bad += 1
            if bad > MAX_BAD_FRAMES:
                raise _Close(1003, "too many malformed frames") from exc
            replies = [control("error", code=exc.code, message=exc.message)]
        for reply in replies:
            await websocket.send_text(reply)


def reload_message(ended: AccessEnded) -> str:
    return control("reload", reason=ended.reason)


async def _close(websocket: WebSocket, code: int, reason: str) -> None:
    if websocket.application_state == WebSocketState.CONNECTED:
        with contextlib.suppress(RuntimeError, WebSocketDisconnect):
            await websocket.close(code=code, reason=reason[:120])


async def sse_stream(
    connection: Connection,
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
            except AccessEnded as ended:
                yield _sse(reload_message(ended), connection)
                return
            for message in messages or ():
                # A heartbeat is an event without an id (the last id stands): the page only
                # sees events, and reconnects when it has seen none for a minute.
                yield _SSE_HEARTBEAT if message == HEARTBEAT else _sse(message, connection)
    finally:
        await connection.close()


_SSE_HEARTBEAT = f"data: {HEARTBEAT}\n\n".encode()


def _sse(message: str, connection: Connection) -> bytes:
    return f"id: {cursor_text(connection.cursors)}\ndata: {message}\n\n".encode()


async def long_poll(connection: Connection, backlog: list[str], *, wait: float = 25.0) -> list[str]:
    """One long-poll: what was missed, else wait up to `wait` seconds for something new,
    then gather whatever else arrives within a moment."""
    out = list(backlog)
    try:
        if not out:
            first = await connection.next(timeout=wait)
            out.extend(first or [])
            if first:
                await asyncio.sleep(0.05)
        out.extend(await connection.next_nowait())
        return out
    except SlowConsumer:
        return [control("reconnect", reason="resync: too far behind")]
    except AccessEnded as ended:
        # What arrived before the access ended was the person's to see.
        return [*out, reload_message(ended)]
    finally:
        await connection.close()
