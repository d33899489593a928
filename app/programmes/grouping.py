"""Groups themselves: creating, renaming and sizing them, and what every change to groups
and the people in them shares (the refusal, and telling people their access changed).

The other changes live beside this module: placing participants (`placement`), choosing
facilitators (`facilitation`) and the auto-assign algorithm (`auto_assign`). Only
participants are placed in groups; facilitators are linked to the groups they facilitate
(GroupFacilitator) and hosts may facilitate too. Each change commits together with an audit
entry, then tells the open live connections of the people whose access it changed
(app/live/access.py), so nobody goes on seeing a room or a help desk that is no longer theirs.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Literal

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app import audit
from app.live.access import access_changed
from app.models import Group, Membership, Programme, User
from realtime.publish import Live

MIN_CAPACITY = 2
MAX_CAPACITY = 50
MAX_GROUP_NAME = 100
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")


class GroupingError(Exception):
    """A change that cannot be made, with a message for the person who asked for it."""

    def __init__(self, message: str, *, field: str = "group") -> None:
        super().__init__(message)
        self.message = message
        self.field = field


async def tell_access_changed(live: Live | None, user_ids: Iterable[int], reason: str) -> None:
    """After the commit, the open live connections of those whose access changed check
    themselves again. Every route passes `live`; None is for code that runs without an app
    (the tests of placement itself), where nobody is connected."""
    if live is not None:
        await access_changed(live, user_ids=user_ids, reason=reason)


async def get_group(db: AsyncSession, *, programme_id: int, group_id: int) -> Group | None:
    """The group, if it belongs to the programme."""
    group = await db.get(Group, group_id)
    return group if group is not None and group.programme_id == programme_id else None


async def group_size(db: AsyncSession, *, group_id: int) -> int:
    count = await db.scalar(select(func.count()).where(Membership.group_id == group_id))
    return int(count or 0)


def group_names(taken: set[str]) -> Iterator[str]:
    """ "Group 1", "Group 2", ... skipping names already used (ignoring case)."""
    n = 0
    while True:
        n += 1
        name = f"Group {n}"
        if name.casefold() not in taken:
            taken.add(name.casefold())
            yield name


def clean_group_name(raw: str) -> str:
    if _CONTROL_CHARS.search(raw):
        raise GroupingError("The name cannot contain line breaks.", field="name")
    name = " ".join(raw.split())
    if not name:
        raise GroupingError("Enter a name for the group.", field="name")
    if len(name) > MAX_GROUP_NAME:
        raise GroupingError(
            f"Use at most {MAX_GROUP_NAME} characters for the group's name.", field="name"
        )
    return name


async def _check_name_free(
    db: AsyncSession, *, programme: Programme, name: str, group_id: int | None = None
) -> None:
    clash = await db.scalar(
        select(Group.id).where(
            Group.programme_id == programme.id,
            func.lower(Group.name) == name.lower(),
            Group.id != (group_id or 0),
        )
    )
    if clash is not None:
        raise GroupingError(
            f'There is already a group called "{name}" in this programme.', field="name"
        )


def _check_capacity_range(capacity: int) -> None:
    if not MIN_CAPACITY <= capacity <= MAX_CAPACITY:
        raise GroupingError(
            f"Choose a capacity from {MIN_CAPACITY} to {MAX_CAPACITY} people.", field="capacity"
        )


async def create_group(
    db: AsyncSession,
    *,
    programme: Programme,
    actor: User,
    name: str,
    capacity: int | None = None,
) -> Group:
    name = clean_group_name(name)
    if capacity is not None:
        _check_capacity_range(capacity)
    await _check_name_free(db, programme=programme, name=name)
    position = await db.scalar(
        select(func.max(Group.position)).where(Group.programme_id == programme.id)
    )
    group = Group(
        programme_id=programme.id, name=name, capacity=capacity, position=(position or 0) + 1
    )
    db.add(group)
    await db.flush()
    audit.record(
        db,
        actor=actor,
        action="groups.create",
        programme_id=programme.id,
        target=f"group:{group.id}",
        name=name,
        capacity=capacity,
    )
    await db.commit()
    return group


async def update_group(
    db: AsyncSession,
    *,
    programme: Programme,
    actor: User,
    group: Group,
    name: str | None = None,
    capacity: int | None | Literal["keep"] = "keep",
) -> None:
    """Rename the group and/or set its capacity (None: the programme's usual capacity).
    A capacity below the number of people already in the group is refused."""
    changes: dict[str, object] = {}
    if name is not None:
        name = clean_group_name(name)
        if name != group.name:
            await _check_name_free(db, programme=programme, name=name, group_id=group.id)
            changes["name"] = name
    if capacity != "keep":
        if capacity is not None:
            _check_capacity_range(capacity)
        effective = capacity or programme.group_capacity
        size = await group_size(db, group_id=group.id)
        if size > effective:
            raise GroupingError(
                f'"{group.name}" has {size} people, more than {effective}. Move some of them to '
                "another group before lowering its capacity.",
                field="capacity",
            )
        if capacity != group.capacity:
            changes["capacity"] = capacity
    if not changes:
        return
    for key, value in changes.items():
        setattr(group, key, value)
    audit.record(
        db,
        actor=actor,
        action="groups.update",
        programme_id=programme.id,
        target=f"group:{group.id}",
        **changes,
    )
    await db.commit()
