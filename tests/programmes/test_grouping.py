"""Auto-assignment into balanced groups, moving people, and looking after groups."""

from __future__ import annotations

import random

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Group, GroupFacilitator, Membership, Programme, Role, User
from app.programmes.auto_assign import auto_assign
from app.programmes.facilitation import add_facilitator, remove_facilitator
from app.programmes.grouping import GroupingError, create_group, update_group
from app.programmes.placement import move_member, set_role
from tests.factories import add_member, make_group, make_programme, make_user


async def programme_with(
    db: AsyncSession, participants: int, facilitators: int = 0, capacity: int = 8
) -> tuple[Programme, User, list[Membership], list[User]]:
    programme = await make_programme(db, capacity=capacity)
    host = await make_user(db, name="Hana Host")
    await add_member(db, programme, host, Role.HOST)
    people = [
        User(display_name=f"Participant {i:03}", email=f"p{i}-{programme.id}@example.org")
        for i in range(participants)
    ]
    staff = [
        User(display_name=f"Facilitator {i}", email=f"f{i}-{programme.id}@example.org")
        for i in range(facilitators)
    ]
    db.add_all(people + staff)
    await db.flush()
    memberships = [
        Membership(user_id=u.id, programme_id=programme.id, role=Role.PARTICIPANT.value)
        for u in people
    ]
    db.add_all(memberships)
    db.add_all(
        Membership(user_id=u.id, programme_id=programme.id, role=Role.FACILITATOR.value)
        for u in staff
    )
    await db.commit()
    return programme, host, memberships, staff


async def sizes(db: AsyncSession, programme_id: int) -> dict[str, int]:
    """Group name -> number of people, for every group of the programme (empty ones too)."""
    rows = await db.execute(
        select(Group.name, func.count(Membership.id))
        .outerjoin(Membership, Membership.group_id == Group.id)
        .where(Group.programme_id == programme_id)
        .group_by(Group.id, Group.name)
    )
    return dict(list(rows.tuples()))


async def unassigned(db: AsyncSession, programme_id: int) -> int:
    return int(
        await db.scalar(
            select(func.count()).where(
                Membership.programme_id == programme_id,
                Membership.role == "participant",
                Membership.group_id.is_(None),
            )
        )
        or 0
    )


async def test_80_participants_make_10_groups_of_8(db: AsyncSession) -> None:
    programme, host, _, _ = await programme_with(db, 80)
    summary = await auto_assign(db, programme=programme, actor=host, mode="fill")
    assert summary.placed == 80
    assert await sizes(db, programme.id) == {f"Group {n}": 8 for n in range(1, 11)}
    assert await unassigned(db, programme.id) == 0


async def test_81_participants_make_11_groups_none_over_8(db: AsyncSession) -> None:
    programme, host, _, _ = await programme_with(db, 81)
    summary = await auto_assign(db, programme=programme, actor=host, mode="reshuffle")
    counts = await sizes(db, programme.id)
    assert len(counts) == 11 and len(summary.groups_created) == 11
    assert sum(counts.values()) == 81
    assert max(counts.values()) <= 8
    assert max(counts.values()) - min(counts.values()) <= 1


async def test_only_participants_are_placed(db: AsyncSession) -> None:
    programme, host, _, staff = await programme_with(db, 5, facilitators=2)
    await auto_assign(db, programme=programme, actor=host, mode="fill")
    grouped = await db.scalars(
        select(Membership.role).where(
            Membership.programme_id == programme.id, Membership.group_id.is_not(None)
        )
    )
    assert set(grouped) == {"participant"}


async def test_fill_keeps_groups_and_fills_those_with_room_first(db: AsyncSession) -> None:
    programme, host, memberships, _ = await programme_with(db, 14)
    a = await make_group(db, programme, name="Alder")
    b = await make_group(db, programme, name="Beech")
    for m in memberships[:8]:
        m.group_id = a.id  # full
    for m in memberships[8:10]:
        m.group_id = b.id  # two of eight
    await db.commit()
    kept = {m.id: m.group_id for m in memberships[:10]}
    summary = await auto_assign(db, programme=programme, actor=host, mode="fill")
    assert summary.placed == 4 and summary.groups_created == []
    assert await sizes(db, programme.id) == {"Alder": 8, "Beech": 6}
    rows = await db.execute(
        select(Membership.id, Membership.group_id).where(Membership.id.in_(list(kept)))
    )
    assert dict(list(rows.tuples())) == kept

    # More people than the room left: new groups only as needed, filled evenly with Beech.
    more = [User(display_name=f"Late {i}", email=f"late{i}@example.org") for i in range(6)]
    db.add_all(more)
    await db.flush()
    db.add_all(Membership(user_id=u.id, programme_id=programme.id) for u in more)
    await db.commit()
    summary = await auto_assign(db, programme=programme, actor=host, mode="fill")
    assert summary.groups_created == ["Group 1"]
    assert await sizes(db, programme.id) == {"Alder": 8, "Beech": 6, "Group 1": 6}


async def test_fill_uses_empty_groups_before_making_new_ones(db: AsyncSession) -> None:
    programme, host, _, _ = await programme_with(db, 10)
    await make_group(db, programme, name="Group 2")
    await make_group(db, programme, name="Spare")
    await db.commit()
    summary = await auto_assign(db, programme=programme, actor=host, mode="fill")
    assert summary.groups_created == []  # two empty groups of 8 hold ten people
    assert await sizes(db, programme.id) == {"Group 2": 5, "Spare": 5}


async def test_new_group_names_skip_names_in_use(db: AsyncSession) -> None:
    programme, host, _, _ = await programme_with(db, 24)
    await make_group(db, programme, name="group 2")
    await db.commit()
    summary = await auto_assign(db, programme=programme, actor=host, mode="reshuffle")
    assert summary.groups_created == ["Group 1", "Group 3"]


async def test_reshuffle_places_everyone_again(db: AsyncSession) -> None:
    programme, host, memberships, _ = await programme_with(db, 16)
    await auto_assign(db, programme=programme, actor=host, mode="fill", rng=random.Random(1))  # noqa: S311 - a repeatable test
    before = {m.id: m.group_id for m in memberships}
    await auto_assign(db, programme=programme, actor=host, mode="reshuffle", rng=random.Random(2))  # noqa: S311
    rows = await db.execute(
        select(Membership.id, Membership.group_id).where(
            Membership.programme_id == programme.id, Membership.role == "participant"
        )
    )
    after = dict(list(rows.tuples()))
    assert after != before
    assert await sizes(db, programme.id) == {"Group 1": 8, "Group 2": 8}


async def test_facilitators_spread_round_robin_over_groups_without_one(db: AsyncSession) -> None:
    programme, host, _, staff = await programme_with(db, 40, facilitators=3)
    first = await make_group(db, programme, name="First", facilitators=[staff[0]])
    await db.commit()
    summary = await auto_assign(db, programme=programme, actor=host, mode="fill")
    assert summary.facilitators_assigned == 4  # five groups, one already had a facilitator
    rows = await db.execute(
        select(GroupFacilitator.user_id, func.count())
        .join(Group, Group.id == GroupFacilitator.group_id)
        .where(Group.programme_id == programme.id)
        .group_by(GroupFacilitator.user_id)
    )
    loads = dict(list(rows.tuples()))
    assert sorted(loads.values()) == [1, 2, 2]
    assert sum(loads.values()) == 5
    per_group = await db.execute(
        select(Group.id, func.count(GroupFacilitator.user_id))
        .outerjoin(GroupFacilitator, GroupFacilitator.group_id == Group.id)
        .where(Group.programme_id == programme.id)
        .group_by(Group.id)
    )
    assert all(count == 1 for _, count in per_group.tuples())
    assert first.id


async def test_move_refuses_a_full_group_and_non_participants(db: AsyncSession) -> None:
    programme, host, memberships, staff = await programme_with(db, 17, facilitators=1)
    await auto_assign(db, programme=programme, actor=host, mode="fill", assign_facilitators=False)
    groups = list(
        await db.scalars(
            select(Group).where(Group.programme_id == programme.id).order_by(Group.position)
        )
    )
    counts = await sizes(db, programme.id)
    assert sorted(counts.values()) == [5, 6, 6]
    full = next(g for g in groups if counts[g.name] == 6)
    # 17 people in 3 groups: 6, 6, 5. Fill one up to capacity 6, then the move is refused.
    await update_group(db, programme=programme, actor=host, group=full, capacity=6)
    outsider = next(m for m in memberships if m.group_id != full.id)
    with pytest.raises(GroupingError) as caught:
        await move_member(db, programme=programme, actor=host, membership=outsider, group=full)
    assert f'"{full.name}" is full (6 of 6 places)' in caught.value.message
    assert outsider.group_id != full.id

    facilitator = await db.scalar(select(Membership).where(Membership.user_id == staff[0].id))
    assert facilitator is not None
    with pytest.raises(GroupingError, match="Only participants"):
        await move_member(
            db, programme=programme, actor=host, membership=facilitator, group=groups[2]
        )

    await move_member(db, programme=programme, actor=host, membership=outsider, group=None)
    assert await unassigned(db, programme.id) == 1


async def test_group_names_and_capacities(db: AsyncSession) -> None:
    programme, host, memberships, _ = await programme_with(db, 3)
    group = await create_group(db, programme=programme, actor=host, name="  Oak   room ")
    assert group.name == "Oak room" and group.capacity is None
    with pytest.raises(GroupingError, match="already a group called"):
        await create_group(db, programme=programme, actor=host, name="OAK ROOM")
    with pytest.raises(GroupingError, match="from 2 to 50"):
        await create_group(db, programme=programme, actor=host, name="Huge", capacity=51)
    with pytest.raises(GroupingError, match="Enter a name"):
        await update_group(db, programme=programme, actor=host, group=group, name="   ")
    for m in memberships:
        await move_member(db, programme=programme, actor=host, membership=m, group=group)
    with pytest.raises(GroupingError, match="has 3 people"):
        await update_group(db, programme=programme, actor=host, group=group, capacity=2)
    await update_group(db, programme=programme, actor=host, group=group, name="Elm", capacity=3)
    assert (group.name, group.capacity) == ("Elm", 3)
    await update_group(db, programme=programme, actor=host, group=group, capacity=None)
    assert group.capacity is None and group.effective_capacity(programme) == 8


async def test_facilitators_must_be_facilitators_or_hosts(db: AsyncSession) -> None:
    programme, host, memberships, staff = await programme_with(db, 1, facilitators=1)
    group = await create_group(db, programme=programme, actor=host, name="Oak")
    with pytest.raises(GroupingError, match="facilitators and hosts"):
        await add_facilitator(
            db, programme=programme, actor=host, group=group, user_id=memberships[0].user_id
        )
    outsider = await make_user(db)
    with pytest.raises(GroupingError):
        await add_facilitator(db, programme=programme, actor=host, group=group, user_id=outsider.id)
    await add_facilitator(db, programme=programme, actor=host, group=group, user_id=staff[0].id)
    await add_facilitator(db, programme=programme, actor=host, group=group, user_id=staff[0].id)
    await add_facilitator(db, programme=programme, actor=host, group=group, user_id=host.id)
    links = set(
        await db.scalars(
            select(GroupFacilitator.user_id).where(GroupFacilitator.group_id == group.id)
        )
    )
    assert links == {staff[0].id, host.id}
    assert await remove_facilitator(
        db, programme=programme, actor=host, group=group, user_id=host.id
    )
    assert not await remove_facilitator(
        db, programme=programme, actor=host, group=group, user_id=host.id
    )


async def test_role_changes_keep_groups_consistent(db: AsyncSession) -> None:
    programme, host, memberships, staff = await programme_with(db, 1, facilitators=1)
    group = await create_group(db, programme=programme, actor=host, name="Oak")
    await add_facilitator(db, programme=programme, actor=host, group=group, user_id=staff[0].id)
    await move_member(db, programme=programme, actor=host, membership=memberships[0], group=group)
    facilitator = await db.scalar(select(Membership).where(Membership.user_id == staff[0].id))
    assert facilitator is not None
    await set_role(
        db, programme=programme, actor=host, membership=facilitator, role=Role.PARTICIPANT
    )
    assert await db.scalar(select(func.count()).select_from(GroupFacilitator)) == 0
    await set_role(
        db, programme=programme, actor=host, membership=memberships[0], role=Role.OBSERVER
    )
    assert memberships[0].group_id is None
    own = await db.scalar(select(Membership).where(Membership.user_id == host.id))
    assert own is not None
    with pytest.raises(GroupingError, match="your own role"):
        await set_role(db, programme=programme, actor=host, membership=own, role=Role.PARTICIPANT)
