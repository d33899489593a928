"""Fan-out inside one process: the broker delivers each channel's events here once, and
the hub hands them to every local connection listening to that channel."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from typing import TYPE_CHECKING, Protocol

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from realtime.broker import Broker

if TYPE_CHECKING:
    from realtime.connection import Connection

logger = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 25.0
# Not an event: a message asking every connection listening on the channel to check itself
# again (realtime.connection.Connection.recheck_soon). Events travel as "{id}|{wire}".
RECHECK = "!recheck"


class PresenceHooks(Protocol):
    """Told when a connection's person starts or stops following channels."""

    async def joined(self, member: str, joined: set[str]) -> None: ...

    async def left(self, member: str, left: set[str]) -> None: ...


class Hub:
    def __init__(self, broker: Broker, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self.broker = broker
        self.sessionmaker = sessionmaker
        self.presence: PresenceHooks | None = None
        self._local: dict[str, set[Connection]] = defaultdict(set)
        self._subscribing: dict[str, asyncio.Future[None]] = {}
        self.connections: set[Connection] = set()
        self._heartbeat: asyncio.Task[None] | None = None

    async def start(self, heartbeat_seconds: float = HEARTBEAT_SECONDS) -> None:
        await self.broker.start(self._dispatch, self._caught_up_after_reconnect)
        self._heartbeat = asyncio.create_task(self._beat(heartbeat_seconds), name="heartbeat")

    async def stop(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat
            self._heartbeat = None

    async def _beat(self, interval: float) -> None:
        """A heartbeat to every connection now and then, from one timer for all of them
        (rather than a timer per connection per event), so that clients and proxies see
        the connection is alive and a dead one is noticed."""
        while True:
            await asyncio.sleep(interval)
            for connection in tuple(self.connections):
                connection.offer_heartbeat()

    def _dispatch(self, channel: str, message: str) -> None:
        connections = self._local.get(channel)
        if not connections:
            return
        if message == RECHECK:
            for connection in tuple(connections):
                connection.recheck_soon()
            return
        seq_text, _, wire = message.partition("|")
        try:
            seq = int(seq_text)
        except ValueError:
            logger.warning("dropping a malformed broker message on %s", channel)
            return
        for connection in tuple(connections):
            connection.offer(channel, seq, wire)

    async def _caught_up_after_reconnect(self) -> None:
        for connection in tuple(self.connections):
            connection.request_catch_up()

    async def join(self, connection: Connection, channels: set[str]) -> None:
        self.connections.add(connection)
        added: set[str] = set()
        for channel in channels:
            listeners = self._local[channel]
            if connection not in listeners:
                added.add(channel)
            listeners.add(connection)
            pending = self._subscribing.get(channel)
            if pending is not None:
                # Another connection is subscribing this process; wait until it is live.
                await asyncio.shield(pending)
                continue
            if len(listeners) == 1:
                future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                self._subscribing[channel] = future
                try:
                    await self.broker.subscribe(channel)
                finally:
                    del self._subscribing[channel]
                    future.set_result(None)
        if added and self.presence is not None:
            try:
                await self.presence.joined(connection.member, added)
            except Exception:
                logger.warning("could not record presence", exc_info=True)

    async def leave(self, connection: Connection, channels: set[str] | None = None) -> None:
        if channels is None:
            channels = set(connection.listening)
            self.connections.discard(connection)
        removed: set[str] = set()
        for channel in channels:
            listeners = self._local.get(channel)
            if listeners is None:
                continue
            if connection in listeners:
                removed.add(channel)
            listeners.discard(connection)
            if not listeners and channel not in self._subscribing:
                del self._local[channel]
                try:
                    await self.broker.unsubscribe(channel)
                except Exception:
                    logger.warning("could not unsubscribe from %s", channel, exc_info=True)
        if removed and self.presence is not None:
            try:
                await self.presence.left(connection.member, removed)
            except Exception:
                logger.warning("could not record presence", exc_info=True)

    def listener_count(self, channel: str) -> int:
        return len(self._local.get(channel, ()))
