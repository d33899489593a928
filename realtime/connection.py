"""One client's live feed, whatever the transport: the channels it follows, the last id it
has of each, and a bounded queue of what is still to send.

Events reach the client in order and exactly once per channel: ids at or below the cursor
are dropped, and a jump in ids is filled from the event log before going on."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from realtime import log as event_log
from realtime.events import control
from realtime.hub import Hub

QUEUE_SIZE = 256
_OVERFLOW = ("", -1, "")
_CATCH_UP = ("", -2, "")
_HEARTBEAT = ("", -3, "")
HEARTBEAT = control("hb")


class SlowConsumer(Exception):
    """The client fell too far behind; it must reconnect and resync."""


class Connection:
    def __init__(
        self,
        hub: Hub,
        *,
        member: str,
        queue_size: int = QUEUE_SIZE,
        stale_on: tuple[str, ...] = (),
    ) -> None:
        self.hub = hub
        self.member = member
        # Event types (or type prefixes) after which what the server knows about this
        # client's place may be out of date; `stale` is set when one passes by.
        self._stale_markers = tuple(f'"t":"{kind}' for kind in stale_on)
        self.stale = False
        self.cursors: dict[str, int] = {}
        self.channels: set[str] = set()
        self._queue: asyncio.Queue[tuple[str, int, str]] = asyncio.Queue(queue_size)
        self.overflowed = False

    # Called by the hub, synchronously, for every event on a followed channel.
    def offer(self, channel: str, seq: int, wire: str) -> None:
        if self.overflowed:
            return
        try:
            self._queue.put_nowait((channel, seq, wire))
        except asyncio.QueueFull:
            self.overflowed = True
            while not self._queue.empty():
                self._queue.get_nowait()
            self._queue.put_nowait(_OVERFLOW)

    def offer_heartbeat(self) -> None:
        if not self.overflowed and self._queue.empty():
            self._queue.put_nowait(_HEARTBEAT)

    def request_catch_up(self) -> None:
        if not self.overflowed and not self._queue.full():
            self._queue.put_nowait(_CATCH_UP)

    async def follow(self, cursors: Mapping[str, int | None]) -> list[str]:
        """Follow exactly these channels from these cursors (None: from now on).

        Subscribes first, then reads the log, so nothing falls between the two. Returns
        what the client must receive before live events: missed events, or a resync for
        a channel whose cursor is too old to replay."""
        wanted = set(cursors)
        await self.hub.join(self, wanted - self.channels)
        await self.hub.leave(self, self.channels - wanted)
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
        else:
            try:
                async with asyncio.timeout(timeout):
                    channel, seq, wire = await self._queue.get()
            except TimeoutError:
                return None
        if seq == -1:
            raise SlowConsumer()
        if seq == -2:
            return await self._catch_up()
        if seq == -3:
            return [HEARTBEAT]
        return await self._accept(channel, seq, wire)

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
        if self._stale_markers and any(marker in wire for marker in self._stale_markers):
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
