"""Database engine, sessions and the declarative base; how big the pools are, and which
database errors mean "too busy right now" rather than a bug (docs/capacity.md)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

from sqlalchemy import event
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

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

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record):  # type: ignore[no-untyped-def]
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        return engine
    return create_async_engine(url, pool_pre_ping=True, **sizes)


def make_writer_engine(
    url: str, *, sqlite_busy_seconds: float = SQLITE_BUSY_SECONDS
) -> AsyncEngine:
    """One connection of its own for the chat writer's batches: it never waits behind the
    requests (which wait for it), and on SQLite the batches are written by one connection,
    as SQLite writes anyway."""
    return make_engine(
        url, PoolSizes(size=1, overflow=0, timeout=30.0), sqlite_busy_seconds=sqlite_busy_seconds
    )


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
