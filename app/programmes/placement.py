"""Where a member stands in a programme: the group a participant is placed in, and their
role. Each change commits with an audit entry, then tells the person's open live
connections (see app/programmes/grouping.py)."""

from __future__ import annotations

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app import audit
from app.models import Group, GroupFacilitator, Membership, Programme, Role, User
from app.programmes.facilitation import FACILITATING_ROLES
from app.programmes.grouping import GroupingError, group_size, tell_access_changed
from realtime.publish import Live


async def move_member(
    db: AsyncSession,
    *,
    programme: Programme,
    actor: User,
    membership: Membership,
    group: Group | None,
    live: Live | None = None,
) -> None:
    """Put a participant in `group`, or take them out of any group (None)."""
    if membership.group_id == (group.id if group else None):
        return
    if group is not None:
        if membership.role != Role.PARTICIPANT.value:
            raise GroupingError(
                f"Only participants are placed in groups; this person is a "
                f"{Role(membership.role).label.lower()}. To have a facilitator look after a "
                "group, add them as the group's facilitator."
            )
        capacity = group.effective_capacity(programme)
        size = await group_size(db, group_id=group.id)
        if size >= capacity:
            raise GroupingError(
                f'"{group.name}" is full ({size} of {capacity} places). Choose another group, '
                "move someone out first, or raise the group's capacity."
            )
    previous = membership.group_id
    membership.group_id = group.id if group else None
    audit.record(
        db,
        actor=actor,
        action="groups.move_member" if group else "groups.unassign_member",
        programme_id=programme.id,
        target=f"membership:{membership.id}",
        from_group_id=previous,
        to_group_id=membership.group_id,
    )
    user_id = membership.user_id
    await db.commit()
    await tell_access_changed(live, [user_id], "groups.move_member")


async def set_role(
    db: AsyncSession,
    *,
    programme: Programme,
    actor: User,
    membership: Membership,
    role: Role,
    live: Live | None = None,
) -> None:
    """Change a member's role. Leaving the participant role leaves their group; leaving the
    facilitator and host roles ends their facilitation of groups."""
    current = Role(membership.role)
    if role is current:
        return
    if membership.user_id == actor.id:
        raise GroupingError("You cannot change your own role.", field="role")
    if current is Role.HOST:
        hosts = await db.scalar(
            select(func.count()).where(
                Membership.programme_id == programme.id, Membership.role == Role.HOST.value
            )
        )
        if (hosts or 0) <= 1:
            raise GroupingError("The programme needs at least one host.", field="role")
    membership.role = role.value
    if role is not Role.PARTICIPANT:
        membership.group_id = None
    if role not in FACILITATING_ROLES:
        group_ids = select(Group.id).where(Group.programme_id == programme.id)
        await db.execute(
            delete(GroupFacilitator).where(
                GroupFacilitator.user_id == membership.user_id,
                GroupFacilitator.group_id.in_(group_ids),
            )
        )
    audit.record(
        db,
        actor=actor,
        action="members.set_role",
        programme_id=programme.id,
        target=f"membership:{membership.id}",
        role_from=current.value,
        role_to=role.value,
    )
    user_id = membership.user_id
    await db.commit()
    await tell_access_changed(live, [user_id], "members.set_role")
