"""What the live room's video section needs (templates/stage/_tiles.html): the room's
tiles, whether the person may turn their camera on there, and the host's controls."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.live import channels
from app.live.channels import Seat
from app.models import Role
from app.stage.roles import members_to_name, roles_in_session
from app.stage.tiles import payload, tiles_in


async def tiles_context(db: AsyncSession, *, seat: Seat) -> dict[str, Any]:
    tiles = await tiles_in(db, session_id=seat.session.id, channel=seat.current)
    camera_allowed = (
        channels.room_group_id(seat.current) is not None
        and seat.ctx.programme.allow_breakout_cameras
        and seat.ctx.role is not Role.OBSERVER
    )
    context: dict[str, Any] = {
        "tiles_view": payload(seat.current, tiles),
        "camera_allowed": camera_allowed,
    }
    if seat.is_host and seat.current == channels.plenary(seat.session.id):
        context["tile_controls"] = {
            "roles": await roles_in_session(db, session_id=seat.session.id),
            "members": await members_to_name(db, programme_id=seat.ctx.programme.id),
        }
    return context
