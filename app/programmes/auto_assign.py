"""Auto-assign: placing a programme's participants in balanced groups, making groups when
the existing ones are full, and giving each group with people a facilitator.

Like every change to groups, it commits with an audit entry and then tells the open live
connections of the people whose access changed (see app/programmes/grouping.py).
"""

from __future__ import annotations

import heapq
import random
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app import audit
from app.models import Group, GroupFacilitator, Membership, Programme, Role, User
from app.programmes.grouping import group_names, tell_access_changed
from realtime.publish import Live

AssignMode = Literal["fill", "reshuffle"]
Room = Callable[[Group], int]  # how many more people a group can take


@dataclass
class AssignSummary:
    mode: AssignMode
    participants: int
    placed: int
    groups_created: list[str] = field(default_factory=list)
    facilitators_assigned: int = 0
    sizes: list[tuple[str, int]] = field(default_factory=list)  # groups with people, in order


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
    memberships, groups = await _load(db, programme=programme)
    participants = [m for m in memberships if m.role == Role.PARTICIPANT.value]
    groups_before = {m.user_id: m.group_id for m in participants}
    if mode == "reshuffle":
        for m in participants:
            m.group_id = None
    to_place = [m for m in participants if m.group_id is None]
    (rng or secrets.SystemRandom()).shuffle(to_place)
    sizes = {g.id: 0 for g in groups}
    for m in memberships:
        if m.group_id in sizes:
            sizes[m.group_id] += 1

    def room(group: Group) -> int:
        return max(group.effective_capacity(programme) - sizes.get(group.id, 0), 0)

    summary = AssignSummary(mode=mode, participants=len(participants), placed=len(to_place))
    active, space = _groups_to_fill(groups, sizes, room, needed=len(to_place))
    if space < len(to_place):
        new_groups = await _add_groups(
            db, programme=programme, existing=groups, missing=len(to_place) - space
        )
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
    _record(db, actor=actor, programme=programme, summary=summary)
    await db.commit()
    await tell_access_changed(live, changed, "groups.auto_assign")
    return summary


async def _load(db: AsyncSession, *, programme: Programme) -> tuple[list[Membership], list[Group]]:
    """The programme's memberships and groups, in a stable order."""
    memberships = await db.scalars(
        select(Membership).where(Membership.programme_id == programme.id).order_by(Membership.id)
    )
    groups = await db.scalars(
        select(Group).where(Group.programme_id == programme.id).order_by(Group.position, Group.id)
    )
    return list(memberships), list(groups)


def _groups_to_fill(
    groups: list[Group], sizes: dict[int, int], room: Room, *, needed: int
) -> tuple[list[Group], int]:
    """The groups to place people in, and the places they have: the groups that have people
    and room, then as many empty groups (in order) as it takes to seat `needed` people."""
    active = [g for g in groups if sizes[g.id] > 0 and room(g) > 0]
    space = sum(room(g) for g in active)
    for group in groups:
        if space >= needed:
            break
        if sizes[group.id] == 0:
            active.append(group)
            space += room(group)
    return active, space


async def _add_groups(
    db: AsyncSession, *, programme: Programme, existing: list[Group], missing: int
) -> list[Group]:
    """New groups, after the existing ones and named after them, with places for at least
    `missing` more people."""
    names = group_names({g.name.casefold() for g in existing})
    position = max((g.position for g in existing), default=0)
    new_groups = []
    while missing > 0:
        position += 1
        new_groups.append(Group(programme_id=programme.id, name=next(names), position=position))
        missing -= programme.group_capacity
    db.add_all(new_groups)
    await db.flush()
    return new_groups


def _water_fill(
    people: list[Membership], groups: list[Group], sizes: dict[int, int], room: Room
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


def _record(db: AsyncSession, *, actor: User, programme: Programme, summary: AssignSummary) -> None:
    audit.record(
        db,
        actor=actor,
        action="groups.auto_assign",
        programme_id=programme.id,
        target=f"programme:{programme.id}",
        mode=summary.mode,
        placed=summary.placed,
        groups_created=summary.groups_created,
        facilitators_assigned=summary.facilitators_assigned,
    )
