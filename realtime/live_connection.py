"""One owner per live connection, whatever carries it (WebSocket, Server-Sent Events,
long-polling): it authorizes what the client asks to follow, follows its channels (moves,
mutes and rechecks through the `Access` the app supplies), takes what the client sends and
hands out what is to be sent. The transports (realtime/transport.py) only adapt it.

`realtime/` knows channels and frames, never people or rules: everything about who may
follow what, and what happens when that changes, is the app's `Access`.

Traffic on a connection, by kind:

- **Control and events** (text): the client's `hello` (cursors to follow) and `ping`; the
  server's events, in order per channel, and control messages (hello, pong, error, resync,
  reload, hb). Actions a person takes are ordinary HTTP posts, so they work on every
  transport; `actions` is where an app would take an action frame, and none does today.
- **Media** (binary): the slot for voice and video. A media frame will carry a small
  header (kind, speaker or tile, sequence, timestamp) and its payload; it is never stored,
  is fanned out per room, and waits in a small drop-oldest queue per listener (late audio
  is worse than lost audio), sent as a binary frame on a WebSocket and base64 in text on
  the fallbacks. Until then `receive_media` refuses it (1003), as before."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

from realtime.connection import AccessEnded, Connection, SlowConsumer
from realtime.events import control
from realtime.frames import FrameError, parse_frame
from realtime.hub import Hub

__all__ = ["Access", "AccessEnded", "Close", "LiveConnection", "SlowConsumer"]

MAX_CHANNELS = 16
MAX_FRAMES_PER_10S = 40
MAX_BAD_FRAMES = 10

Cursors = dict[str, int | None]
# An action frame (anything but hello and ping); returns control messages to send back,
# or raises FrameError.
ActionHandler = Callable[[dict[str, Any]], Awaitable[list[str]]]


class Access(Protocol):
    """What the app decides about one connection."""

    # Who the connection is for (presence), the channel on which it is asked to check
    # itself again whatever it follows (None: never asked), the event types after which
    # what the app knows about its place may be out of date, and how often it checks
    # itself without being asked (None: never).
    member: str
    signals: str | None
    stale_on: tuple[str, ...]
    recheck_every: float | None

    async def authorize(self, cursors: Cursors, *, stale: bool) -> tuple[Cursors, list[str]]:
        """The channels of `cursors` this client may follow (with their cursors), and an
        error message for each refused one. `stale`: look again before deciding."""
        ...

    async def recheck(self, cursors: Mapping[str, int]) -> Cursors:
        """What the connection follows now that what its person may see has changed (given
        what it follows now, with its cursors); raises AccessEnded when it may follow
        nothing any more."""
        ...


class Close(Exception):
    """The client broke the rules of the connection: close it with this code and reason."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


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


async def _no_actions(frame: dict[str, Any]) -> list[str]:
    raise FrameError("unknown_type", f"unknown frame type {str(frame['type'])[:40]!r}")


class LiveConnection:
    def __init__(
        self,
        hub: Hub,
        access: Access,
        *,
        transport: str,
        actions: ActionHandler = _no_actions,
    ) -> None:
        self.hub = hub
        self.access = access
        self.transport = transport
        self._actions = actions
        self.feed = self._new_feed()
        self._window_start, self._frames, self._bad = time.monotonic(), 0, 0

    def _new_feed(self) -> Connection:
        return Connection(
            self.hub,
            member=self.access.member,
            stale_on=self.access.stale_on,
            signals=self.access.signals,
            recheck=self.access.recheck,
            recheck_every=self.access.recheck_every,
        )

    # -- following --

    @property
    def cursors(self) -> dict[str, int]:
        return self.feed.cursors

    @property
    def channels(self) -> set[str]:
        return self.feed.channels

    @property
    def stale(self) -> bool:
        """An event has passed that may have moved the person; `recheck` looks again."""
        return self.feed.stale

    async def follow(self, cursors: Cursors) -> list[str]:
        """Follow what the app allows of `cursors`; returns the refusals, then what was
        missed (or a resync) on the channels followed."""
        async with self.feed.following:
            stale, self.feed.stale = self.feed.stale, False
            allowed, refusals = await self.access.authorize(cursors, stale=stale)
            out = [control("error", code="not_allowed", message=m) for m in refusals]
            out.extend(await self.feed.follow_held(allowed))
        return out

    async def open(self, cursors: Cursors) -> list[str]:
        """`follow`, for a connection that ends if it cannot start (a database too busy):
        it is released rather than left following channels for nobody."""
        try:
            return await self.follow(cursors)
        except BaseException:
            await self.close()
            raise

    async def recheck(self) -> list[str]:
        """Ask the app again what this connection follows, and follow that (AccessEnded
        when it may follow nothing): for an owner that noticed it is `stale`."""
        return await self.feed.recheck()

    async def follow_afresh(self) -> None:
        """Start over on the same channels from now on, after falling too far behind
        (SlowConsumer), for an owner that cares about what comes next rather than about
        every event (the microphone: mutes and moves)."""
        following = dict.fromkeys(self.feed.channels)
        await self.feed.close()
        self.feed = self._new_feed()
        await self.feed.follow(following)

    # -- receiving --

    async def receive_text(self, text: str) -> list[str]:
        """One text frame from the client; the replies to send it. Raises Close when the
        client breaks the connection's rules."""
        self._count_frame()
        try:
            frame = parse_frame(text)
            kind = frame["type"]
            if kind == "ping":
                n = frame.get("n")
                return [control("pong", n=n if isinstance(n, int) else 0)]
            if kind == "hello":
                # A page that changed room says hello again: answered as the first, so it
                # knows it is live (then the backlog of the channels it now follows).
                return await self.hello(frame)
            return await self._actions(frame)
        except FrameError as exc:
            if exc.code == "too_big":
                raise Close(1009, exc.message) from exc
            self._bad += 1
            if self._bad > MAX_BAD_FRAMES:
                raise Close(1003, "too many malformed frames") from exc
            return [control("error", code=exc.code, message=exc.message)]

    async def receive_media(self, data: bytes) -> list[str]:
        """One binary frame from the client: the slot for media (see the module's doc).
        No kind of media is taken yet."""
        self._count_frame()
        raise Close(1003, "binary frames are not accepted here")

    async def hello(self, frame: dict[str, Any]) -> list[str]:
        """The answer to a hello: hello, then what `follow` returns."""
        cursors = parse_cursors(frame.get("cursors", {}))
        return [control("hello", transport=self.transport), *await self.follow(cursors)]

    def _count_frame(self) -> None:
        now = time.monotonic()
        if now - self._window_start > 10:
            self._window_start, self._frames = now, 0
        self._frames += 1
        if self._frames > MAX_FRAMES_PER_10S:
            raise Close(1008, "too many messages; slow down")

    # -- sending --

    async def next(self, timeout: float | None = None) -> list[str] | None:
        """The next messages to send, in order; None if `timeout` passes first. Raises
        SlowConsumer (the client must reconnect and resync) or AccessEnded."""
        return await self.feed.next(timeout)

    async def next_nowait(self) -> list[str]:
        return await self.feed.next_nowait()

    async def close(self) -> None:
        await self.feed.close()
