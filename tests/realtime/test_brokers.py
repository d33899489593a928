"""The broker backends, and the hub and connections on top of them: the same tests run on
the in-process broker and on Redis (like encode/broadcaster's test_broadcast.py).

Channel names are unique per test, so tests sharing one Redis server do not hear each other."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Callable
from urllib.parse import urlsplit, urlunsplit

import pytest
from redis import asyncio as aioredis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.config import to_async_url
from app.db import make_engine, make_sessionmaker
from realtime import log as event_log
from realtime.broker import Broker, InProcessBroker, MessageHandler, ReconnectHandler
from realtime.connection import Connection, SlowConsumer
from realtime.hub import Hub
from realtime.redis_broker import RedisBroker, channel_prefix
from tests.conftest import redis_url_or_skip

BACKENDS = ["memory", pytest.param("redis", marks=pytest.mark.redis)]


class Inbox:
    """Records what a broker delivers, and its reconnections."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, str]] = []
        self.reconnects = 0
        self._arrived = asyncio.Event()
        self._reconnected = asyncio.Event()

    def __call__(self, channel: str, message: str) -> None:
        self.messages.append((channel, message))
        self._arrived.set()

    async def on_reconnect(self) -> None:
        self.reconnects += 1
        self._reconnected.set()

    async def wait_for(self, channel: str, message: str, timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout):
            while (channel, message) not in self.messages:
                self._arrived.clear()
                await self._arrived.wait()

    async def wait_for_reconnect(self, timeout: float = 10.0) -> None:
        async with asyncio.timeout(timeout):
            await self._reconnected.wait()


class CountingBroker:
    """A real broker that also counts the hub's subscribe and unsubscribe calls."""

    def __init__(self, inner: Broker) -> None:
        self.inner = inner
        self.subscribes: list[str] = []
        self.unsubscribes: list[str] = []

    async def start(self, on_message: MessageHandler, on_reconnect: ReconnectHandler) -> None:
        await self.inner.start(on_message, on_reconnect)

    async def publish(self, channel: str, message: str) -> None:
        await self.inner.publish(channel, message)

    async def subscribe(self, channel: str) -> None:
        self.subscribes.append(channel)
        await self.inner.subscribe(channel)

    async def unsubscribe(self, channel: str) -> None:
        self.unsubscribes.append(channel)
        await self.inner.unsubscribe(channel)

    async def presence_set(self, channel: str, member: str, info: str, ttl: float) -> None:
        await self.inner.presence_set(channel, member, info, ttl)

    async def presence_remove(self, channel: str, member: str) -> None:
        await self.inner.presence_remove(channel, member)

    async def presence_list(self, channel: str) -> dict[str, str]:
        return await self.inner.presence_list(channel)

    async def close(self) -> None:
        await self.inner.close()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    if request.param == "redis":
        redis_url_or_skip()
    return str(request.param)


@pytest.fixture
async def new_broker(backend: str) -> AsyncIterator[Callable[..., Broker]]:
    """Makes brokers of the backend under test (each one stands for an app process);
    closes them all afterwards."""
    made: list[Broker] = []

    def make(url: str | None = None) -> Broker:
        broker: Broker = (
            InProcessBroker() if backend == "memory" else RedisBroker(url or redis_url_or_skip())
        )
        made.append(broker)
        return broker

    yield make
    for broker in made:
        await broker.close()


@pytest.fixture
def inbox() -> Inbox:
    return Inbox()


@pytest.fixture
async def broker(new_broker: Callable[..., Broker], inbox: Inbox) -> Broker:
    broker = new_broker()
    await broker.start(inbox, inbox.on_reconnect)
    return broker


@pytest.fixture
def name() -> Callable[[str], str]:
    prefix = f"t{uuid.uuid4().hex[:10]}"
    return lambda suffix: f"{prefix}:{suffix}"


@pytest.fixture
async def sessionmaker(database_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = make_engine(to_async_url(database_url))
    yield make_sessionmaker(engine)
    await engine.dispose()


async def store_events(
    sessionmaker: async_sessionmaker[AsyncSession], channel: str, count: int
) -> list[tuple[int, str]]:
    """Store `count` events in the channel's log, as a domain action would; returns them
    as (id, broker message)."""
    out = []
    async with sessionmaker() as db:
        for _ in range(count):
            seq = await event_log.next_id(db, channel)
            wire = json.dumps({"c": channel, "i": seq, "t": "test", "h": f"event {seq}"})
            db.add(event_log.LiveEvent(channel=channel, seq=seq, type="test", wire=wire))
            out.append((seq, f"{seq}|{wire}"))
        await db.commit()
    return out


async def received_ids(connection: Connection, count: int, timeout: float = 5.0) -> list[int]:
    """The ids of the next `count` events the connection hands to its client."""
    ids: list[int] = []
    async with asyncio.timeout(timeout):
        while len(ids) < count:
            for wire in await connection.next() or []:
                ids.append(json.loads(wire)["i"])
    return ids


async def nothing_more(connection: Connection, seconds: float = 0.3) -> list[str]:
    return await connection.next(timeout=seconds) or []


# --- the broker itself ------------------------------------------------------------------


async def test_publish_reaches_subscribers_of_that_channel_only(
    broker: Broker, inbox: Inbox, name: Callable[[str], str]
) -> None:
    room, other = name("room"), name("other")
    await broker.subscribe(room)
    await broker.publish(other, "1|not for us")
    await broker.publish(room, "1|hello")
    await inbox.wait_for(room, "1|hello")
    assert inbox.messages == [(room, "1|hello")]

    await broker.unsubscribe(room)
    await broker.subscribe(other)
    await broker.publish(room, "2|after unsubscribing")
    await broker.publish(other, "2|marker")
    await inbox.wait_for(other, "2|marker")
    assert inbox.messages == [(room, "1|hello"), (other, "2|marker")]


async def test_messages_of_a_channel_arrive_in_publishing_order(
    broker: Broker, inbox: Inbox, name: Callable[[str], str]
) -> None:
    room = name("room")
    await broker.subscribe(room)
    sent = [f"{n}|message {n}" for n in range(1, 51)]
    for message in sent:
        await broker.publish(room, message)
    await inbox.wait_for(room, sent[-1])
    assert [m for _, m in inbox.messages] == sent


@pytest.mark.parametrize("backend", [pytest.param("redis", marks=pytest.mark.redis)], indirect=True)
async def test_a_message_published_by_one_process_reaches_the_others(
    new_broker: Callable[..., Broker], name: Callable[[str], str]
) -> None:
    room = name("room")
    here, there = Inbox(), Inbox()
    publisher, listener = new_broker(), new_broker()
    await publisher.start(here, here.on_reconnect)
    await listener.start(there, there.on_reconnect)
    await listener.subscribe(room)
    await publisher.publish(room, "1|across processes")
    await there.wait_for(room, "1|across processes")
    assert here.messages == []  # the publishing process does not listen to that channel


async def test_presence_set_list_remove_and_expiry(
    new_broker: Callable[..., Broker], name: Callable[[str], str]
) -> None:
    room = name("room")
    # Two brokers: with Redis they are two processes sharing the presence list.
    first, second = new_broker(), new_broker()
    if isinstance(first, InProcessBroker):
        second = first
    assert await first.presence_list(room) == {}
    await first.presence_set(room, "1", "Priya", ttl=30)
    await second.presence_set(room, "2", "Pat", ttl=1.5)
    pat_expires = asyncio.get_running_loop().time() + 1.5
    assert await second.presence_list(room) == {"1": "Priya", "2": "Pat"}
    # Setting again updates the member rather than adding one.
    await second.presence_set(room, "1", "Priya (away)", ttl=30)
    assert await first.presence_list(room) == {"1": "Priya (away)", "2": "Pat"}
    assert await first.presence_list(name("elsewhere")) == {}

    await first.presence_remove(room, "1")
    await first.presence_remove(room, "nobody")
    assert await second.presence_list(room) == {"2": "Pat"}
    # Pat's entry was not refreshed within its time to live: it expires by itself.
    await asyncio.sleep(pat_expires - asyncio.get_running_loop().time() + 0.2)
    assert await first.presence_list(room) == {}
    assert await second.presence_list(room) == {}


async def test_refreshing_presence_keeps_a_member_listed(
    broker: Broker, name: Callable[[str], str]
) -> None:
    room = name("room")
    for _ in range(6):
        await broker.presence_set(room, "7", "Ola", ttl=1.0)
        await asyncio.sleep(0.25)
    assert await broker.presence_list(room) == {"7": "Ola"}


# --- Redis connection loss -------------------------------------------------------------


async def kill_pubsub_connection(broker: RedisBroker, url: str) -> None:
    """Close this broker's pub/sub connection from the server side, as a Redis restart,
    a failover or a proxy timeout would (only this one: other tests share the server)."""
    connection = broker._pubsub.connection
    assert connection is not None and connection._writer is not None
    host, port = connection._writer.get_extra_info("sockname")[:2]
    admin = aioredis.from_url(url)
    try:
        killed = await admin.client_kill_filter(_type="pubsub", addr=f"{host}:{port}")
    finally:
        await admin.aclose()
    assert killed == 1


@pytest.mark.parametrize("backend", [pytest.param("redis", marks=pytest.mark.redis)], indirect=True)
async def test_redis_broker_resubscribes_and_reports_after_its_connection_is_killed(
    broker: RedisBroker, inbox: Inbox, name: Callable[[str], str]
) -> None:
    url = redis_url_or_skip()
    room, other = name("room"), name("other")
    await broker.subscribe(room)
    await broker.subscribe(other)
    await broker.publish(room, "1|before")
    await inbox.wait_for(room, "1|before")

    await kill_pubsub_connection(broker, url)
    await inbox.wait_for_reconnect()
    assert inbox.reconnects == 1
    await broker.publish(room, "2|after")
    await broker.publish(other, "1|after")
    await inbox.wait_for(room, "2|after")
    await inbox.wait_for(other, "1|after")
    # Still one subscription per channel.
    admin = aioredis.from_url(url, decode_responses=True)
    prefix = channel_prefix(url)
    try:
        counts = dict(await admin.pubsub_numsub(prefix + room, prefix + other))
    finally:
        await admin.aclose()
    assert counts == {prefix + room: 1, prefix + other: 1}


class CuttableProxy:
    """A TCP proxy in front of Redis that can be cut off (connections dropped, new ones
    refused) and restored, to play a Redis server that is unreachable for a while."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    async def open(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()
        for writer in tuple(self._writers):
            writer.transport.abort()
        for task in tuple(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        self._writers.update((writer, up_writer))

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError, asyncio.CancelledError):
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            sink.transport.abort()

        for task in (
            asyncio.create_task(pipe(reader, up_writer)),
            asyncio.create_task(pipe(up_reader, writer)),
        ):
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)


@pytest.mark.parametrize("backend", [pytest.param("redis", marks=pytest.mark.redis)], indirect=True)
async def test_redis_broker_recovers_after_redis_is_unreachable_for_a_while(
    new_broker: Callable[..., Broker], name: Callable[[str], str]
) -> None:
    url = redis_url_or_skip()
    target = urlsplit(url)
    proxy = CuttableProxy(target.hostname or "127.0.0.1", target.port or 6379)
    await proxy.open()
    room = name("room")
    inbox, publisher_inbox = Inbox(), Inbox()
    listener = new_broker(target._replace(netloc=f"127.0.0.1:{proxy.port}").geturl())
    publisher = new_broker(url)
    await listener.start(inbox, inbox.on_reconnect)
    await publisher.start(publisher_inbox, publisher_inbox.on_reconnect)
    await listener.subscribe(room)
    await publisher.publish(room, "1|before")
    await inbox.wait_for(room, "1|before")

    await proxy.cut()
    await asyncio.sleep(1.5)  # several reconnection attempts fail meanwhile
    await publisher.publish(room, "2|while unreachable")
    await proxy.open()
    await inbox.wait_for_reconnect(timeout=15)
    await publisher.publish(room, "3|after")
    await inbox.wait_for(room, "3|after")
    assert (room, "2|while unreachable") not in inbox.messages  # hence the catch-up signal
    await listener.close()
    await proxy.cut()


# --- the hub and connections, on each backend -----------------------------------------


@pytest.fixture
async def counting_hub(
    new_broker: Callable[..., Broker], sessionmaker: async_sessionmaker[AsyncSession]
) -> AsyncIterator[Hub]:
    hub = Hub(CountingBroker(new_broker()), sessionmaker)
    await hub.start()
    yield hub


async def server_subscriptions(channel: str) -> int | None:
    """How many subscriptions Redis has on the channel (None without Redis)."""
    url = redis_url_or_skip()
    admin = aioredis.from_url(url, decode_responses=True)
    try:
        prefix = channel_prefix(url)
        return int(dict(await admin.pubsub_numsub(prefix + channel))[prefix + channel])
    finally:
        await admin.aclose()


async def test_a_process_subscribes_to_a_channel_once_however_many_clients_follow_it(
    counting_hub: Hub, backend: str, name: Callable[[str], str]
) -> None:
    counting = counting_hub.broker
    assert isinstance(counting, CountingBroker)
    room, other = name("room"), name("other")
    first = Connection(counting_hub, member="1")
    second = Connection(counting_hub, member="2")
    third = Connection(counting_hub, member="3")
    # Two clients arriving at the same moment, then a third.
    await asyncio.gather(first.follow({room: None}), second.follow({room: None, other: None}))
    await third.follow({room: None})
    assert sorted(counting.subscribes) == sorted([room, other])
    if backend == "redis":
        assert await server_subscriptions(room) == 1

    await counting.publish(room, '1|{"i":1}')
    for connection in (first, second, third):
        assert await received_ids(connection, 1) == [1]

    await first.close()
    await third.close()
    assert counting.unsubscribes == []
    await second.close()
    assert sorted(counting.unsubscribes) == sorted([room, other])
    assert counting_hub.listener_count(room) == 0
    if backend == "redis":
        assert await server_subscriptions(room) == 0

    # Following again subscribes again.
    again = Connection(counting_hub, member="1")
    await again.follow({room: None})
    assert counting.subscribes.count(room) == 2
    await again.close()


async def test_changing_channels_subscribes_and_unsubscribes_the_difference(
    counting_hub: Hub, name: Callable[[str], str]
) -> None:
    counting = counting_hub.broker
    assert isinstance(counting, CountingBroker)
    plenary, room = name("plenary"), name("room")
    connection = Connection(counting_hub, member="1")
    await connection.follow({plenary: None})
    await connection.follow({room: None})  # moved to a breakout room
    assert counting.subscribes == [plenary, room]
    assert counting.unsubscribes == [plenary]
    await counting.publish(plenary, '1|{"i":1}')
    await counting.publish(room, '1|{"i":1,"c":"room"}')
    assert await received_ids(connection, 1) == [1]
    assert await nothing_more(connection) == []
    await connection.close()
    assert counting.unsubscribes == [plenary, room]


@pytest.fixture
async def hub(
    new_broker: Callable[..., Broker], sessionmaker: async_sessionmaker[AsyncSession]
) -> Hub:
    hub = Hub(new_broker(), sessionmaker)
    await hub.start()
    return hub


async def test_a_slow_consumer_is_dropped_without_affecting_the_others(
    hub: Hub, name: Callable[[str], str]
) -> None:
    room = name("room")
    slow = Connection(hub, member="slow", queue_size=4)
    fast = Connection(hub, member="fast")
    await slow.follow({room: 0})
    await fast.follow({room: 0})
    events = await store_events(hub.sessionmaker, room, 10)
    for _seq, message in events:
        await hub.broker.publish(room, message)
    # The fast client reads everything, in order, while the slow one reads nothing.
    assert await received_ids(fast, 10) == list(range(1, 11))
    with pytest.raises(SlowConsumer):
        await slow.next(timeout=1)
    await slow.close()
    assert hub.listener_count(room) == 1

    more = await store_events(hub.sessionmaker, room, 3)
    for _seq, message in more:
        await hub.broker.publish(room, message)
    assert await received_ids(fast, 3) == [11, 12, 13]
    # The dropped client reconnects with its cursor and gets exactly what it missed.
    back = Connection(hub, member="slow")
    backlog = await back.follow({room: 0})
    assert [json.loads(w)["i"] for w in backlog] == list(range(1, 14))
    await back.close()
    await fast.close()


async def test_a_missed_event_is_filled_from_the_log_in_order(
    hub: Hub, name: Callable[[str], str]
) -> None:
    room = name("room")
    connection = Connection(hub, member="1")
    await connection.follow({room: 0})
    events = await store_events(hub.sessionmaker, room, 5)
    # Events 3 and 4 never reach this process (lost on the way); 5 reveals the gap.
    for seq, message in events:
        if seq not in (3, 4):
            await hub.broker.publish(room, message)
    assert await received_ids(connection, 5) == [1, 2, 3, 4, 5]
    assert await nothing_more(connection) == []
    await connection.close()


async def test_events_published_out_of_order_reach_the_client_in_order_once(
    hub: Hub, name: Callable[[str], str]
) -> None:
    room = name("room")
    connection = Connection(hub, member="1")
    await connection.follow({room: 0})
    events = dict(await store_events(hub.sessionmaker, room, 4))
    # Two transactions committed 1 then 2, but 2 was published first; then 4 before 3.
    for seq in (2, 1, 4, 3):
        await hub.broker.publish(room, events[seq])
    assert await received_ids(connection, 4) == [1, 2, 3, 4]
    assert await nothing_more(connection) == []
    await connection.close()


async def test_an_event_at_or_below_the_cursor_is_not_sent_again(
    hub: Hub, name: Callable[[str], str]
) -> None:
    room = name("room")
    events = dict(await store_events(hub.sessionmaker, room, 3))
    connection = Connection(hub, member="1")
    backlog = await connection.follow({room: 1})
    assert [json.loads(w)["i"] for w in backlog] == [2, 3]
    for seq in (1, 2, 3):
        await hub.broker.publish(room, events[seq])
    assert await nothing_more(connection) == []
    await connection.close()


async def test_after_a_broker_reconnect_connections_catch_up_from_the_log(
    hub: Hub, backend: str, name: Callable[[str], str]
) -> None:
    """Events published while the broker was reconnecting are never delivered by it; the
    reconnect signal makes every connection fetch them, with no later event needed."""
    room = name("room")
    connection = Connection(hub, member="1")
    await connection.follow({room: 0})
    first = await store_events(hub.sessionmaker, room, 1)
    await hub.broker.publish(room, first[0][1])
    assert await received_ids(connection, 1) == [1]

    if backend == "redis":
        assert isinstance(hub.broker, RedisBroker)
        await kill_pubsub_connection(hub.broker, redis_url_or_skip())
        missed = await store_events(hub.sessionmaker, room, 2)
        for _seq, message in missed:
            await hub.broker.publish(room, message)  # most likely nobody hears these
    else:
        await store_events(hub.sessionmaker, room, 2)  # stored, never published
        await hub._caught_up_after_reconnect()
    assert await received_ids(connection, 2, timeout=10) == [2, 3]
    assert await nothing_more(connection) == []
    await connection.close()


def in_database(url: str, database: int) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{database}"))


@pytest.mark.redis
async def test_deployments_in_different_redis_databases_do_not_hear_each_other(
    name: Callable[[str], str],
) -> None:
    # Pub/sub ignores the database number; the channel prefix carries it instead.
    url = redis_url_or_skip()
    database = int(urlsplit(url).path.strip("/") or 0)
    room = name("room")
    ours_inbox, theirs_inbox = Inbox(), Inbox()
    ours = RedisBroker(in_database(url, database))
    theirs = RedisBroker(in_database(url, (database + 1) % 16))
    try:
        await ours.start(ours_inbox, ours_inbox.on_reconnect)
        await theirs.start(theirs_inbox, theirs_inbox.on_reconnect)
        await ours.subscribe(room)
        await theirs.subscribe(room)
        await ours.publish(room, "1|ours")
        await ours_inbox.wait_for(room, "1|ours")
        await theirs.publish(room, "1|theirs")
        await theirs_inbox.wait_for(room, "1|theirs")
        assert ours_inbox.messages == [(room, "1|ours")]
        assert theirs_inbox.messages == [(room, "1|theirs")]
    finally:
        await ours.close()
        await theirs.close()
