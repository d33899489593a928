"""Helpers for the voice tests: a person's seat, breakout rooms opened in the database,
what was stored on a channel, and who was audited doing what."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.access import load_programme_context
from app.db import utcnow
from app.live.channels import Seat, seat_for
from app.live.models import Breakout
from app.models import AuditEntry, User
from realtime.log import LiveEvent
from tests.factories import World


def voice_path(w: World) -> str:
    return f"/programmes/{w.programme.id}/sessions/{w.session.id}/live/voice"


async def seat_of(db: AsyncSession, w: World, user: User) -> Seat:
    ctx = await load_programme_context(db, user, w.programme.id)
    return await seat_for(db, ctx=ctx, session=w.session)


async def open_breakout(db: AsyncSession, w: World) -> None:
    db.add(Breakout(session_id=w.session.id, ends_at=utcnow() + timedelta(minutes=30)))
    await db.commit()


async def stored(db: AsyncSession, channel: str, type_name: str) -> list[dict[str, Any]]:
    """The events of one type stored on a channel, as they went on the wire."""
    await db.commit()  # see what the server has committed since
    rows = await db.scalars(
        select(LiveEvent.wire)
        .where(LiveEvent.channel == channel, LiveEvent.type == type_name)
        .order_by(LiveEvent.seq)
    )
    return [json.loads(wire) for wire in rows.all()]


async def audited(db: AsyncSession, w: World, prefix: str = "voice.") -> list[AuditEntry]:
    await db.commit()
    rows = await db.scalars(
        select(AuditEntry)
        .where(AuditEntry.programme_id == w.programme.id, AuditEntry.action.startswith(prefix))
        .order_by(AuditEntry.id)
    )
    return list(rows.all())
