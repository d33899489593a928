"""Caption engines elsewhere: which one a new speaking stream goes to.

`CAPTION_ENGINES` lists the WebSocket URLs of vosk-server-compatible engines (alphacep's
vosk-server, or Roundtable's caption-only process, captioning/server.py). The chooser
spreads streams over them, fewest streams first (ties broken at random, so that several
app processes starting at once do not all pick the first engine), and skips an engine
that does not answer until it answers again:

- every `check_interval` seconds each engine is probed: a WebSocket handshake, then a
  short wait in case the engine refuses us (a wrong token closes with 1008 at once);
  nothing is sent, so no recognizer is made (that works with alphacep's server too);
- a stream that loses its engine reports it at once (`mark_dead`), so the next stream,
  and the stream's own failover, skip it without waiting for the next probe.

The counts are this process's own streams: each app process spreads its speakers itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from captioning.stream import RealtimeBudget

log = logging.getLogger(__name__)

CHECK_INTERVAL_SECONDS = 2.0
CONNECT_TIMEOUT_SECONDS = 2.0
# How long a probe waits, after the handshake, for a refusal.
REFUSAL_WAIT_SECONDS = 0.3
# Audio frames are small; an answer carries one utterance's words.
MAX_ANSWER_BYTES = 4 * 1024 * 1024


class Recognizer(Protocol):
    """What a live caption stream needs of its recognizer, wherever it runs
    (captioning/stream.py's RecognizerStream here, captioning/remote.py's elsewhere)."""

    audio_seconds: float

    @property
    def closed(self) -> bool: ...

    async def accept(self, pcm: bytes) -> dict[str, Any]: ...

    async def final(self) -> dict[str, Any]: ...

    def close(self) -> None: ...


# (sample rate, budget, clock) -> a recognizer for one live stream.
OpenRecognizer = Callable[[int, RealtimeBudget | None, Callable[[], float]], Recognizer]


def parse_engine_urls(value: str) -> list[str]:
    """`CAPTION_ENGINES`: comma-separated ws:// or wss:// URLs; empty means none."""
    urls = [part.strip() for part in value.split(",") if part.strip()]
    for url in urls:
        if not url.startswith(("ws://", "wss://")):
            raise ValueError(
                f"CAPTION_ENGINES: {url!r} is not a WebSocket URL (ws://host:port or wss://...)"
            )
    if len(set(urls)) != len(urls):
        raise ValueError("CAPTION_ENGINES lists the same engine twice")
    return urls


@dataclass(eq=False)
class Engine:
    url: str
    healthy: bool = True
    streams: int = 0
    # Why it is skipped (for the log and the health page); empty while it answers.
    reason: str = ""


class EngineChooser:
    def __init__(
        self,
        urls: Sequence[str],
        *,
        token: str | None = None,
        check_interval: float = CHECK_INTERVAL_SECONDS,
        connect_timeout: float = CONNECT_TIMEOUT_SECONDS,
        rng: random.Random | None = None,
        probe: Callable[[Engine], Awaitable[str]] | None = None,
    ) -> None:
        self.engines = [Engine(url) for url in urls]
        self.token = token or None
        self.check_interval = check_interval
        self.connect_timeout = connect_timeout
        self._rng = rng or random.Random()  # noqa: S311 - spreading load, not secrecy
        self._probe = probe or self.probe
        self._task: asyncio.Task[None] | None = None
        # Connections being closed in the background (kept so that they finish).
        self._closing: set[asyncio.Task[None]] = set()

    # -- choosing --

    def pick(self, exclude: Collection[Engine] = ()) -> Engine | None:
        """The healthy engine with the fewest streams, or None when none is left."""
        candidates = [e for e in self.engines if e.healthy and e not in exclude]
        if not candidates:
            return None
        fewest = min(e.streams for e in candidates)
        return self._rng.choice([e for e in candidates if e.streams == fewest])

    def opened(self, engine: Engine) -> None:
        engine.streams += 1

    def released(self, engine: Engine) -> None:
        engine.streams = max(0, engine.streams - 1)

    def mark_dead(self, engine: Engine, reason: str) -> None:
        if engine.healthy:
            log.warning("caption engine %s skipped: %s", engine.url, reason)
        engine.healthy, engine.reason = False, reason

    def mark_alive(self, engine: Engine) -> None:
        if not engine.healthy:
            log.warning("caption engine %s answers again", engine.url)
        engine.healthy, engine.reason = True, ""

    # -- connecting --

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    async def connect(self, engine: Engine) -> ClientConnection:
        """A WebSocket to the engine; OSError, TimeoutError or InvalidHandshake if not."""
        return await connect(
            engine.url,
            additional_headers=self.headers(),
            open_timeout=self.connect_timeout,
            compression=None,  # PCM does not compress; deflating it costs CPU on both sides
            max_size=MAX_ANSWER_BYTES,
            close_timeout=1,
        )

    def close_later(self, ws: ClientConnection) -> None:
        """Close a connection without waiting (from a synchronous `close()`)."""
        task = asyncio.get_running_loop().create_task(_close_quietly(ws))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def probe(self, engine: Engine) -> str:
        """Empty if the engine takes connections, otherwise why not."""
        try:
            ws = await self.connect(engine)
        except (OSError, TimeoutError, InvalidHandshake, InvalidURI) as exc:
            return f"no connection ({type(exc).__name__}: {exc})"
        try:
            async with asyncio.timeout(REFUSAL_WAIT_SECONDS):
                message = await ws.recv()  # an engine sends nothing unasked but a refusal
            return f"refused: {str(message)[:200]}"
        except TimeoutError:
            return ""
        except ConnectionClosed as exc:
            rcvd = exc.rcvd
            return f"refused ({rcvd.code}: {rcvd.reason})" if rcvd else "closed at once"
        finally:
            await _close_quietly(ws)

    async def check(self, engine: Engine) -> None:
        reason = await self._probe(engine)
        if reason:
            self.mark_dead(engine, reason)
        else:
            self.mark_alive(engine)

    async def check_all(self) -> None:
        await asyncio.gather(*(self.check(engine) for engine in self.engines))

    # -- the periodic checks, for the app's lifespan --

    async def start(self) -> None:
        """Check every engine once (so the first speakers find a live one), then keep
        checking in the background."""
        if not self.engines:
            return
        await self.check_all()
        self._task = asyncio.create_task(self._run(), name="caption-engine-checks")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._closing:
            await asyncio.wait(self._closing, timeout=2)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.check_interval)
            try:
                await self.check_all()
            except Exception:
                log.exception("could not check the caption engines")


async def _close_quietly(ws: ClientConnection) -> None:
    with contextlib.suppress(Exception):  # the engine may be gone already
        await ws.close()
