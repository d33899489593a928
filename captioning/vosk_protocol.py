"""The vosk-server WebSocket protocol, so clients written for alphacep/vosk-server
(websocket/asr_server.py and its test clients) work against Roundtable unchanged.

    client sends                              server answers
    {"config": {"sample_rate": 8000, ...}}    nothing
    binary 16-bit mono PCM                    {"partial": "..."}, or at the end of an
                                              utterance {"result": [...], "text": "..."}
    {"reset": 1}                              {"partial": ""}
    {"eof": 1}                                the final result, then a normal close (1000)

Every binary frame, reset and eof gets exactly one answer, in order, which is what
vosk-server's clients rely on (they alternate send and recv). Answers are Vosk's JSON as
Vosk writes it. Config keys: sample_rate (number or numeric string, 8000..48000),
words, max_alternatives (0..20), phrase_list; unknown keys are ignored, but "model" is
refused: only the server chooses the model. Audio before any config is taken as 16 kHz.

Where we differ from vosk-server, on purpose:
- A frame with an odd number of bytes keeps its last byte for the next frame (vosk-server
  drops it, which misaligns every later sample into noise).
- A config after audio applies from the next frame on a fresh recognizer (the utterance in
  progress is dropped, as with reset); vosk-server ignores it silently.
- Limits, each closing with a code and a reason after an {"error": ...} message: bad JSON
  or settings 1003, frames over 1 MB 1009, a client choosing a model 1008, no frame for
  60 s 1001 ("idle"), streams over 4 hours 1008, captions unavailable 1011.
- The handler reads the next frame only after answering the last, so a client streaming
  a file faster than real time is paced by its own answers (TCP back-pressure), and each
  stream has at most one call in the recognizer pool (see captioning/stream.py).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from starlette.types import Message
from starlette.websockets import WebSocket, WebSocketDisconnect

from captioning.audio import AudioFormatError, parse_sample_rate
from captioning.engine import CaptionEngine, CaptionsUnavailable
from captioning.stream import (
    FILE_BUDGET,
    RealtimeBudget,
    RecognizerStream,
    StreamConfigError,
    StreamLimitExceeded,
    check_max_alternatives,
    check_phrase_list,
)
from realtime import frames
from realtime.frames import FrameError

log = logging.getLogger(__name__)

CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_UNSUPPORTED = 1003
CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009
CLOSE_SERVER_ERROR = 1011
MAX_REASON_BYTES = 123  # the WebSocket protocol's limit for a close reason

HOW_TO_TALK = 'send {"config": {...}}, {"eof": 1} or {"reset": 1} as text, audio as binary'


@dataclass(frozen=True)
class VoskLimits:
    idle_seconds: float = 60.0
    max_stream_seconds: float = 4 * 3600.0
    max_frame_bytes: int = 1024 * 1024
    max_text_bytes: int = 256 * 1024
    default_sample_rate: int = 16000
    budget: RealtimeBudget = FILE_BUDGET


@dataclass(frozen=True)
class StreamSettings:
    sample_rate: int = 16000
    words: bool = True  # vosk-server's default (VOSK_SHOW_WORDS)
    max_alternatives: int = 0
    phrase_list: list[str] | None = None


class ProtocolError(Exception):
    """Ends the connection: an {"error": reason} message, then a close with `code`."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def close_reason(text: str) -> str:
    """`text` cut to what a close frame can carry, on a character boundary."""
    encoded = text.encode()
    if len(encoded) <= MAX_REASON_BYTES:
        return text
    return encoded[: MAX_REASON_BYTES - 3].decode(errors="ignore") + "..."


def parse_words(value: object) -> bool:
    if isinstance(value, bool | int | float):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0"):
        return value.strip().lower() in ("true", "1")
    raise ProtocolError(CLOSE_UNSUPPORTED, "words must be true or false")


def apply_config(current: StreamSettings, config: object) -> StreamSettings:
    """The settings after a config message; unknown keys are ignored, as vosk-server does."""
    if not isinstance(config, dict):
        raise ProtocolError(CLOSE_UNSUPPORTED, 'config must be an object: {"config": {...}}')
    if "model" in config:
        raise ProtocolError(
            CLOSE_POLICY, 'the server chooses the model: remove "model" from the config'
        )
    try:
        changes: dict[str, Any] = {}
        if "sample_rate" in config:
            changes["sample_rate"] = parse_sample_rate(config["sample_rate"])
        if "words" in config:
            changes["words"] = parse_words(config["words"])
        if "max_alternatives" in config:
            changes["max_alternatives"] = check_max_alternatives(config["max_alternatives"])
        if "phrase_list" in config:
            changes["phrase_list"] = check_phrase_list(config["phrase_list"])
    except AudioFormatError as exc:  # StreamConfigError too
        raise ProtocolError(CLOSE_UNSUPPORTED, str(exc)) from exc
    return replace(current, **changes)


# A configuration message is small; this leaves room for a long list of phrases.
MAX_TEXT_FRAME_BYTES = 64 * 1024


def parse_text(text: str) -> tuple[str, Any]:
    """A text frame as ("config", {...}), ("eof", None) or ("reset", None).

    Any JSON spelling is accepted: {"eof" : 1}, {"eof":1} and {"eof": true} alike."""
    try:
        # Size and nesting are checked before decoding: deep nesting would otherwise recurse
        # without bound inside the JSON decoder.
        message = frames.loads(text, max_bytes=MAX_TEXT_FRAME_BYTES)
    except FrameError as exc:
        raise ProtocolError(
            CLOSE_UNSUPPORTED, f"text frames must be JSON ({exc.message}): {HOW_TO_TALK}"
        ) from None
    if isinstance(message, dict):
        kinds = [k for k in ("config", "eof", "reset") if k in message]
        if len(kinds) == 1:
            kind = kinds[0]
            if kind == "config":
                return kind, message["config"]
            if message[kind] not in (0, False, None):
                return kind, None
    raise ProtocolError(CLOSE_UNSUPPORTED, f"unknown message: {HOW_TO_TALK}")


class VoskSession:
    """One connection's settings and its recognizer stream (made at the first audio)."""

    def __init__(
        self,
        engine: CaptionEngine,
        limits: VoskLimits,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.engine = engine
        self.limits = limits
        self.clock = clock
        self.settings = StreamSettings(sample_rate=limits.default_sample_rate)
        self.stream: RecognizerStream | None = None

    def configure(self, config: object) -> None:
        settings = apply_config(self.settings, config)
        if settings != self.settings and self.stream is not None:
            self.stream.close()
            self.stream = None
        self.settings = settings

    def _stream(self) -> RecognizerStream:
        if self.stream is None:
            s = self.settings
            try:
                self.stream = RecognizerStream(
                    self.engine,
                    s.sample_rate,
                    words=s.words,
                    max_alternatives=s.max_alternatives,
                    phrase_list=s.phrase_list,
                    budget=self.limits.budget,
                    clock=self.clock,
                )
            except StreamConfigError as exc:
                raise ProtocolError(CLOSE_UNSUPPORTED, str(exc)) from exc
        return self.stream

    async def audio(self, data: bytes) -> str:
        return await self._stream().accept_json(data)

    async def eof(self) -> str:
        return await self._stream().final_json()

    async def reset(self) -> str:
        return await self._stream().reset_json()

    def close(self) -> None:
        if self.stream is not None:
            self.stream.close()
            self.stream = None


async def close_with_reason(websocket: WebSocket, code: int, reason: str, *, tell: bool) -> None:
    """Best effort: the client may already be gone."""
    try:
        if tell:
            await websocket.send_text(json.dumps({"error": reason}))
        await websocket.close(code=code, reason=close_reason(reason))
    except (WebSocketDisconnect, RuntimeError, OSError):
        pass


async def serve_vosk(
    websocket: WebSocket,
    engine: CaptionEngine,
    *,
    limits: VoskLimits | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Serve an accepted, authorized connection until eof, an error, idleness or the
    client leaving. The recognizer is freed however it ends."""
    limits = limits or VoskLimits()
    if not engine.available:
        await close_with_reason(websocket, CLOSE_SERVER_ERROR, engine.public_reason, tell=True)
        return
    session = VoskSession(engine, limits, clock)
    deadline = clock() + limits.max_stream_seconds
    try:
        while True:
            message = await next_message(websocket, limits, clock=clock, deadline=deadline)
            if message["type"] == "websocket.disconnect":
                return
            if not await answer(websocket, session, message):
                return
    except ProtocolError as exc:
        log.info("vosk stream closed %s: %s", exc.code, exc.reason)
        await close_with_reason(websocket, exc.code, exc.reason, tell=True)
    except StreamLimitExceeded as exc:
        await close_with_reason(websocket, CLOSE_POLICY, str(exc), tell=True)
    except CaptionsUnavailable as exc:
        log.warning("vosk stream stopped: %s", exc)
        await close_with_reason(websocket, CLOSE_SERVER_ERROR, str(exc), tell=True)
    except (WebSocketDisconnect, OSError):
        pass  # the client left mid-stream
    finally:
        session.close()


async def next_message(
    websocket: WebSocket, limits: VoskLimits, *, clock: Callable[[], float], deadline: float
) -> Message:
    """The client's next message; a ProtocolError when the stream has lasted too long or
    the client has sent nothing for too long."""
    while True:
        left = deadline - clock()
        if left <= 0:
            hours = limits.max_stream_seconds / 3600
            raise ProtocolError(CLOSE_POLICY, f"stream too long: at most {hours:g} hours")
        try:
            return await asyncio.wait_for(websocket.receive(), min(limits.idle_seconds, left))
        except TimeoutError:
            if clock() < deadline:
                raise ProtocolError(
                    CLOSE_GOING_AWAY, f"idle: no audio for {limits.idle_seconds:g} seconds"
                ) from None
            # Otherwise the deadline has passed: the check above closes the stream.


async def answer(websocket: WebSocket, session: VoskSession, message: Message) -> bool:
    """Answer one audio or text frame; False once the stream has ended (eof)."""
    limits = session.limits
    data, text = message.get("bytes"), message.get("text")
    if data is not None:
        if len(data) > limits.max_frame_bytes:
            raise ProtocolError(
                CLOSE_TOO_BIG,
                f"frame too big: at most {limits.max_frame_bytes // 1024} KB of audio",
            )
        await websocket.send_text(await session.audio(data))
    elif text is not None:
        if len(text) > limits.max_text_bytes:
            raise ProtocolError(CLOSE_TOO_BIG, "text frame too big")
        kind, config = parse_text(text)
        if kind == "config":
            session.configure(config)
        elif kind == "reset":
            await websocket.send_text(await session.reset())
        else:
            await websocket.send_text(await session.eof())
            await websocket.close(code=CLOSE_NORMAL)
            return False
    return True
