"""What a person sees of programmes: their own on the home page (role, group, facilitators,
sessions), who they will be with in a session's lobby, a group's facilitators, and how many
members a programme has in each role."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import utcnow
from app.models import (
    Group,
    GroupFacilitator,
    Membership,
    MembershipStatus,
    Programme,
    ProgrammeSession,
    Role,
    User,
)


@dataclass
class MyProgramme:
    """One programme as its member sees it on their home page."""

    programme: Programme
    role: Role
    group: Group | None
    facilitators: list[User]
    facilitates: list[Group]
    next_session: ProgrammeSession | None
    sessions: list[ProgrammeSession] = field(default_factory=list)


async def facilitators_of(db: AsyncSession, *, group_ids: list[int]) -> dict[int, list[User]]:
    if not group_ids:
        return {}
    rows = await db.execute(
        select(GroupFacilitator.group_id, User)
        .join(User, User.id == GroupFacilitator.user_id)
        .where(GroupFacilitator.group_id.in_(group_ids))
        .order_by(User.display_name)
    )
    out: dict[int, list[User]] = {gid: [] for gid in group_ids}
    for group_id, user in rows.all():
        out[group_id].append(user)
    return out


async def my_programmes(db: AsyncSession, *, user: User) -> list[MyProgramme]:
    """Every programme the person belongs to (administrators: every programme), with their
    group, facilitators and the next session."""
    memberships = await _active_memberships(db, user_id=user.id)
    query = select(Programme).order_by(Programme.created_at.desc(), Programme.id.desc())
    if not user.is_admin:
        query = query.where(Programme.id.in_(list(memberships)))
    programmes = (await db.scalars(query)).all()
    if not programmes:
        return []
    programme_ids = [p.id for p in programmes]
    group_ids = [m.group_id for m in memberships.values() if m.group_id is not None]
    groups = {
        g.id: g for g in (await db.scalars(select(Group).where(Group.id.in_(group_ids)))).all()
    }
    facilitators = await facilitators_of(db, group_ids=group_ids)
    facilitated = await facilitated_groups(db, user_id=user.id, programme_ids=programme_ids)
    sessions = (
        await db.scalars(
            select(ProgrammeSession)
            .where(ProgrammeSession.programme_id.in_(programme_ids))
            .order_by(ProgrammeSession.starts_at)
        )
    ).all()
    now = utcnow()
    result = []
    for programme in programmes:
        membership = memberships.get(programme.id)
        group = groups.get(membership.group_id) if membership and membership.group_id else None
        own_sessions = [s for s in sessions if s.programme_id == programme.id]
        upcoming = [s for s in own_sessions if s.ends_at > now]
        result.append(
            MyProgramme(
                programme=programme,
                role=Role(membership.role) if membership else Role.HOST,
                group=group,
                facilitators=facilitators.get(group.id, []) if group else [],
                facilitates=[g for g in facilitated if g.programme_id == programme.id],
                next_session=upcoming[0] if upcoming else None,
                sessions=own_sessions,
            )
        )
    return result


async def _active_memberships(db: AsyncSession, *, user_id: int) -> dict[int, Membership]:
    """The person's active memberships, by programme id."""
    memberships = await db.scalars(
        select(Membership).where(
            Membership.user_id == user_id, Membership.status == MembershipStatus.ACTIVE.value
        )
    )
    return {m.programme_id: m for m in memberships.all()}


async def member_counts(db: AsyncSession, *, programme_id: int) -> dict[str, int]:
    rows = await db.execute(
        select(Membership.role, func.count())
        .where(Membership.programme_id == programme_id)
        .group_by(Membership.role)
    )
    return {role: count for role, count in rows.all()}


async def facilitated_groups(
    db: AsyncSession, *, user_id: int, programme_ids: list[int]
) -> list[Group]:
    """The groups the person facilitates in these programmes, in the programmes' order."""
    groups = await db.scalars(
        select(Group)
        .join(GroupFacilitator, GroupFacilitator.group_id == Group.id)
        .where(GroupFacilitator.user_id == user_id, Group.programme_id.in_(programme_ids))
        .order_by(Group.position, Group.name)
    )
    return list(groups.all())


@dataclass
class LobbyPeople:
    """Who a member will be with: their group and its facilitators, or the groups they run."""

    group: Group | None = None
    facilitators: list[User] = field(default_factory=list)
    facilitates: list[Group] = field(default_factory=list)


async def lobby_people(
    db: AsyncSession, *, user: User, membership: Membership | None
) -> LobbyPeople:
    people = LobbyPeople()
    if membership is None:
        return people
    if membership.group_id is not None:
        people.group = await db.get(Group, membership.group_id)
        people.facilitators = (await facilitators_of(db, group_ids=[membership.group_id]))[
            membership.group_id
        ]
    people.facilitates = await facilitated_groups(
        db, user_id=user.id, programme_ids=[membership.programme_id]
    )
    return people
