"""Placing participants in groups and looking after the groups: auto-assign, moving people,
creating, renaming and sizing groups, and choosing each group's facilitators.

Only participants are placed in groups; facilitators are linked to the groups they facilitate
(GroupFacilitator) and hosts may facilitate too. Each function commits its change together with
an audit entry, then tells the open live connections of the people whose access it changed
(app/live/access.py), so nobody goes on seeing a room or a help desk that is no longer theirs.
"""

from __future__ import annotations

import heapq
import random
import re
import secrets
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Literal

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app import audit
from app.live.access import access_changed
from app.models import Group, GroupFacilitator, Membership, Programme, Role, User
from realtime.publish import Live

AssignMode = Literal["fill", "reshuffle"]
MIN_CAPACITY = 2
MAX_CAPACITY = 50
MAX_GROUP_NAME = 100
FACILITATING_ROLES = (Role.FACILITATOR, Role.HOST)
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")


class GroupingError(Exception):
    """A change that cannot be made, with a message for the person who asked for it."""

    def __init__(self, message: str, *, field: str = "group") -> None:
        super().__init__(message)
        self.message = message
        self.field = field


@dataclass
class AssignSummary:
    mode: AssignMode
    participants: int
    placed: int
    groups_created: list[str] = field(default_factory=list)
    facilitators_assigned: int = 0
    sizes: list[tuple[str, int]] = field(default_factory=list)  # groups with people, in order


async def _tell(live: Live | None, user_ids: Iterable[int], reason: str) -> None:
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


async def auto_assign(
    db: AsyncSession,
    *,
    programme: Programme,
    actor: User,
    mode: AssignMode,
    assign_facilitators: bool = True,
    rng: random.Random | None = None,
    live: Live | None = None,
) -> AssignSummary:
    """Place participants in balanced groups of at most their capacity.

    "fill" keeps everyone's group and places only the unassigned: first in groups that already
    have people and room, then in empty groups, then in new groups, always into the smallest.
    "reshuffle" takes everyone out first and places them all again in random order.
    Sizes differ by at most one wherever capacities allow, using as few groups as possible.
    """
    rng = rng or secrets.SystemRandom()
    memberships = list(
        await db.scalars(
            select(Membership)
            .where(Membership.programme_id == programme.id)
            .order_by(Membership.id)
        )
    )
    groups = list(
        await db.scalars(
            select(Group)
            .where(Group.programme_id == programme.id)
            .order_by(Group.position, Group.id)
        )
    )
    participants = [m for m in memberships if m.role == Role.PARTICIPANT.value]
    groups_before = {m.user_id: m.group_id for m in participants}
    if mode == "reshuffle":
        for m in participants:
            m.group_id = None
    to_place = [m for m in participants if m.group_id is None]
    rng.shuffle(to_place)
    sizes = {g.id: 0 for g in groups}
    for m in memberships:
        if m.group_id in sizes:
            sizes[m.group_id] += 1

    def room(group: Group) -> int:
        return max(group.effective_capacity(programme) - sizes.get(group.id, 0), 0)

    active = [g for g in groups if sizes[g.id] > 0 and room(g) > 0]
    space = sum(room(g) for g in active)
    for group in groups:
        if space >= len(to_place):
            break
        if sizes[group.id] == 0:
            active.append(group)
            space += room(group)
    summary = AssignSummary(mode=mode, participants=len(participants), placed=len(to_place))
    if space < len(to_place):
        names = group_names({g.name.casefold() for g in groups})
        position = max((g.position for g in groups), default=0)
        new_groups = []
        while space < len(to_place):
            position += 1
            group = Group(programme_id=programme.id, name=next(names), position=position)
            new_groups.append(group)
            space += programme.group_capacity
        db.add_all(new_groups)
        await db.flush()
        for group in new_groups:
            sizes[group.id] = 0
        active += new_groups
        groups += new_groups
        summary.groups_created = [g.name for g in new_groups]
    _water_fill(to_place, active, sizes, room)
    changed = {m.user_id for m in participants if m.group_id != groups_before[m.user_id]}
    if assign_facilitators:
        given = await _spread_facilitators(
            db, programme=programme, memberships=memberships, groups=groups, sizes=sizes
        )
        summary.facilitators_assigned = len(given)
        changed.update(given)
    summary.sizes = [(g.name, sizes[g.id]) for g in groups if sizes[g.id]]
    audit.record(
        db,
        actor=actor,
        action="groups.auto_assign",
        programme_id=programme.id,
        target=f"programme:{programme.id}",
        mode=mode,
        placed=summary.placed,
        groups_created=summary.groups_created,
        facilitators_assigned=summary.facilitators_assigned,
    )
    await db.commit()
    await _tell(live, changed, "groups.auto_assign")
    return summary


def _water_fill(
    people: list[Membership],
    groups: list[Group],
    sizes: dict[int, int],
    room: Callable[[Group], int],
) -> None:
    """Each person joins the smallest group that still has room (ties: the earlier group)."""
    heap = [(sizes[g.id], index, g) for index, g in enumerate(groups) if room(g) > 0]
    heapq.heapify(heap)
    for person in people:
        size, index, group = heapq.heappop(heap)
        person.group_id = group.id
        sizes[group.id] = size + 1
        if room(group) > 0:
            heapq.heappush(heap, (size + 1, index, group))


async def _spread_facilitators(
    db: AsyncSession,
    *,
    programme: Programme,
    memberships: list[Membership],
    groups: list[Group],
    sizes: dict[int, int],
) -> list[int]:
    """Give each group with people and no facilitator one of the programme's facilitators,
    round-robin, starting with whoever facilitates fewest groups. Returns who was given a
    group, once for each group."""
    facilitator_ids = [m.user_id for m in memberships if m.role == Role.FACILITATOR.value]
    if not facilitator_ids:
        return []
    links = (
        await db.execute(
            select(GroupFacilitator.group_id, GroupFacilitator.user_id)
            .join(Group, Group.id == GroupFacilitator.group_id)
            .where(Group.programme_id == programme.id)
        )
    ).tuples()
    covered: set[int] = set()
    load = dict.fromkeys(facilitator_ids, 0)
    for group_id, user_id in links:
        covered.add(group_id)
        if user_id in load:
            load[user_id] += 1
    order = {uid: i for i, uid in enumerate(facilitator_ids)}
    assigned: list[int] = []
    for group in groups:
        if group.id in covered or not sizes.get(group.id):
            continue
        chosen = min(load, key=lambda uid: (load[uid], order[uid]))
        db.add(GroupFacilitator(group_id=group.id, user_id=chosen))
        load[chosen] += 1
        assigned.append(chosen)
    return assigned


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
    await _tell(live, [user_id], "groups.move_member")


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
    await _tell(live, [user_id], "groups.add_facilitator")


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
    await _tell(live, [user_id], "groups.remove_facilitator")
    return True


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
    await _tell(live, [user_id], "members.set_role")
