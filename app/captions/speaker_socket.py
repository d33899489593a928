"""The terms of the speaker's microphone WebSocket (docs/captioning.md, "Live captions"):
its limits, how a stream ends (what the client is told, the close code, whether the
utterance in progress is captioned first), and the one sender its two tasks share."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from dataclasses import dataclass
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect

from captioning.ingest import MAX_START_BYTES, IngestError
from captioning.stream import LIVE_BUDGET, RealtimeBudget
from captioning.vosk_protocol import close_reason
from realtime import frames

log = logging.getLogger(__name__)

# WebSocket close code "try again later": the database was too busy to go on.
CLOSE_TRY_AGAIN_LATER = 1013
BUSY = "the server is too busy to caption you right now: reconnect in a few seconds"


@dataclass(frozen=True)
class AudioLimits:
    idle_seconds: float = 60.0
    # With the microphone paused the client sends nothing; it may stay connected longer.
    paused_idle_seconds: float = 15 * 60.0
    max_bad_packets: int = 50
    budget: RealtimeBudget = LIVE_BUDGET
    partial_interval: float = 0.2
    # How often the speaker's seat is looked at even without news (a removed member).
    seat_check_seconds: float = 30.0
    # How long the end of a stream waits for the recognizer to catch up with what was said.
    drain_seconds: float = 15.0


@dataclass
class Ending:
    """How a stream ends: what the client is told, the close, and whether the utterance in
    progress is captioned first."""

    close_code: int | None  # None: the client has gone
    reason: str = ""
    finalize: bool = True
    tell: dict[str, Any] | None = None


def refusal(exc: IngestError, *, finalize: bool = False) -> Ending:
    return Ending(
        exc.close_code,
        exc.message,
        finalize=finalize,
        tell={"t": "error", "code": exc.code, "message": exc.message},
    )


def busy_ending(exc: Exception, *, finalize: bool = False) -> Ending:
    log.warning("ended a caption stream: the database is too busy (%s)", type(exc).__name__)
    return refusal(IngestError("busy", BUSY, close_code=CLOSE_TRY_AGAIN_LATER), finalize=finalize)


def checked_text(text: str | None) -> str | None:
    """A text message, refused before it reaches the JSON decoder if its nesting, numbers,
    keys or text are hostile (realtime/frames.py): deep nesting made the decoder raise
    RecursionError, and an escaped lone surrogate cannot go into a close reason. (Its
    length is parse_json_object's to refuse, in characters.)"""
    if text is None or len(text) > MAX_START_BYTES:
        return text
    try:
        frames.loads(text, max_bytes=4 * MAX_START_BYTES)
    except frames.FrameError as exc:
        if exc.code == "bad_json":
            return text  # not JSON at all: parse_json_object says how to start
        log.warning("refused a speaker's text message: %s", exc.code)
        raise IngestError(
            "bad_message", f"text messages must be plain JSON: {exc.message}"
        ) from None
    return text


class Sender:
    """Sends from both tasks, one message at a time; a client that has gone is ignored."""

    def __init__(self, websocket: WebSocket) -> None:
        self.websocket = websocket
        self._lock = asyncio.Lock()

    async def send(self, message: dict[str, Any] | str) -> None:
        text = message if isinstance(message, str) else json.dumps(message)
        async with self._lock:
            with contextlib.suppress(WebSocketDisconnect, RuntimeError, OSError):
                await self.websocket.send_text(text)

    async def end(self, ending: Ending) -> None:
        if ending.close_code is None:
            return
        if ending.tell is not None:
            await self.send(ending.tell)
        async with self._lock:
            with contextlib.suppress(WebSocketDisconnect, RuntimeError, OSError):
                await self.websocket.close(ending.close_code, close_reason(ending.reason))
