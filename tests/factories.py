"""Factories for test data: people, programmes with roles, groups."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Group, GroupFacilitator, Membership, Programme, ProgrammeSession, Role, User
from app.security import hash_password

_counter = itertools.count(1)
PASSWORD = "correct horse battery"
_password_hashes: dict[str, str] = {}


def password_hash(password: str) -> str:
    """Argon2 is slow on purpose; tests hash each password once."""
    if password not in _password_hashes:
        _password_hashes[password] = hash_password(password)
    return _password_hashes[password]


async def make_user(
    db: AsyncSession,
    *,
    name: str | None = None,
    email: str | None = None,
    password: str | None = None,
    is_admin: bool = False,
    **fields: object,
) -> User:
    n = next(_counter)
    user = User(
        display_name=name or f"Person {n}",
        email=email if email is not None else f"person{n}@example.org",
        password_hash=password_hash(password) if password else None,
        is_admin=is_admin,
        **fields,
    )
    db.add(user)
    await db.flush()
    return user


async def make_programme(
    db: AsyncSession, *, title: str = "Inclusive Leadership", capacity: int = 8
) -> Programme:
    programme = Programme(title=title, group_capacity=capacity)
    db.add(programme)
    await db.flush()
    return programme


async def add_member(
    db: AsyncSession, programme: Programme, user: User, role: Role, group: Group | None = None
) -> Membership:
    membership = Membership(
        user_id=user.id,
        programme_id=programme.id,
        role=role.value,
        group_id=group.id if group else None,
    )
    db.add(membership)
    await db.flush()
    return membership


async def make_group(
    db: AsyncSession,
    programme: Programme,
    *,
    name: str | None = None,
    facilitators: list[User] = (),  # type: ignore[assignment]
) -> Group:
    group = Group(programme_id=programme.id, name=name or f"Group {next(_counter)}")
    db.add(group)
    await db.flush()
    for f in facilitators:
        db.add(GroupFacilitator(group_id=group.id, user_id=f.id))
    await db.flush()
    return group


async def make_session(
    db: AsyncSession, programme: Programme, *, title: str = "Webinar 1", days_ahead: int = 7
) -> ProgrammeSession:
    start = datetime.now(UTC).replace(microsecond=0, second=0) + timedelta(days=days_ahead)
    session = ProgrammeSession(
        programme_id=programme.id, title=title, starts_at=start, ends_at=start + timedelta(hours=2)
    )
    db.add(session)
    await db.flush()
    return session


async def add_participants(
    db: AsyncSession, programme: Programme, count: int, *, name: str = "Participant"
) -> list[User]:
    """`count` participants of the programme in no group (so in the plenary): a crowd."""
    people = []
    for n in range(count):
        person = await make_user(db, name=f"{name} {n}")
        await add_member(db, programme, person, Role.PARTICIPANT)
        people.append(person)
    return people


class World:
    """One programme with a person in every role, two groups and a session."""

    programme: Programme
    admin: User
    host: User
    facilitator_a: User
    facilitator_b: User
    participant_a: User
    participant_b: User
    it_support: User
    observer: User
    outsider: User
    group_a: Group
    group_b: Group
    session: ProgrammeSession
    other_programme: Programme
    other_group: Group
    other_session: ProgrammeSession


async def make_world(db: AsyncSession) -> World:
    w = World()
    w.programme = await make_programme(db)
    w.admin = await make_user(db, name="Ada Admin", is_admin=True, password=PASSWORD)
    w.host = await make_user(db, name="Hana Host", password=PASSWORD)
    w.facilitator_a = await make_user(db, name="Fola Facilitator", password=PASSWORD)
    w.facilitator_b = await make_user(db, name="Finn Facilitator", password=PASSWORD)
    w.participant_a = await make_user(db, name="Priya Participant", pronouns="she/her")
    w.participant_b = await make_user(db, name="Pat Participant")
    w.it_support = await make_user(db, name="Ian IT", password=PASSWORD)
    w.observer = await make_user(db, name="Olu Observer")
    w.outsider = await make_user(db, name="Otto Outsider")
    w.group_a = await make_group(db, w.programme, name="Group A", facilitators=[w.facilitator_a])
    w.group_b = await make_group(db, w.programme, name="Group B", facilitators=[w.facilitator_b])
    await add_member(db, w.programme, w.host, Role.HOST)
    await add_member(db, w.programme, w.facilitator_a, Role.FACILITATOR)
    await add_member(db, w.programme, w.facilitator_b, Role.FACILITATOR)
    await add_member(db, w.programme, w.participant_a, Role.PARTICIPANT, w.group_a)
    await add_member(db, w.programme, w.participant_b, Role.PARTICIPANT, w.group_b)
    await add_member(db, w.programme, w.it_support, Role.IT_SUPPORT)
    await add_member(db, w.programme, w.observer, Role.OBSERVER)
    w.session = await make_session(db, w.programme)
    w.other_programme = await make_programme(db, title="Another programme")
    w.other_group = await make_group(db, w.other_programme, name="Elsewhere")
    w.other_session = await make_session(db, w.other_programme, title="Elsewhere webinar")
    await add_member(db, w.other_programme, w.outsider, Role.PARTICIPANT, w.other_group)
    await db.commit()
    return w
