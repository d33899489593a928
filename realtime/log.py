"""The event log: events that matter later are stored, with an id that only increases
within their channel, before they are fanned out.

Ids are contiguous per channel (1, 2, 3, ...), which lets a connection notice a missed
event from the next id it sees and fetch the gap from here."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from sqlalchemy import (
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
    select,
    text,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, Session, mapped_column

from realtime.db import Base, UTCDateTime, utcnow

# How far back a reconnecting client may resume; older cursors get a resync.
MAX_REPLAY = 500


class ChannelCounter(Base):
    __tablename__ = "live_channel_counters"

    channel: Mapped[str] = mapped_column(String(100), primary_key=True)
    last_id: Mapped[int] = mapped_column(Integer, default=0)


class LiveEvent(Base):
    __tablename__ = "live_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    channel: Mapped[str] = mapped_column(String(100))
    seq: Mapped[int] = mapped_column(Integer)
    type: Mapped[str] = mapped_column(String(40))
    # The event as it goes on the wire (JSON with its server-rendered fragment).
    wire: Mapped[str] = mapped_column(Text)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    __table_args__ = (
        UniqueConstraint("channel", "seq"),
        Index("ix_live_events_channel_created", "channel", "created_at"),
    )


async def next_id(db: AsyncSession, channel: str) -> int:
    """Allocate the channel's next id inside the caller's transaction."""
    return await reserve_ids(db, channel, 1)


# Adds `count` to a channel's counter (made at `count`) and returns it. Written out: the
# upsert construct is not cached by SQLAlchemy (no cache key), so built with it the
# statement was compiled again at every execution; this text is the same for SQLite and
# PostgreSQL, and is compiled once.
RESERVE_IDS = text(
    "INSERT INTO live_channel_counters (channel, last_id) VALUES (:channel, :count) "
    "ON CONFLICT (channel) DO UPDATE "
    "SET last_id = live_channel_counters.last_id + excluded.last_id "
    "RETURNING last_id"
)


async def reserve_ids(db: AsyncSession, channel: str, count: int) -> int:
    """Allocate `count` consecutive ids of the channel inside the caller's transaction;
    returns the first.

    The counter row stays locked until that transaction ends, so ids commit in order."""
    last = int((await db.execute(RESERVE_IDS, {"channel": channel, "count": count})).scalar_one())
    return last - count + 1


async def reserve_ids_many(db: AsyncSession, counts: Mapping[str, int]) -> dict[str, int]:
    """`reserve_ids` for several channels at once; returns each one's first id."""
    return await db.run_sync(reserve_ids_many_sync, counts)


def reserve_ids_many_sync(db: Session, counts: Mapping[str, int]) -> dict[str, int]:
    """`reserve_ids_many` in a synchronous session (one driven in one go): one statement
    per channel, the same statement each time, so it is compiled once (a multi-row upsert
    would be compiled anew for every number of channels).

    Channels are taken in name order, so two transactions reserving some of the same
    channels lock their counter rows in the same order (PostgreSQL) and never deadlock."""
    if not counts:
        return {}
    connection = db.connection()
    firsts = {}
    for channel in sorted(counts):
        count = counts[channel]
        last = connection.execute(RESERVE_IDS, {"channel": channel, "count": count}).scalar_one()
        firsts[channel] = int(last) - count + 1
    return firsts


async def head(db: AsyncSession, channel: str) -> int:
    value = await db.scalar(select(ChannelCounter.last_id).where(ChannelCounter.channel == channel))
    return int(value or 0)


async def heads(db: AsyncSession, channels: Sequence[str]) -> dict[str, int]:
    rows = await db.execute(
        select(ChannelCounter.channel, ChannelCounter.last_id).where(
            ChannelCounter.channel.in_(list(channels))
        )
    )
    found = dict(rows.tuples().all())
    return {c: int(found.get(c, 0)) for c in channels}


async def since(
    db: AsyncSession, channel: str, after: int, *, limit: int = MAX_REPLAY
) -> list[tuple[int, str]]:
    """Committed events of `channel` with ids above `after`, in order, as (id, wire)."""
    rows = await db.execute(
        select(LiveEvent.seq, LiveEvent.wire)
        .where(LiveEvent.channel == channel, LiveEvent.seq > after)
        .order_by(LiveEvent.seq)
        .limit(limit)
    )
    return [(int(seq), wire) for seq, wire in rows.tuples().all()]


async def count(db: AsyncSession, channel: str) -> int:
    return int(await db.scalar(select(func.count()).where(LiveEvent.channel == channel)) or 0)
