"""Helpers for tests of live-session actions (breakouts, help, moderation, presence)."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.live import channels
from app.models import AuditEntry
from tests.conftest import LiveServer
from tests.factories import World
from tests.live_helpers import LiveClient


def live_path(w: World) -> str:
    return f"/programmes/{w.programme.id}/sessions/{w.session.id}/live"


async def act(
    server: LiveServer, user: Any, path: str, data: dict[str, Any] | None = None, *, hx: bool = True
) -> httpx.Response:
    """POST a control form as htmx would (or as a plain form, with hx=False)."""
    headers = {"HX-Request": "true"} if hx else {}
    async with server.client(user) as http:
        return await http.post(path, data=data or {}, headers=headers)


async def get_room(server: LiveServer, user: Any, path: str) -> str:
    async with server.client(user) as http:
        response = await http.get(path + "/room")
    assert response.status_code == 200, response.text
    return response.text


async def open_rooms(server: LiveServer, w: World, minutes: int = 30) -> None:
    response = await act(server, w.host, live_path(w) + "/breakouts/open", {"minutes": minutes})
    assert response.status_code == 200, response.text


async def follow(client: LiveClient, *channel_names: str) -> None:
    """Follow exactly these channels from now on, as the page does after switching rooms."""
    await client.send({"type": "hello", "cursors": dict.fromkeys(channel_names)})
    # The hello's answer (a backlog, if any) comes before anything new; a ping marks the end.
    await client.send({"type": "ping", "n": 7})
    await client.wait_for(lambda m: m.get("t") == "pong" and m.get("n") == 7)


async def in_room(server: LiveServer, w: World, user: Any, group_id: int) -> LiveClient:
    """A client following a breakout room and its person's own channel."""
    room = channels.room(w.session.id, group_id)
    return await LiveClient.connect(
        server, user, live_path(w), {room: None, channels.personal(user.id): None}
    )


async def audit_actions(db: AsyncSession, programme_id: int) -> list[str]:
    await db.commit()  # end any earlier read, to see what the server has committed since
    rows = await db.scalars(
        select(AuditEntry.action)
        .where(AuditEntry.programme_id == programme_id)
        .order_by(AuditEntry.id)
    )
    return list(rows.all())


def of_type(name: str) -> Any:
    return lambda m: m.get("t") == name
