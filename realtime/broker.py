"""Broker backends: carry published events to every process that has subscribers, and keep
presence (who is connected where) visible to all processes.

Each process subscribes to a channel once, however many of its clients listen to it; the
hub fans out locally. The in-process broker serves one process; the Redis broker lets
several processes behind a load balancer share one live session."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Protocol

# Called with (channel, message) for every message on a subscribed channel.
MessageHandler = Callable[[str, str], None]
# Called after the broker lost and regained its connection: messages may have been missed.
ReconnectHandler = Callable[[], Awaitable[None]]


class Broker(Protocol):
    async def start(self, on_message: MessageHandler, on_reconnect: ReconnectHandler) -> None: ...

    async def publish(self, channel: str, message: str) -> None: ...

    async def subscribe(self, channel: str) -> None: ...

    async def unsubscribe(self, channel: str) -> None: ...

    async def presence_set(self, channel: str, member: str, info: str, ttl: float) -> None: ...

    async def presence_remove(self, channel: str, member: str) -> None: ...

    async def presence_list(self, channel: str) -> dict[str, str]: ...

    async def close(self) -> None: ...


class InProcessBroker:
    """Everything in this process's memory."""

    def __init__(self) -> None:
        self._subscribed: set[str] = set()
        self._on_message: MessageHandler | None = None
        # channel -> member -> (info, expires at)
        self._presence: dict[str, dict[str, tuple[str, float]]] = {}

    async def start(self, on_message: MessageHandler, on_reconnect: ReconnectHandler) -> None:
        self._on_message = on_message

    async def publish(self, channel: str, message: str) -> None:
        if channel in self._subscribed and self._on_message is not None:
            self._on_message(channel, message)

    async def subscribe(self, channel: str) -> None:
        self._subscribed.add(channel)

    async def unsubscribe(self, channel: str) -> None:
        self._subscribed.discard(channel)

    async def presence_set(self, channel: str, member: str, info: str, ttl: float) -> None:
        self._presence.setdefault(channel, {})[member] = (info, time.monotonic() + ttl)

    async def presence_remove(self, channel: str, member: str) -> None:
        members = self._presence.get(channel)
        if members is not None:
            members.pop(member, None)
            if not members:
                del self._presence[channel]

    async def presence_list(self, channel: str) -> dict[str, str]:
        now = time.monotonic()
        members = self._presence.get(channel, {})
        for member in [m for m, (_, exp) in members.items() if exp <= now]:
            del members[member]
        return {m: info for m, (info, _) in members.items()}

    async def close(self) -> None:
        self._subscribed.clear()
        self._presence.clear()


def make_broker(redis_url: str | None) -> Broker:
    if redis_url:
        from realtime.redis_broker import RedisBroker

        return RedisBroker(redis_url)
    return InProcessBroker()
