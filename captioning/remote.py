"""A live stream's recognizer on a caption engine elsewhere, moving when the engine dies.

RemoteRecognizerStream answers like captioning/stream.py's RecognizerStream (accept, final,
close, closed, audio_seconds), speaking the vosk-server protocol to an engine the chooser
(captioning/engines.py) picks: {"config": {"sample_rate", "words"}}, then each audio frame
answered by one message, in order; the end of an utterance asked for with {"eof" : 1}
(spelled as alphacep's server compares it), after which the engine closes the connection
and the next audio opens a new one.

Moving without a duplicated or lost final: the stream keeps the audio since the last final
it received. When its engine dies (the connection drops, it answers with an error, or it
does not answer within `answer_timeout`), the stream opens the next engine (fewest streams
first; this process's own Vosk model as the last resort) and sends it that audio again, so
the utterance in progress is recognized again from its start. Finals already received are
never asked for again. Word times are shifted by where each connection's audio began, so
they keep counting seconds of the whole stream, as RecognizerStream's do.

A stream on the local model goes back to an engine at the end of an utterance, once one
answers again.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from captioning.audio import AudioFormatError, PcmCarry, parse_sample_rate, pcm_seconds
from captioning.engine import CaptionEngine, CaptionsUnavailable
from captioning.engines import Engine, EngineChooser, OpenRecognizer, Recognizer
from captioning.stream import (
    BudgetMeter,
    RealtimeBudget,
    RecognizerStream,
    StreamClosed,
    StreamConfigError,
)
from captioning.vosk_protocol import CLOSE_GOING_AWAY, CLOSE_NORMAL

log = logging.getLogger(__name__)

ANSWER_TIMEOUT_SECONDS = 3.0
EOF = '{"eof" : 1}'  # alphacep's server compares the text exactly
# The audio resent to a new engine goes in pieces of at most this much.
REPLAY_PIECE_SECONDS = 1.0
# An utterance is ended by Vosk after 20 s without a pause at most; this bounds the memory
# kept for a stream that somehow never gets a final.
MAX_KEPT_SECONDS = 60.0


class EngineFailed(Exception):
    """The engine cannot go on with this stream: it is gone, refused, or too slow.
    `dead`: skip it until it answers a check again (not when it merely ended the
    connection normally, as after a long silence)."""

    def __init__(self, reason: str, *, dead: bool = True) -> None:
        super().__init__(reason)
        self.dead = dead


class _Backend(Protocol):
    @property
    def offset(self) -> float:
        """Seconds of the stream at which this backend's audio began (its word times
        count from there)."""

    @property
    def engine(self) -> Engine | None:
        """None for the local model."""

    async def audio(self, pcm: bytes) -> dict[str, Any]: ...

    async def eof(self) -> dict[str, Any]: ...

    def close(self) -> None: ...


class _Socket:
    """One connection to a vosk-server-compatible engine."""

    def __init__(
        self,
        ws: ClientConnection,
        engine: Engine,
        offset: float,
        timeout: float,
        chooser: EngineChooser,
    ) -> None:
        self.ws, self.engine, self.offset, self.timeout = ws, engine, offset, timeout
        self._chooser = chooser

    async def _ask(self, message: bytes | str) -> dict[str, Any]:
        try:
            await self.ws.send(message)
            async with asyncio.timeout(self.timeout):
                raw = await self.ws.recv()
        except TimeoutError:
            raise EngineFailed(f"no answer within {self.timeout:g} s") from None
        except ConnectionClosed as exc:
            rcvd = exc.rcvd
            why = f"{rcvd.code}: {rcvd.reason}" if rcvd else "the connection dropped"
            normal = rcvd is not None and rcvd.code in (CLOSE_NORMAL, CLOSE_GOING_AWAY)
            raise EngineFailed(f"closed ({why})", dead=not normal) from None
        except OSError as exc:
            raise EngineFailed(str(exc)) from None
        try:
            answer = json.loads(raw)
        except (TypeError, ValueError):
            raise EngineFailed("it answered with something other than JSON") from None
        if not isinstance(answer, dict) or "error" in answer:
            raise EngineFailed(f"it refused: {answer}")
        return answer

    async def audio(self, pcm: bytes) -> dict[str, Any]:
        return await self._ask(pcm)

    async def eof(self) -> dict[str, Any]:
        return await self._ask(EOF)  # the engine closes the connection after it

    def close(self) -> None:
        self._chooser.close_later(self.ws)


class _Local:
    """This process's own Vosk model, when no engine answers."""

    def __init__(self, stream: RecognizerStream, offset: float) -> None:
        self.stream, self.offset = stream, offset
        self.engine: Engine | None = None

    async def audio(self, pcm: bytes) -> dict[str, Any]:
        return await self.stream.accept(pcm)

    async def eof(self) -> dict[str, Any]:
        return await self.stream.final()

    def close(self) -> None:
        self.stream.close()


def shifted(answer: dict[str, Any], offset: float) -> dict[str, Any]:
    """The answer with its word times counted from the start of the whole stream."""
    words = answer.get("result")
    if not offset or not isinstance(words, list):
        return answer
    moved = [
        {**w, "start": w.get("start", 0.0) + offset, "end": w.get("end", 0.0) + offset}
        if isinstance(w, dict)
        else w
        for w in words
    ]
    return {**answer, "result": moved}


def merged(finals: list[dict[str, Any]]) -> dict[str, Any]:
    """Several finals (a resent utterance that Vosk now ends in two) as one answer."""
    if len(finals) == 1:
        return finals[0]
    text = " ".join(str(f.get("text", "")) for f in finals).split()
    words = [w for f in finals for w in (f.get("result") or [])]
    return {"text": " ".join(text), "result": words}


class RemoteRecognizerStream:
    def __init__(
        self,
        chooser: EngineChooser,
        local: CaptionEngine | None,
        sample_rate: object,
        *,
        words: bool = True,
        budget: RealtimeBudget | None = None,
        clock: Callable[[], float] = time.monotonic,
        answer_timeout: float = ANSWER_TIMEOUT_SECONDS,
    ) -> None:
        try:
            self.sample_rate = parse_sample_rate(sample_rate)
        except AudioFormatError as exc:
            raise StreamConfigError(str(exc)) from exc
        self.chooser = chooser
        self.local = local
        self.words = words
        self.answer_timeout = answer_timeout
        self.audio_seconds = 0.0
        # The audio since the last final received, and where in the stream it begins.
        self._kept: list[bytes] = []
        self._kept_from = 0.0
        # Finals a new backend found in the kept audio, not yet handed on.
        self._found: list[dict[str, Any]] = []
        self._backend: _Backend | None = None
        self._closed = False
        self._carry = PcmCarry()
        self._meter = BudgetMeter(budget, clock) if budget is not None else None
        self._lock = asyncio.Lock()
        self._last_partial: dict[str, Any] = {"partial": ""}
        # Engines this stream has moved away from, in order.
        self.moves: list[str] = []

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def engine(self) -> Engine | None:
        """The engine the stream is on now (None: not connected, or the local model)."""
        return self._backend.engine if self._backend is not None else None

    async def accept(self, pcm: bytes) -> dict[str, Any]:
        async with self._lock:
            self._require_open()
            pcm = self._carry.take(pcm)
            if not pcm:
                return self._last_partial
            seconds = pcm_seconds(len(pcm), self.sample_rate)
            if self._meter is not None:
                self._meter.spend(seconds)
            self.audio_seconds += seconds
            self._keep(pcm)
            while self._backend is not None:
                try:
                    answer = await self._backend.audio(pcm)
                except EngineFailed as exc:
                    self._lost(exc)
                    break  # the next engine hears this frame with the rest kept
                answer = shifted(answer, self._backend.offset)
                if "text" in answer:
                    self._kept, self._kept_from = [], self.audio_seconds
                return self._settle(answer)
            return self._settle(await self._reopen())

    async def final(self) -> dict[str, Any]:
        """The rest of the utterance, as final text; the stream may go on after it."""
        async with self._lock:
            self._require_open()
            self._carry.clear()
            if not self._kept:
                return {"text": ""}  # nothing heard since the last final
            finals: list[dict[str, Any]] = []
            while True:
                if self._backend is None:
                    answer = await self._reopen()
                    if "text" in answer:
                        finals.append(answer)
                    if not self._kept:
                        break
                backend = self._backend
                assert backend is not None
                try:
                    answer = shifted(await backend.eof(), backend.offset)
                except EngineFailed as exc:
                    self._lost(exc)
                    continue
                finals.append(answer)
                if backend.engine is not None:  # the engine ends the connection after eof
                    self._drop_backend()
                break
            self._kept, self._kept_from = [], self.audio_seconds
            return self._settle(merged(finals))

    def close(self) -> None:
        self._closed = True
        self._drop_backend()
        self._kept = []

    # -- internals --

    def _require_open(self) -> None:
        if self._closed:
            raise StreamClosed("this recognizer stream is closed")

    def _keep(self, pcm: bytes) -> None:
        self._kept.append(pcm)
        while pcm_seconds(sum(map(len, self._kept)), self.sample_rate) > MAX_KEPT_SECONDS:
            self._kept_from += pcm_seconds(len(self._kept.pop(0)), self.sample_rate)

    def _settle(self, answer: dict[str, Any]) -> dict[str, Any]:
        if "text" not in answer:
            self._last_partial = answer
            return answer
        self._last_partial = {"partial": ""}
        backend = self._backend
        if backend is not None and backend.engine is None and self.chooser.pick():
            self._drop_backend()  # on the local model: back to an engine for what follows
        return answer

    def _lost(self, exc: EngineFailed) -> None:
        backend = self._backend
        if backend is not None and backend.engine is not None:
            if exc.dead:
                self.chooser.mark_dead(backend.engine, str(exc))
            self.moves.append(backend.engine.url)
            log.warning("a caption stream moves from %s: %s", backend.engine.url, exc)
        self._drop_backend()

    def _drop_backend(self) -> None:
        backend, self._backend = self._backend, None
        if backend is not None:
            backend.close()
            if backend.engine is not None:
                self.chooser.released(backend.engine)

    async def _reopen(self) -> dict[str, Any]:
        """A new backend, hearing the audio kept since the last final: the answer to the
        last of it, or the finals found in it merged into one."""
        tried: list[Engine] = []
        answer: dict[str, Any] | None = None
        began, kept = time.monotonic(), pcm_seconds(sum(map(len, self._kept)), self.sample_rate)
        while answer is None and (engine := self.chooser.pick(exclude=tried)) is not None:
            tried.append(engine)
            try:
                self._backend = await self._open_socket(engine)
                answer = await self._replay()
            except EngineFailed as exc:
                self._lost(exc)
        if answer is None:
            self._backend = self._open_local()
            answer = await self._replay()
        if self.moves:
            where = self.engine.url if self.engine is not None else "this process"
            took = time.monotonic() - began
            log.warning(
                "a caption stream moved to %s in %.2f s (%.1f s of audio heard again)",
                where,
                took,
                kept,
            )
        found, self._found = self._found, []
        return merged(found) if found else answer

    async def _open_socket(self, engine: Engine) -> _Socket:
        try:
            ws = await self.chooser.connect(engine)
        except (OSError, TimeoutError, InvalidHandshake, InvalidURI) as exc:
            self.chooser.mark_dead(engine, f"no connection ({type(exc).__name__})")
            raise EngineFailed(str(exc), dead=False) from None  # marked already
        self.chooser.opened(engine)
        socket = _Socket(ws, engine, self._kept_from, self.answer_timeout, self.chooser)
        config = {"sample_rate": self.sample_rate, "words": int(self.words)}
        try:
            await ws.send(json.dumps({"config": config}))
        except (ConnectionClosed, OSError) as exc:
            socket.close()
            self.chooser.released(engine)
            raise EngineFailed(f"closed at the config ({exc})") from None
        return socket

    def _open_local(self) -> _Local:
        local = self.local
        if local is None or not local.available:
            raise CaptionsUnavailable("captions unavailable: no caption engine answers")
        log.warning("no caption engine answers: a stream is captioned in this process")
        stream = RecognizerStream(local, self.sample_rate, words=self.words, budget=None)
        return _Local(stream, self._kept_from)

    async def _replay(self) -> dict[str, Any]:
        """Send the kept audio to the new backend in pieces. A final found on the way
        ends the kept audio there (it goes to `_found`); what follows it stays kept."""
        backend = self._backend
        assert backend is not None
        piece_bytes = int(REPLAY_PIECE_SECONDS * self.sample_rate) * 2
        answer: dict[str, Any] = {"partial": ""}
        start = 0
        while start < len(self._kept):
            end, size = start, 0
            while end < len(self._kept) and (
                end == start or size + len(self._kept[end]) <= piece_bytes
            ):
                size += len(self._kept[end])
                end += 1
            piece = b"".join(self._kept[start:end])
            answer = shifted(await backend.audio(piece), backend.offset)
            if "text" in answer:
                self._found.append(answer)
                self._kept_from += pcm_seconds(sum(map(len, self._kept[:end])), self.sample_rate)
                del self._kept[:end]
                start = 0
            else:
                start = end
        return answer


def remote_opener(chooser: EngineChooser, local: CaptionEngine | None) -> OpenRecognizer:
    """The app's factory for live streams' recognizers when engines are configured."""

    def open_recognizer(
        sample_rate: int, budget: RealtimeBudget | None, clock: Callable[[], float]
    ) -> Recognizer:
        return RemoteRecognizerStream(chooser, local, sample_rate, budget=budget, clock=clock)

    return open_recognizer
