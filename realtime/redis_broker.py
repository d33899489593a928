"""The Redis broker: pub/sub between app processes, presence in Redis hashes."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from typing import Any
from urllib.parse import urlsplit

from redis import asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from realtime.broker import MessageHandler, ReconnectHandler

log = logging.getLogger(__name__)

PREFIX = "rt:"
PRESENCE_PREFIX = "rt:presence:"


def channel_prefix(url: str) -> str:
    """The prefix of this deployment's pub/sub channels. Keys live in the URL's database,
    but pub/sub ignores the database number: deployments that share a Redis server through
    different databases (/0, /1 …) would hear each other's events without it."""
    database = urlsplit(url).path.strip("/") or "0"
    return PREFIX if database == "0" else f"{PREFIX}{database}:"


# How long to wait for Redis to confirm a subscription before going on without it.
CONFIRM_SECONDS = 5.0
_CONNECTION_ERRORS = (RedisConnectionError, RedisTimeoutError, OSError)


class RedisBroker:
    def __init__(self, url: str) -> None:
        self._url = url
        self.prefix = channel_prefix(url)
        self._redis = aioredis.from_url(url, decode_responses=True, health_check_interval=30)
        self._pubsub = self._redis.pubsub()
        self._channels: set[str] = set()
        # Subscriptions sent but not yet confirmed by Redis, by Redis channel name.
        self._confirming: dict[str, asyncio.Future[None]] = {}
        self._reader: asyncio.Task[None] | None = None
        self._on_message: MessageHandler | None = None
        self._on_reconnect: ReconnectHandler | None = None
        # A channel of our own, so the pub/sub connection exists before any client joins.
        self._own = f"{self.prefix}process:{os.getpid()}:{id(self)}"

    async def start(self, on_message: MessageHandler, on_reconnect: ReconnectHandler) -> None:
        self._on_message = on_message
        self._on_reconnect = on_reconnect
        await self._pubsub.subscribe(self._own)
        self._reader = asyncio.create_task(self._read(), name="redis-broker-reader")

    async def _read(self) -> None:
        while True:
            try:
                message = await self._pubsub.get_message(timeout=1.0)
            except asyncio.CancelledError:
                raise
            except _CONNECTION_ERRORS as exc:
                log.warning("lost the Redis pub/sub connection (%s); reconnecting", exc)
                await self._reconnect()
                continue
            self._handle(message)

    def _handle(self, message: dict[str, Any] | None) -> None:
        if message is None:
            return
        if message.get("type") == "subscribe":
            waiter = self._confirming.get(str(message["channel"]))
            if waiter is not None and not waiter.done():
                waiter.set_result(None)
            return
        if message.get("type") != "message" or self._on_message is None:
            return
        channel = str(message["channel"]).removeprefix(self.prefix)
        try:
            self._on_message(channel, str(message["data"]))
        except Exception:
            # One bad message must not end the reader (and all delivery with it).
            log.exception("could not dispatch a message on %s", channel)

    async def _reconnect(self) -> None:
        """Retry until Redis answers, then resubscribe every channel and tell the hub:
        whatever was published meanwhile was missed, and is in the event log."""
        backoff = 0.2
        while True:
            await asyncio.sleep(backoff)
            try:
                await self._resubscribe()
                break
            except (*_CONNECTION_ERRORS, TimeoutError) as exc:
                log.warning("Redis is still unreachable (%s); retrying", str(exc) or "no answer")
                backoff = min(backoff * 2, 5.0)
        if self._on_reconnect is not None:
            try:
                await self._on_reconnect()
            except Exception:
                log.exception("catching up after a Redis reconnect failed")

    async def _resubscribe(self) -> None:
        """A fresh pub/sub connection with every channel, confirmed: the hub catches up
        from the log next, and must not miss what is published after that."""
        with contextlib.suppress(*_CONNECTION_ERRORS):
            await self._pubsub.aclose()
        self._pubsub = self._redis.pubsub()
        names = {self._own, *(self.prefix + c for c in self._channels)}
        await self._pubsub.subscribe(*names)
        # The reader is here, not reading: read the confirmations (and anything else) now.
        async with asyncio.timeout(CONFIRM_SECONDS):
            while names:
                message = await self._pubsub.get_message(timeout=CONFIRM_SECONDS)
                if message is not None and message.get("type") == "subscribe":
                    names.discard(str(message["channel"]))
                self._handle(message)

    async def publish(self, channel: str, message: str) -> None:
        await self._redis.publish(self.prefix + channel, message)

    async def subscribe(self, channel: str) -> None:
        """Returns once Redis has confirmed the subscription, so that what the caller reads
        from the log next and what arrives from here on leave nothing between them."""
        if channel in self._channels:
            return
        self._channels.add(channel)
        name = self.prefix + channel
        waiter = self._confirming[name] = asyncio.get_running_loop().create_future()
        try:
            await self._pubsub.subscribe(name)
            await asyncio.wait_for(asyncio.shield(waiter), CONFIRM_SECONDS)
        except (*_CONNECTION_ERRORS, TimeoutError):
            # Redis is unreachable: the reader subscribes every channel in self._channels
            # once it is back, and the hub then catches up from the log.
            log.warning("subscribing to %s is not confirmed yet", channel)
        finally:
            if self._confirming.get(name) is waiter:
                del self._confirming[name]

    async def unsubscribe(self, channel: str) -> None:
        if channel in self._channels:
            self._channels.discard(channel)
            with contextlib.suppress(*_CONNECTION_ERRORS):
                await self._pubsub.unsubscribe(self.prefix + channel)

    async def presence_set(self, channel: str, member: str, info: str, ttl: float) -> None:
        key = PRESENCE_PREFIX + channel
        value = json.dumps({"info": info, "exp": time.time() + ttl})
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.hset(key, member, value)
            pipe.expire(key, int(ttl) + 60)
            await pipe.execute()

    async def presence_remove(self, channel: str, member: str) -> None:
        await self._redis.hdel(PRESENCE_PREFIX + channel, member)

    async def presence_list(self, channel: str) -> dict[str, str]:
        key = PRESENCE_PREFIX + channel
        now = time.time()
        out: dict[str, str] = {}
        stale = []
        for member, raw in (await self._redis.hgetall(key)).items():
            try:
                entry = json.loads(raw)
                if float(entry["exp"]) > now:
                    out[member] = str(entry["info"])
                    continue
            except (ValueError, KeyError, TypeError):
                pass
            stale.append(member)
        if stale:
            await self._redis.hdel(key, *stale)
        return out

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
        with contextlib.suppress(Exception):
            await self._pubsub.aclose()
        await self._redis.aclose()
