"""Database engine, sessions and the declarative base; how big the pools are, and which
database errors mean "too busy right now" rather than a bug (docs/capacity.md)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar

from sqlalchemy import create_engine, event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import Session, sessionmaker

# The base, UTC column type and clock live in the shared foundation (realtime/db.py).
from realtime.db import Base as Base
from realtime.db import UTCDateTime as UTCDateTime
from realtime.db import utcnow as utcnow


@dataclass(frozen=True)
class PoolSizes:
    """How many connections a process keeps, and how long a request waits for one.

    Every request holds one pooled connection from its first query to its end (the
    fallback streams and the chat writer's callers give theirs back before they wait), so
    `size + overflow` is how many requests can use the database at once; the one event loop
    of a process, not the connections, is what limits them beyond about twenty. A request
    that finds none free within `timeout` seconds is refused with 503 and Retry-After
    rather than queued for long."""

    size: int = 10
    overflow: int = 10
    timeout: float = 5.0


# SQLite's busy timeout: how long a write waits for another connection's write to end.
SQLITE_BUSY_SECONDS = 5.0
# What a refused request is told to wait before trying again (Retry-After).
RETRY_AFTER_SECONDS = 2


def make_engine(
    url: str,
    pool: PoolSizes | None = None,
    *,
    sqlite_busy_seconds: float = SQLITE_BUSY_SECONDS,
) -> AsyncEngine:
    pool = pool or PoolSizes()
    sizes = {"pool_size": pool.size, "max_overflow": pool.overflow, "pool_timeout": pool.timeout}
    if url.startswith("sqlite"):
        # WAL: readers never wait for the writer, nor the writer for readers; writers take
        # turns, each waiting at most the busy timeout for the one before.
        engine = create_async_engine(url, connect_args={"timeout": sqlite_busy_seconds}, **sizes)

        _set_sqlite_pragmas(engine.sync_engine)
        return engine
    return create_async_engine(url, pool_pre_ping=True, **sizes)


def _set_sqlite_pragmas(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _sqlite_pragmas(dbapi_connection, _record):  # type: ignore[no-untyped-def]
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()


def make_writer_engine(
    url: str, *, sqlite_busy_seconds: float = SQLITE_BUSY_SECONDS
) -> AsyncEngine:
    """One connection of its own for the chat writer's batches: it never waits behind the
    requests (which wait for it), and on SQLite the batches are written by one connection,
    as SQLite writes anyway."""
    return make_engine(
        url, PoolSizes(size=1, overflow=0, timeout=30.0), sqlite_busy_seconds=sqlite_busy_seconds
    )


logger = logging.getLogger(__name__)

T = TypeVar("T")


class BatchRunner(Protocol):
    """Runs synchronous database code (given a session) in one go: the chat writer's
    batches, so that a batch is one hop to the database's side, not several per statement."""

    async def run(self, work: Callable[[Session], T]) -> T: ...

    async def close(self) -> None: ...


class LoopRunner:
    """SQLite: the batch on the event loop itself, on a plain `sqlite3` connection of its
    own. A batch is a few statements on a local file in WAL mode (tens to hundreds of
    microseconds each, no fsync at commit with `synchronous = NORMAL`), cheaper than any
    hand-over: aiosqlite took three or four hops to its thread per statement, and a thread
    of the writer's own still had to win the GIL back from the busy loop after every
    statement (up to the 5 ms switch interval each time; with captions being recognized,
    a message's answer took 33 ms at p50 that way, 18.5 ms on the loop).

    The connection never waits inside SQLite for another connection's write lock (busy
    timeout 0): the loop would stand still. The batch is tried again after
    LOCK_POLL_SECONDS, growing to LOCK_POLL_MAX_SECONDS, until the busy timeout has passed,
    the loop serving everyone else meanwhile. (SQLite's own busy handler sleeps 1, 2, 5,
    10, 15, 20, 25, 25, 25, 50, 50, 100 ms between its tries, so a batch that met a lock
    held a little while was written up to 100 ms after it was free.)"""

    LOCK_POLL_SECONDS = 0.0005
    LOCK_POLL_MAX_SECONDS = 0.004
    # The write-ahead log is copied into the database (a checkpoint, with an fsync: 20 to
    # 30 ms for the 4 MB SQLite lets grow by default) in a thread, at most this often; the
    # writer's own connection never does it on the loop (`wal_autocheckpoint = 0`).
    CHECKPOINT_EVERY_SECONDS = 5.0

    def __init__(self, url: str, *, sqlite_busy_seconds: float = SQLITE_BUSY_SECONDS) -> None:
        sync_url = make_url(url).set(drivername="sqlite")
        self._busy_seconds = sqlite_busy_seconds
        self._engine = create_engine(
            sync_url,
            connect_args={"timeout": 0, "check_same_thread": False},
            pool_size=1,
            max_overflow=0,
            pool_timeout=30.0,
        )
        _set_sqlite_pragmas(self._engine)

        @event.listens_for(self._engine, "connect")
        def _no_checkpoint_here(dbapi_connection, _record):  # type: ignore[no-untyped-def]
            dbapi_connection.execute("PRAGMA wal_autocheckpoint=0")

        self._sessions = sessionmaker(self._engine, expire_on_commit=False)
        self._database = sync_url.database or ""
        self._checkpointed_at = time.monotonic()
        self._checkpoint: asyncio.Task[None] | None = None

    async def run(self, work: Callable[[Session], T]) -> T:
        deadline = time.monotonic() + self._busy_seconds
        pause = self.LOCK_POLL_SECONDS
        while True:
            try:
                with self._sessions() as session:
                    done = work(session)
                self._checkpoint_soon()
                return done
            except sa_exc.OperationalError as exc:
                if not is_overloaded(exc) or time.monotonic() + pause > deadline:
                    raise
            await asyncio.sleep(pause)
            pause = min(pause * 2, self.LOCK_POLL_MAX_SECONDS)

    def _checkpoint_soon(self) -> None:
        now = time.monotonic()
        if now - self._checkpointed_at < self.CHECKPOINT_EVERY_SECONDS or self._checkpoint:
            return
        self._checkpointed_at = now
        self._checkpoint = asyncio.get_running_loop().create_task(
            asyncio.to_thread(checkpoint_sqlite, self._database)
        )
        self._checkpoint.add_done_callback(self._checkpointed)

    def _checkpointed(self, task: asyncio.Task[None]) -> None:
        self._checkpoint = None
        if not task.cancelled() and task.exception() is not None:
            logger.warning("checkpointing the database failed: %s", task.exception())

    async def close(self) -> None:
        if self._checkpoint is not None:
            await asyncio.gather(self._checkpoint, return_exceptions=True)
        self._engine.dispose()


def checkpoint_sqlite(path: str) -> None:
    """Copy SQLite's write-ahead log into the database, without waiting for anyone
    (PASSIVE: what readers still need stays in the log for a later checkpoint)."""
    with contextlib.closing(sqlite3.connect(path, timeout=1)) as db:
        db.execute("PRAGMA wal_checkpoint(PASSIVE)")


class SessionRunner:
    """PostgreSQL (asyncpg has no thread to hop to): the same synchronous code through
    `AsyncSession.run_sync`, on an async engine of its own."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._sessions = make_sessionmaker(engine)

    async def run(self, work: Callable[[Session], T]) -> T:
        async with self._sessions() as session:
            return await session.run_sync(work)

    async def close(self) -> None:
        await self._engine.dispose()


def make_writer_runner(
    url: str, *, sqlite_busy_seconds: float = SQLITE_BUSY_SECONDS
) -> BatchRunner:
    """The chat writer's connection of its own (see `make_writer_engine`), as a runner."""
    if url.startswith("sqlite"):
        return LoopRunner(url, sqlite_busy_seconds=sqlite_busy_seconds)
    return SessionRunner(make_writer_engine(url, sqlite_busy_seconds=sqlite_busy_seconds))


# SQLSTATEs that mean PostgreSQL is too busy: too many connections, out of memory for one,
# a lock or statement that waited too long, a server starting or stopping, and a
# serialization failure or deadlock (the transaction can simply be tried again).
_BUSY_SQLSTATES = frozenset({"53300", "53200", "55P03", "57014", "57P03", "40001", "40P01"})
_SQLITE_BUSY = ("database is locked", "database table is locked", "database is busy")


def is_overloaded(exc: BaseException) -> bool:
    """Whether a database error means "too busy right now, try again shortly" (no free
    connection in time, SQLite's write lock held past the busy timeout, PostgreSQL out of
    connections...) rather than a fault to log and fix."""
    if isinstance(exc, sa_exc.TimeoutError):
        return True
    if not isinstance(exc, sa_exc.OperationalError):
        return False
    original = exc.orig
    if getattr(original, "sqlstate", None) in _BUSY_SQLSTATES:
        return True
    text = str(original).lower()
    return any(marker in text for marker in _SQLITE_BUSY)


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


async def session_scope(maker: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    async with maker() as session:
        yield session
