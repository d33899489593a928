"""The Redis broker: pub/sub between app processes, presence in Redis hashes."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time

from redis import asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from realtime.broker import MessageHandler, ReconnectHandler

log = logging.getLogger(__name__)

PREFIX = "rt:"
PRESENCE_PREFIX = "rt:presence:"


class RedisBroker:
    def __init__(self, url: str) -> None:
        self._url = url
        self._redis = aioredis.from_url(url, decode_responses=True, health_check_interval=30)
        self._pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
        self._channels: set[str] = set()
        self._reader: asyncio.Task[None] | None = None
        self._on_message: MessageHandler | None = None
        self._on_reconnect: ReconnectHandler | None = None
        # A channel of our own, so the pub/sub connection exists before any client joins.
        self._own = f"{PREFIX}process:{os.getpid()}:{id(self)}"

    async def start(self, on_message: MessageHandler, on_reconnect: ReconnectHandler) -> None:
        self._on_message = on_message
        self._on_reconnect = on_reconnect
        await self._pubsub.subscribe(self._own)
        self._reader = asyncio.create_task(self._read(), name="redis-broker-reader")

    async def _read(self) -> None:
        backoff = 0.2
        while True:
            try:
                message = await self._pubsub.get_message(timeout=1.0)
                backoff = 0.2
                if message is None or message.get("type") != "message":
                    continue
                channel = str(message["channel"]).removeprefix(PREFIX)
                if self._on_message is not None:
                    self._on_message(channel, str(message["data"]))
            except asyncio.CancelledError:
                raise
            except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
                log.warning("lost the Redis pub/sub connection (%s); reconnecting", exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                with contextlib.suppress(RedisConnectionError, RedisTimeoutError, OSError):
                    await self._resubscribe()
                    if self._on_reconnect is not None:
                        await self._on_reconnect()

    async def _resubscribe(self) -> None:
        await self._pubsub.reset()
        self._pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
        await self._pubsub.subscribe(self._own, *(PREFIX + c for c in self._channels))

    async def publish(self, channel: str, message: str) -> None:
        await self._redis.publish(PREFIX + channel, message)

    async def subscribe(self, channel: str) -> None:
        if channel not in self._channels:
            self._channels.add(channel)
            await self._pubsub.subscribe(PREFIX + channel)

    async def unsubscribe(self, channel: str) -> None:
        if channel in self._channels:
            self._channels.discard(channel)
            await self._pubsub.unsubscribe(PREFIX + channel)

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
