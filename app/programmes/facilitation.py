"""Choosing who facilitates a group: the programme's facilitators and hosts, linked to the
groups they look after (GroupFacilitator). Each change commits with an audit entry, then
tells the person's open live connections (see app/programmes/grouping.py)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app import audit
from app.models import Group, GroupFacilitator, Membership, Programme, Role, User
from app.programmes.grouping import GroupingError, tell_access_changed
from realtime.publish import Live

FACILITATING_ROLES = (Role.FACILITATOR, Role.HOST)


async def add_facilitator(
    db: AsyncSession,
    *,
    programme: Programme,
    actor: User,
    group: Group,
    user_id: int,
    live: Live | None = None,
) -> None:
    membership = await db.scalar(
        select(Membership).where(
            Membership.programme_id == programme.id, Membership.user_id == user_id
        )
    )
    if membership is None or Role(membership.role) not in FACILITATING_ROLES:
        raise GroupingError(
            "Only the programme's facilitators and hosts can facilitate a group. Give the "
            "person the facilitator role first.",
            field="facilitator",
        )
    if await db.get(GroupFacilitator, (group.id, user_id)) is not None:
        return
    db.add(GroupFacilitator(group_id=group.id, user_id=user_id))
    audit.record(
        db,
        actor=actor,
        action="groups.add_facilitator",
        programme_id=programme.id,
        target=f"group:{group.id}",
        user_id=user_id,
    )
    await db.commit()
    await tell_access_changed(live, [user_id], "groups.add_facilitator")


async def remove_facilitator(
    db: AsyncSession,
    *,
    programme: Programme,
    actor: User,
    group: Group,
    user_id: int,
    live: Live | None = None,
) -> bool:
    """False when the person was not facilitating the group."""
    link = await db.get(GroupFacilitator, (group.id, user_id))
    if link is None:
        return False
    await db.delete(link)
    audit.record(
        db,
        actor=actor,
        action="groups.remove_facilitator",
        programme_id=programme.id,
        target=f"group:{group.id}",
        user_id=user_id,
    )
    await db.commit()
    await tell_access_changed(live, [user_id], "groups.remove_facilitator")
    return True
