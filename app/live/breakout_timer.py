"""The countdown of breakout rooms: a small loop, started in the app's lifespan, that
warns the rooms when their time is nearly up and closes them when the warning has run out.

Every process runs one; the conditional UPDATEs in app/live/breakouts.py make sure only
one of them warns or closes a breakout."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db import utcnow
from app.live.breakouts import WARNING_SECONDS, announce_closing, finish, update_open
from app.live.models import Breakout
from app.models import Programme, ProgrammeSession
from realtime.publish import Live

logger = logging.getLogger(__name__)

# If the server was away when time ran out, people still get this much notice.
LATE_WARNING_SECONDS = 15
CLOSER_INTERVAL_SECONDS = 1.0


async def close_due(
    sessionmaker: async_sessionmaker[AsyncSession], live: Live, *, now: datetime | None = None
) -> int:
    """Warn rooms whose time is nearly up, and close rooms whose warning has run out.
    Returns how many breakouts changed."""
    now = now or utcnow()
    async with sessionmaker() as db:
        rows = (
            await db.execute(
                select(
                    Breakout.id, Breakout.session_id, Breakout.ends_at, Breakout.closes_at
                ).where(Breakout.closed_at.is_(None))
            )
        ).all()
    changed = 0
    for breakout_id, session_id, ends_at, closes_at in rows:
        due = closes_at is not None and closes_at <= now
        warn = closes_at is None and ends_at - timedelta(seconds=WARNING_SECONDS) <= now
        if not (due or warn):
            continue
        async with sessionmaker() as db:
            session = await db.get(ProgrammeSession, session_id)
            if session is None:
                continue
            if due:
                changed += await finish(
                    db, live, breakout_id=breakout_id, session=session, actor=None, due_by=now
                )
            else:
                changed += await warn_time_is_up(
                    db, live, breakout_id=breakout_id, session=session, ends_at=ends_at, now=now
                )
    return changed


async def warn_time_is_up(
    db: AsyncSession,
    live: Live,
    *,
    breakout_id: int,
    session: ProgrammeSession,
    ends_at: datetime,
    now: datetime,
) -> bool:
    """Announce that the rooms close soon, unless a host closed them or added time first."""
    closes_at = max(ends_at, now + timedelta(seconds=LATE_WARNING_SECONDS))
    if not await update_open(
        db,
        breakout_id,
        Breakout.closes_at.is_(None),
        Breakout.ends_at == ends_at,
        closes_at=closes_at,
    ):
        return False
    programme = await db.get(Programme, session.programme_id)
    assert programme is not None  # the session's foreign key guarantees it
    await announce_closing(
        db,
        live,
        session=session,
        programme=programme,
        ends_at=ends_at,
        closes_at=closes_at,
        actor_id=None,
    )
    return True


class BreakoutCloser:
    """A small loop, started in the app's lifespan, that closes rooms on time."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        live: Live,
        *,
        interval: float = CLOSER_INTERVAL_SECONDS,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.live = live
        self.interval = interval
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="breakout-closer")

    async def _run(self) -> None:
        while True:
            try:
                await close_due(self.sessionmaker, self.live)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("could not close due breakout rooms; trying again")
            await asyncio.sleep(self.interval)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
