"""Programmes and what a person sees of them."""

from __future__ import annotations

from dataclasses import dataclass, field
from zoneinfo import ZoneInfo, available_timezones

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app import audit
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

MIN_CAPACITY, MAX_CAPACITY = 2, 50


class ProgrammeError(ValueError):
    """A field-level problem with what was asked, with a message for the person."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(errors.values()))
        self.errors = errors


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


def valid_timezone(name: str) -> bool:
    return name in available_timezones()


def check_programme_fields(
    *, title: str, description: str, timezone: str, group_capacity: int | None
) -> dict[str, str]:
    errors: dict[str, str] = {}
    if not title.strip():
        errors["title"] = "Enter a title for the programme."
    elif len(title) > 200:
        errors["title"] = "The title must be at most 200 characters."
    if len(description) > 5000:
        errors["description"] = "The description must be at most 5,000 characters."
    if not valid_timezone(timezone):
        errors["timezone"] = f"“{timezone[:60]}” is not a time zone we know, such as Europe/London."
    if group_capacity is None or not MIN_CAPACITY <= group_capacity <= MAX_CAPACITY:
        errors["group_capacity"] = (
            f"Group size must be a whole number from {MIN_CAPACITY} to {MAX_CAPACITY}."
        )
    return errors


async def create_programme(
    db: AsyncSession,
    *,
    actor: User,
    title: str,
    description: str = "",
    timezone: str = "Europe/London",
    group_capacity: int = 8,
) -> Programme:
    errors = check_programme_fields(
        title=title, description=description, timezone=timezone, group_capacity=group_capacity
    )
    if errors:
        raise ProgrammeError(errors)
    programme = Programme(
        title=title.strip(),
        description=description.strip(),
        timezone=timezone,
        group_capacity=group_capacity,
    )
    db.add(programme)
    await db.flush()
    db.add(Membership(user_id=actor.id, programme_id=programme.id, role=Role.HOST.value))
    audit.record(
        db, actor=actor, action="programme.create", programme_id=programme.id, title=programme.title
    )
    await db.commit()
    return programme


async def update_programme(
    db: AsyncSession,
    *,
    actor: User,
    programme: Programme,
    title: str,
    description: str,
    timezone: str,
    group_capacity: int | None,
) -> Programme:
    errors = check_programme_fields(
        title=title, description=description, timezone=timezone, group_capacity=group_capacity
    )
    if errors:
        raise ProgrammeError(errors)
    assert group_capacity is not None
    changes = {
        k: v
        for k, v in {
            "title": title.strip(),
            "description": description.strip(),
            "timezone": timezone,
            "group_capacity": group_capacity,
        }.items()
        if getattr(programme, k) != v
    }
    for key, value in changes.items():
        setattr(programme, key, value)
    if changes:
        audit.record(
            db, actor=actor, action="programme.update", programme_id=programme.id, changes=changes
        )
    await db.commit()
    return programme


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
    facilitated = (
        await db.scalars(
            select(Group)
            .join(GroupFacilitator, GroupFacilitator.group_id == Group.id)
            .where(GroupFacilitator.user_id == user.id, Group.programme_id.in_(programme_ids))
            .order_by(Group.position, Group.name)
        )
    ).all()
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


def zone_label(timezone: str) -> str:
    now = utcnow().astimezone(ZoneInfo(timezone))
    return f"{timezone} (now {now.strftime('%Z')})"
