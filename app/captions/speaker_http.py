"""Speaking when WebSockets are blocked: the speaker's microphone stream over ordinary POSTs,
served by the very same serve_speaker as the microphone WebSocket
(app/captions/microphone.py), so consent, seat, mute, floor and budget checks are one.

`POST …/live/audio/http/start` opens a stream: an `HttpSpeakerChannel` stands in for the
WebSocket (its `receive()` gives the frames POSTed since, as ASGI WebSocket messages;
`send_text()` keeps the server's messages for the next answer; `close()` records the close)
and serve_speaker runs on it in a background task owned by `HttpSpeakerStreams`, one per
process in the app state. Each `POST …/live/audio/http/{stream}` hands its frames to the
channel, waits until the stream has taken them all (so a client can never be more than
one batch ahead of the recognizer, and the real-time budget applies as on the socket),
and answers what the server said meanwhile, and the close if the stream has ended.

Bounded: one stream per person per session (a new start ends the old one), `max_streams`
in the process; a stream without a POST for `idle_seconds` ends as if its client had
vanished (what was said is still captioned); shutting down ends them all."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import HTTPConnection

from app.refusals import Busy
from captioning.ingest import CLOSE_GOING_AWAY, CLOSE_SERVER_ERROR
from realtime import post_frames
from realtime.connection import HEARTBEAT

log = logging.getLogger(__name__)

IDLE_SECONDS = 20.0
MAX_STREAMS = 200
# How long a start waits for the stream to start (a recognizer is made), and a batch for
# the stream to take its frames, before answering with what there is so far.
START_WAIT_SECONDS = 10.0
BATCH_WAIT_SECONDS = 5.0
# Messages kept for the next answer; the oldest go first (a client that stopped asking).
MAX_KEPT_MESSAGES = 200
DISCONNECT = {"type": "websocket.disconnect", "code": CLOSE_GOING_AWAY}

Message = dict[str, Any]


def as_messages(frames: list[post_frames.Frame]) -> list[Message]:
    """POSTed frames as the WebSocket messages serve_speaker reads; FramingError for text
    that is not UTF-8."""
    messages: list[Message] = []
    for number, frame in enumerate(frames, 1):
        if frame.type == post_frames.BINARY:
            messages.append({"type": "websocket.receive", "bytes": frame.data})
            continue
        try:
            text = frame.data.decode("utf-8")
        except UnicodeDecodeError:
            raise post_frames.FramingError(
                f"frame {number} is a text message but not UTF-8 text"
            ) from None
        messages.append({"type": "websocket.receive", "text": text})
    return messages


class HttpSpeakerChannel:
    """What serve_speaker needs of a WebSocket, fed by POSTs: `receive`, `send_text`,
    `close`, and `state` (the app state, for get_app_state)."""

    def __init__(self, conn: HTTPConnection) -> None:
        self.state = conn.state
        self.closed: tuple[int, str] | None = None
        self._inbox: asyncio.Queue[Message] = asyncio.Queue()
        self._outbox: deque[Message] = deque(maxlen=MAX_KEPT_MESSAGES)
        self._gone = False
        self._reading = False
        self._started = False
        self._progress = asyncio.Event()

    # -- the WebSocket's side, for serve_speaker --

    async def receive(self) -> Message:
        if self._inbox.empty() and self._gone:
            return dict(DISCONNECT)
        self._reading = True
        self._notify()
        try:
            return await self._inbox.get()
        finally:
            self._reading = False

    async def send_text(self, text: str) -> None:
        if text == HEARTBEAT:
            return  # each POST is its own sign of life
        try:
            message = json.loads(text)
        except ValueError:
            log.warning("a speaker's stream sent something that is not JSON")
            return
        if isinstance(message, dict) and message.get("t") == "started":
            self._started = True
        self._outbox.append(message)
        self._notify()

    async def close(self, code: int = 1000, reason: str = "") -> None:
        if self.closed is None:
            self.closed = (code, reason)
        self._notify()

    # -- the POSTs' side --

    def push(self, messages: list[Message]) -> None:
        if self._gone or self.closed is not None:
            return  # the stream is ending: nothing more is taken
        for message in messages:
            self._inbox.put_nowait(message)
        self._notify()

    def disconnect(self) -> None:
        """The client has gone, as a WebSocket's disconnect would say."""
        if not self._gone:
            self._gone = True
            self._inbox.put_nowait(dict(DISCONNECT))
            self._notify()

    def ended(self, *, failed: bool) -> None:
        """serve_speaker has returned: a stream that ended without a close says why."""
        if self.closed is None:
            self.closed = (
                (CLOSE_SERVER_ERROR, "captions failed") if failed else (CLOSE_GOING_AWAY, "ended")
            )
        self._notify()

    def take(self) -> list[Message]:
        taken = list(self._outbox)
        self._outbox.clear()
        return taken

    def closed_json(self) -> dict[str, Any] | None:
        if self.closed is None:
            return None
        return {"code": self.closed[0], "reason": self.closed[1]}

    async def started(self, timeout: float) -> None:
        """Until the stream has started or ended (or `timeout`)."""
        await self._until(lambda: self._started or self.closed is not None, timeout)

    async def settled(self, timeout: float) -> None:
        """Until every frame pushed so far has been taken and dealt with (the stream waits
        for the next one), or it has ended (or `timeout`)."""
        await self._until(
            lambda: (self._reading and self._inbox.empty()) or self.closed is not None, timeout
        )

    async def _until(self, done: Callable[[], bool], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not done():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            progress = self._progress
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(progress.wait(), left)

    def _notify(self) -> None:
        self._progress.set()
        self._progress = asyncio.Event()


@dataclass(eq=False)
class SpeakerStream:
    token: str
    user_id: int
    session_id: int
    channel: HttpSpeakerChannel
    last_post: float = field(default_factory=time.monotonic)
    # A batch is being taken: the next waits for its answer.
    busy: bool = False
    task: asyncio.Task[None] | None = None


Serve = Callable[[HttpSpeakerChannel], Awaitable[None]]


class HttpSpeakerStreams:
    """The process's speaker streams over HTTP, by token."""

    def __init__(
        self, *, max_streams: int = MAX_STREAMS, idle_seconds: float = IDLE_SECONDS
    ) -> None:
        self.max_streams = max_streams
        self.idle_seconds = idle_seconds
        self._streams: dict[str, SpeakerStream] = {}
        # Every stream's task until it ends, including those no longer reachable by token.
        self._tasks: set[asyncio.Task[None]] = set()
        self._sweeper: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._sweeper = asyncio.create_task(self._sweep(), name="speaker-streams-sweep")

    async def stop(self, wait: float = 5.0) -> None:
        """Shutting down: every stream ends as if its client had gone; what was said is
        captioned if that takes less than `wait` seconds."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            await asyncio.gather(self._sweeper, return_exceptions=True)
        for stream in list(self._streams.values()):
            self._forget(stream)
        if self._tasks:
            _, late = await asyncio.wait(set(self._tasks), timeout=wait)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)

    @property
    def running(self) -> int:
        return len(self._tasks)

    def open(
        self, conn: HTTPConnection, *, user_id: int, session_id: int, serve: Serve
    ) -> SpeakerStream:
        """A new stream served by `serve` (the person's earlier one in this session ends);
        Busy when the process has as many as it takes."""
        for old in [
            s
            for s in self._streams.values()
            if (s.user_id, s.session_id)
            == (
                user_id,
                session_id,
            )
        ]:
            self._forget(old)
        if len(self._tasks) >= self.max_streams:
            raise Busy(
                "Too many people are speaking through the compatibility mode right now. "
                "Try again in a minute.",
                retry_after=30,
            )
        stream = SpeakerStream(
            token=secrets.token_urlsafe(24),
            user_id=user_id,
            session_id=session_id,
            channel=HttpSpeakerChannel(conn),
        )
        task = asyncio.create_task(self._serve(stream, serve), name="speaker-http")
        stream.task = task
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        self._streams[stream.token] = stream
        return stream

    def get(self, token: str, *, user_id: int, session_id: int) -> SpeakerStream | None:
        """The stream, if it is this person's in this session (else None, as if unknown)."""
        stream = self._streams.get(token)
        if stream is None or (stream.user_id, stream.session_id) != (user_id, session_id):
            return None
        stream.last_post = time.monotonic()
        return stream

    async def deliver(self, stream: SpeakerStream, messages: list[Message]) -> dict[str, Any]:
        """Hand a batch to the stream; what the server said since, and the close if it
        has ended (then the stream is forgotten: its token is no longer known)."""
        stream.busy = True
        try:
            stream.channel.push(messages)
            await stream.channel.settled(BATCH_WAIT_SECONDS)
        finally:
            stream.busy = False
            stream.last_post = time.monotonic()
        return self.answer(stream)

    def answer(self, stream: SpeakerStream) -> dict[str, Any]:
        closed = stream.channel.closed_json()
        if closed is not None:
            self._forget(stream)
        return {"messages": stream.channel.take(), "closed": closed}

    def _forget(self, stream: SpeakerStream) -> None:
        if self._streams.get(stream.token) is stream:
            del self._streams[stream.token]
        stream.channel.disconnect()

    async def _serve(self, stream: SpeakerStream, serve: Serve) -> None:
        failed = False
        try:
            await serve(stream.channel)
        except Exception:
            failed = True
            log.exception("a speaker's stream over HTTP failed")
        finally:
            stream.channel.ended(failed=failed)

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(min(1.0, self.idle_seconds / 4))
            now = time.monotonic()
            for stream in list(self._streams.values()):
                if not stream.busy and now - stream.last_post > self.idle_seconds:
                    self._forget(stream)
