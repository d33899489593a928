"""Shared by the stage video tests: the live page's address, posting as the page does,
and what the stage's tiles look like in the event log and the audit log."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select

from app.models import AuditEntry
from app.stage.models import StageRole
from realtime.log import LiveEvent
from tests.factories import World

HX = {"HX-Request": "true"}


def live(w: World) -> str:
    return f"/programmes/{w.programme.id}/sessions/{w.session.id}/live"


async def post(browser_factory: Any, user: Any, url: str, **data: Any) -> Any:
    return await browser_factory(user).submit(url, data, headers=HX)


async def name(browser_factory: Any, w: World, user: Any, role: str) -> Any:
    return await post(browser_factory, w.host, live(w) + "/stage/roles", user_id=user.id, role=role)


async def pin(browser_factory: Any, w: World, user: Any, kind: str, *, by: Any = None) -> Any:
    return await post(
        browser_factory, by or w.host, live(w) + "/stage/tiles/pin", user_id=user.id, kind=kind
    )


async def tiles_events(db: Any, channel: str) -> list[dict[str, Any]]:
    await db.commit()
    rows = await db.scalars(
        select(LiveEvent.wire)
        .where(LiveEvent.channel == channel, LiveEvent.type == "stage.tiles")
        .order_by(LiveEvent.id)
    )
    return [json.loads(wire) for wire in rows.all()]


async def audited(db: Any, programme_id: int) -> list[str]:
    await db.commit()
    rows = await db.scalars(
        select(AuditEntry.action)
        .where(AuditEntry.programme_id == programme_id, AuditEntry.action.like("stage.%"))
        .order_by(AuditEntry.id)
    )
    return list(rows.all())


async def role_ids(db: Any, session_id: int) -> list[int]:
    await db.commit()
    return list(
        (await db.scalars(select(StageRole.id).where(StageRole.session_id == session_id))).all()
    )
