"""Broker backends: deliver published events to every subscriber of a channel.

The in-process broker serves one app process; a Redis broker (for several
processes behind a load balancer) implements the same interface.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Protocol


class Broker(Protocol):
    async def publish(self, channel: str, payload: str) -> None: ...

    def subscribe(self, channel: str, queue: asyncio.Queue[str]) -> None: ...

    def unsubscribe(self, channel: str, queue: asyncio.Queue[str]) -> None: ...

    async def close(self) -> None: ...


class InProcessBroker:
    """Fan-out inside one process, with a bounded queue per subscriber."""

    def __init__(self) -> None:
        self._subscribers: dict[str, set[asyncio.Queue[str]]] = defaultdict(set)
        self.dropped = 0

    async def publish(self, channel: str, payload: str) -> None:
        for queue in list(self._subscribers.get(channel, ())):
            try:
                queue.put_nowait(payload)
            except asyncio.QueueFull:
                # A subscriber that cannot keep up is not allowed to grow memory;
                # its consumer notices the gap and resyncs.
                self.dropped += 1

    def subscribe(self, channel: str, queue: asyncio.Queue[str]) -> None:
        self._subscribers[channel].add(queue)

    def unsubscribe(self, channel: str, queue: asyncio.Queue[str]) -> None:
        subscribers = self._subscribers.get(channel)
        if subscribers is not None:
            subscribers.discard(queue)
            if not subscribers:
                del self._subscribers[channel]

    def subscriber_count(self, channel: str) -> int:
        return len(self._subscribers.get(channel, ()))

    async def close(self) -> None:
        self._subscribers.clear()


def make_broker(redis_url: str | None) -> Broker:
    if redis_url:
        # TODO: the Redis pub/sub backend arrives with scale-out; until then one
        # process serves a session.
        raise RuntimeError("REDIS_URL is set but the Redis broker is not available yet")
    return InProcessBroker()
