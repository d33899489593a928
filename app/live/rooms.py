"""Queries about a session's rooms: the programme's groups (each has a room while
breakouts are open), every channel a message to all rooms goes to, and which group
each participant belongs to."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.live import channels
from app.models import Group, Membership, Role, User


async def programme_groups(db: AsyncSession, programme_id: int) -> list[Group]:
    return list(
        (
            await db.scalars(
                select(Group)
                .where(Group.programme_id == programme_id)
                .order_by(Group.position, Group.name)
            )
        ).all()
    )


async def every_room(db: AsyncSession, *, session_id: int, programme_id: int) -> list[str]:
    """The session's plenary and every group's room: where a word to all rooms goes."""
    groups = await programme_groups(db, programme_id)
    return [channels.plenary(session_id), *(channels.room(session_id, g.id) for g in groups)]


async def participant_groups(
    db: AsyncSession, *, programme_id: int
) -> list[tuple[int, int | None]]:
    """Each participant's id and group (None: not in a group yet), by name."""
    rows = await db.execute(
        select(Membership.user_id, Membership.group_id)
        .join(User, User.id == Membership.user_id)
        .where(
            Membership.programme_id == programme_id,
            Membership.role == Role.PARTICIPANT.value,
        )
        .order_by(User.display_name, User.id)
    )
    return list(rows.tuples().all())
