"""What the roster and group pages (and the API) show: people, their roles and groups, each
group's size and facilitators, and the access needs people share with their facilitator.

Plain dataclasses, loaded with a few queries, so templates never touch lazy relationships."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import utcnow
from app.models import Group, GroupFacilitator, Invitation, Membership, Programme, Role, User

ROLE_ORDER = {
    Role.HOST: 0,
    Role.FACILITATOR: 1,
    Role.IT_SUPPORT: 2,
    Role.OBSERVER: 3,
    Role.PARTICIPANT: 4,
}


@dataclass(frozen=True)
class AccessNeeds:
    captions_on: bool
    large_text: bool
    high_contrast: bool
    reduced_motion: bool
    low_bandwidth: bool
    screen_reader: bool
    notes: str

    LABELS = (
        ("captions_on", "Captions"),
        ("large_text", "Large text"),
        ("high_contrast", "High contrast"),
        ("reduced_motion", "Reduced motion"),
        ("low_bandwidth", "Low bandwidth"),
        ("screen_reader", "Screen reader"),
    )

    @classmethod
    def of(cls, user: User) -> AccessNeeds:
        return cls(
            captions_on=user.captions_on,
            large_text=user.large_text,
            high_contrast=user.high_contrast,
            reduced_motion=user.reduced_motion,
            low_bandwidth=user.low_bandwidth,
            screen_reader=user.screen_reader,
            notes=user.access_notes,
        )

    @property
    def labels(self) -> list[str]:
        return [label for name, label in self.LABELS if getattr(self, name)]

    @property
    def any(self) -> bool:
        return bool(self.labels or self.notes)


@dataclass(frozen=True)
class Person:
    user_id: int
    name: str
    pronouns: str
    name_pronunciation: str

    @classmethod
    def of(cls, user: User) -> Person:
        return cls(
            user_id=user.id,
            name=user.display_name,
            pronouns=user.pronouns,
            name_pronunciation=user.name_pronunciation,
        )

    @property
    def name_with_pronouns(self) -> str:
        return f"{self.name} ({self.pronouns})" if self.pronouns else self.name


@dataclass
class GroupView:
    id: int
    name: str
    position: int
    capacity: int | None  # the group's own setting; None: the programme's
    effective_capacity: int
    size: int = 0
    facilitators: list[Person] = field(default_factory=list)

    @property
    def is_full(self) -> bool:
        return self.size >= self.effective_capacity

    @property
    def places_left(self) -> int:
        return max(self.effective_capacity - self.size, 0)


@dataclass
class MemberView:
    membership_id: int
    person: Person
    email: str
    role: Role
    group_id: int | None
    group_name: str | None
    access: AccessNeeds
    facilitator_of: list[tuple[int, str]] = field(default_factory=list)  # (group id, name)
    invite_expires_at: datetime | None = None  # of the latest live invitation link

    @property
    def name_with_pronouns(self) -> str:
        return self.person.name_with_pronouns


async def list_groups(db: AsyncSession, *, programme: Programme) -> list[GroupView]:
    groups = await db.scalars(
        select(Group).where(Group.programme_id == programme.id).order_by(Group.position, Group.id)
    )
    views = {
        g.id: GroupView(
            id=g.id,
            name=g.name,
            position=g.position,
            capacity=g.capacity,
            effective_capacity=g.effective_capacity(programme),
        )
        for g in groups
    }
    counts = await db.execute(
        select(Membership.group_id, func.count())
        .where(Membership.programme_id == programme.id, Membership.group_id.is_not(None))
        .group_by(Membership.group_id)
    )
    for group_id, count in counts.tuples():
        if group_id in views:
            views[group_id].size = count
    facilitators = await db.execute(
        select(GroupFacilitator.group_id, User)
        .join(User, User.id == GroupFacilitator.user_id)
        .join(Group, Group.id == GroupFacilitator.group_id)
        .where(Group.programme_id == programme.id)
        .order_by(User.display_name, User.id)
    )
    for group_id, user in facilitators.tuples():
        views[group_id].facilitators.append(Person.of(user))
    return list(views.values())


async def list_members(
    db: AsyncSession, *, programme: Programme, with_invitations: bool = False
) -> list[MemberView]:
    """Everyone in the programme: hosts first, then facilitators, IT support, observers and
    participants, each by name."""
    rows = await db.execute(
        select(Membership, User, Group.name)
        .join(User, User.id == Membership.user_id)
        .outerjoin(Group, Group.id == Membership.group_id)
        .where(Membership.programme_id == programme.id)
    )
    facilitating: dict[int, list[tuple[int, str]]] = defaultdict(list)
    links = await db.execute(
        select(GroupFacilitator.user_id, Group.id, Group.name)
        .join(Group, Group.id == GroupFacilitator.group_id)
        .where(Group.programme_id == programme.id)
        .order_by(Group.position, Group.id)
    )
    for user_id, group_id, group_name in links.tuples():
        facilitating[user_id].append((group_id, group_name))
    expiries: dict[int, datetime] = {}
    if with_invitations:
        live = await db.execute(
            select(Invitation.user_id, func.max(Invitation.expires_at))
            .where(
                Invitation.programme_id == programme.id,
                Invitation.revoked_at.is_(None),
                Invitation.expires_at > utcnow(),
            )
            .group_by(Invitation.user_id)
        )
        expiries = {user_id: expires for user_id, expires in live.tuples()}
    members = [
        MemberView(
            membership_id=m.id,
            person=Person.of(user),
            email=user.email or "",
            role=Role(m.role),
            group_id=m.group_id,
            group_name=group_name,
            access=AccessNeeds.of(user),
            facilitator_of=facilitating.get(user.id, []),
            invite_expires_at=expiries.get(user.id),
        )
        for m, user, group_name in rows.tuples()
    ]
    members.sort(key=lambda v: (ROLE_ORDER[v.role], v.person.name.casefold(), v.membership_id))
    return members


@dataclass
class GroupPage:
    group: GroupView
    members: list[MemberView]


async def group_page(db: AsyncSession, *, programme: Programme, group_id: int) -> GroupPage:
    group = next(g for g in await list_groups(db, programme=programme) if g.id == group_id)
    rows = await db.execute(
        select(Membership, User)
        .join(User, User.id == Membership.user_id)
        .where(Membership.group_id == group_id)
        .order_by(User.display_name, User.id)
    )
    members = [
        MemberView(
            membership_id=m.id,
            person=Person.of(user),
            email=user.email or "",
            role=Role(m.role),
            group_id=group_id,
            group_name=group.name,
            access=AccessNeeds.of(user),
        )
        for m, user in rows.tuples()
    ]
    return GroupPage(group=group, members=members)


async def facilitated_group_ids(
    db: AsyncSession, *, programme: Programme, user_id: int
) -> set[int]:
    rows = await db.scalars(
        select(GroupFacilitator.group_id)
        .join(Group, Group.id == GroupFacilitator.group_id)
        .where(Group.programme_id == programme.id, GroupFacilitator.user_id == user_id)
    )
    return set(rows)
