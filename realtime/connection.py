"""One client's live feed, whatever the transport: the channels it follows, the last id it
has of each, and a bounded queue of what is still to send.

Events reach the client in order and exactly once per channel: ids at or below the cursor
are dropped, and a jump in ids is filled from the event log before going on.

A connection can be asked to check itself again (a "recheck" on its signal channel, sent
when what its person may see has changed, and now and then on its own): the app's `recheck`
says what it follows from then on, or ends it (AccessEnded)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping

from realtime import log as event_log
from realtime.events import control
from realtime.hub import Hub

QUEUE_SIZE = 256
_OVERFLOW = ("", -1, "")
_CATCH_UP = ("", -2, "")
_HEARTBEAT = ("", -3, "")
_RECHECK = ("", -4, "")
_MEDIA = ("", -5, "")
_REPLY = -6  # with the reply itself as the wire
HEARTBEAT = control("hb")
# Returned by `next` when media is waiting in the connection's inbox (realtime/media.py);
# the owner (LiveConnection) puts the media in its place.
MEDIA_READY = "\x00media"

# Given the connection's cursors, the channels (and cursors) it follows from now on; raises
# AccessEnded when it may follow nothing any more.
Recheck = Callable[[dict[str, int]], Awaitable[Mapping[str, int | None]]]


class SlowConsumer(Exception):
    """The client fell too far behind; it must reconnect and resync."""


class Busy(Exception):
    """The app cannot check the connection now (its database is too busy): the client
    reconnects in a moment, and is checked then. Nothing more is sent meanwhile."""


class AccessEnded(Exception):
    """The person may no longer use this connection; the transport tells the client and ends it."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Connection:
    def __init__(
        self,
        hub: Hub,
        *,
        member: str,
        queue_size: int = QUEUE_SIZE,
        stale_on: tuple[str, ...] = (),
        signals: str | None = None,
        recheck: Recheck | None = None,
        recheck_every: float | None = None,
    ) -> None:
        self.hub = hub
        self.member = member
        # Event types (or type prefixes) after which what the server knows about this
        # client's place may be out of date; `stale` is set when one passes by, and when the
        # connection is asked to check itself again.
        self._stale_markers = tuple(f'"t":"{kind}' for kind in stale_on)
        self.stale = False
        self.cursors: dict[str, int] = {}
        self.channels: set[str] = set()
        # A channel listened to for rechecks whatever the client follows (its person's own).
        self._signals = signals
        self._recheck = recheck
        self._recheck_every = recheck_every
        self._recheck_queued = False
        self._media_queued = False
        self.checked_at = time.monotonic()
        # Channels this connection is a listener of in the hub: what it follows, and signals.
        self.listening: set[str] = set()
        # A recheck (from the sending side) and a hello (from the receiving side) may both
        # change what is followed; one at a time.
        self._following = asyncio.Lock()
        self._queue: asyncio.Queue[tuple[str, int, str]] = asyncio.Queue(queue_size)
        self.overflowed = False

    # Called by the hub, synchronously, for every event on a followed channel.
    def offer(self, channel: str, seq: int, wire: str) -> None:
        # Stale from the moment such an event arrives, not only once it is sent: what the
        # app keeps about the person (a seat their posts use) is not trusted meanwhile.
        if self._stale_markers and not self.stale:
            self._notice(wire)
        if self.overflowed:
            return
        try:
            self._queue.put_nowait((channel, seq, wire))
        except asyncio.QueueFull:
            self._overflow()

    def _overflow(self) -> None:
        """Too far behind: drop what is queued; the client reconnects and resyncs."""
        self.overflowed = True
        while not self._queue.empty():
            self._queue.get_nowait()
        self._queue.put_nowait(_OVERFLOW)

    def offer_heartbeat(self) -> None:
        # The heartbeat's timer also makes a connection that hears nothing check itself now
        # and then, in case a recheck was lost on the way (a broker reconnect).
        if (
            self._recheck_every is not None
            and time.monotonic() - self.checked_at >= self._recheck_every
        ):
            self.recheck_soon()
        if not self.overflowed and self._queue.empty():
            self._queue.put_nowait(_HEARTBEAT)

    # Called by the hub, synchronously, when a recheck arrives on a channel listened to.
    def recheck_soon(self) -> None:
        """Check this connection before sending anything queued after now."""
        self.stale = True
        if self.overflowed or self._recheck_queued:
            return
        try:
            self._queue.put_nowait(_RECHECK)
        except asyncio.QueueFull:
            # Never skip a recheck: a client this far behind reconnects, and is checked then.
            self._overflow()
            return
        self._recheck_queued = True

    def offer_reply(self, wire: str) -> None:
        """A reply to something the client sent (a chat frame's ack or refusal), answered
        once it is known, in order with the events."""
        if self.overflowed:
            return
        try:
            self._queue.put_nowait(("", _REPLY, wire))
        except asyncio.QueueFull:
            self._overflow()

    def wake_media(self) -> None:
        """Media is waiting: say so once, in order with the events (never an overflow:
        media that cannot wait is dropped by its inbox instead)."""
        if self._media_queued or self.overflowed or self._queue.full():
            return
        self._queue.put_nowait(_MEDIA)
        self._media_queued = True

    def request_catch_up(self) -> None:
        if not self.overflowed and not self._queue.full():
            self._queue.put_nowait(_CATCH_UP)

    async def follow(self, cursors: Mapping[str, int | None]) -> list[str]:
        """Follow exactly these channels from these cursors (None: from now on).

        Subscribes first, then reads the log, so nothing falls between the two. Returns
        what the client must receive before live events: missed events, or a resync for
        a channel whose cursor is too old to replay."""
        async with self._following:
            return await self.follow_held(cursors)

    @property
    def following(self) -> asyncio.Lock:
        """Held while what the connection follows is decided and changed: a recheck and a
        client's hello never interleave (one would undo the other)."""
        return self._following

    async def follow_held(self, cursors: Mapping[str, int | None]) -> list[str]:
        """`follow`, for a caller holding `following`."""
        wanted = set(cursors)
        listening = wanted | ({self._signals} if self._signals else set())
        await self.hub.join(self, listening - self.listening)
        await self.hub.leave(self, self.listening - listening)
        self.listening = listening
        self.channels = wanted
        self.hub.connections.add(self)
        for channel in list(self.cursors):
            if channel not in wanted:
                del self.cursors[channel]
        out: list[str] = []
        async with self.hub.sessionmaker() as db:
            heads = await event_log.heads(db, sorted(wanted))
            for channel in sorted(wanted):
                head = heads[channel]
                cursor = cursors[channel]
                if cursor is None:
                    self.cursors[channel] = head
                elif cursor > head or head - cursor > event_log.MAX_REPLAY:
                    self.cursors[channel] = head
                    out.append(control("resync", c=channel, i=head))
                else:
                    self.cursors[channel] = cursor
                    for seq, wire in await event_log.since(db, channel, cursor):
                        out.append(wire)
                        self.cursors[channel] = seq
        return out

    async def next(self, timeout: float | None = None) -> list[str] | None:
        """Wait for the next event(s) to send, in order; None if `timeout` passes first."""
        if not self._queue.empty():
            # The common case under load: no timer, no extra task.
            channel, seq, wire = self._queue.get_nowait()
        elif timeout is None:
            channel, seq, wire = await self._queue.get()
        else:
            try:
                async with asyncio.timeout(timeout):
                    channel, seq, wire = await self._queue.get()
            except TimeoutError:
                return None
        if seq > 0 and seq == self.cursors.get(channel, -1) + 1 and channel in self.channels:
            # The next event of a followed channel (most of them): `_accept`, inline.
            self.cursors[channel] = seq
            if self._stale_markers:
                self._notice(wire)
            return [wire]
        if seq == -1:
            raise SlowConsumer()
        if seq == -2:
            return await self._catch_up()
        if seq == -3:
            return [HEARTBEAT]
        if seq == -4:
            return await self._run_recheck()
        if seq == -5:
            self._media_queued = False
            return [MEDIA_READY]
        if seq == _REPLY:
            return [wire]
        return await self._accept(channel, seq, wire)

    async def _run_recheck(self) -> list[str]:
        self._recheck_queued = False
        if self._recheck is None:
            # Nothing to ask: `stale` tells the connection's owner to look for itself.
            self.checked_at = time.monotonic()
            return []
        return await self.recheck()

    async def recheck(self) -> list[str]:
        """Ask the app what this connection follows now (it may raise AccessEnded), and
        follow that: what was missed on a channel new to it comes with the answer. The
        answer is fresh, so the connection is no longer stale (an event that passes while
        the app looks makes it stale again)."""
        assert self._recheck is not None, "a connection without a recheck cannot recheck"
        self.checked_at = time.monotonic()
        async with self._following:
            self.stale = False
            wanted = await self._recheck(dict(self.cursors))
            return await self.follow_held(wanted)

    def pending(self) -> bool:
        return not self._queue.empty()

    async def next_nowait(self) -> list[str]:
        """What is already queued, without waiting."""
        out: list[str] = []
        while not self._queue.empty():
            out.extend(await self.next() or [])
        return out

    async def _accept(self, channel: str, seq: int, wire: str) -> list[str]:
        if channel not in self.channels:
            return []
        if seq == 0:
            return [wire]
        last = self.cursors.get(channel, 0)
        if seq <= last:
            return []
        if seq == last + 1:
            self.cursors[channel] = seq
            self._notice(wire)
            return [wire]
        return await self._fill_gap(channel, last, seq)

    async def _fill_gap(self, channel: str, last: int, upto: int) -> list[str]:
        out = []
        if upto - last > event_log.MAX_REPLAY:
            async with self.hub.sessionmaker() as db:
                head = await event_log.head(db, channel)
            self.cursors[channel] = head
            return [control("resync", c=channel, i=head)]
        async with self.hub.sessionmaker() as db:
            missed = await event_log.since(db, channel, last, limit=upto - last)
        for seq, wire in missed:
            if seq == self.cursors[channel] + 1:
                out.append(wire)
                self.cursors[channel] = seq
                self._notice(wire)
        return out

    def _notice(self, wire: str) -> None:
        # An event's type comes after its channel (at most 100 characters) and id: look
        # there only, not through the whole fragment.
        at = wire.find('"t":"', 0, 160)
        if at >= 0 and wire.startswith(self._stale_markers, at):
            self.stale = True

    async def _catch_up(self) -> list[str]:
        out: list[str] = []
        async with self.hub.sessionmaker() as db:
            heads = await event_log.heads(db, sorted(self.channels))
        for channel, head in heads.items():
            last = self.cursors.get(channel, 0)
            if head > last:
                out.extend(await self._fill_gap(channel, last, head))
        return out

    async def close(self) -> None:
        await self.hub.leave(self)
        self.listening = set()
