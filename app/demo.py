"""A demo programme to explore Roundtable with: 80 participants in ten groups of eight, a
facilitator for each group, a host, IT support and five sessions over six weeks.

Only for development and trying things out: it is refused in production, and every staff
account shares one published password.
"""

from __future__ import annotations

import csv
import os
import unicodedata
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app import audit
from app.config import Settings
from app.demo_data import (
    ACCESS_NOTES,
    FACILITATOR_NAMES,
    FIRST_NAMES,
    HOST_NAME,
    INTERPRETER_NAME,
    LAST_NAMES,
    SESSIONS,
    SUPPORT_NAME,
)
from app.live import channels
from app.models import Group, GroupFacilitator, Membership, Programme, ProgrammeSession, Role, User
from app.people.invitations import issue_invitation
from app.security import Signer, hash_password
from app.stage.models import StageRole, StageRoleKind, StageTile, TileKind

DEMO_TITLE = "Inclusive Leadership (demo)"
# example.org is reserved for examples, so no demo e-mail can reach a real person.
DEMO_DOMAIN = "demo.example.org"
DEMO_PASSWORD = "roundtable-demo"  # noqa: S105 - published on purpose; refused in production
HOST_EMAIL = f"host@{DEMO_DOMAIN}"
SUPPORT_EMAIL = f"support@{DEMO_DOMAIN}"
INTERPRETER_EMAIL = f"interpreter@{DEMO_DOMAIN}"
GROUP_COUNT = 10
GROUP_SIZE = 8
PARTICIPANT_COUNT = GROUP_COUNT * GROUP_SIZE
TIMEZONE = "Europe/London"
SESSION_START = time(14, 0)
SESSION_LENGTH = timedelta(hours=2)


class DemoRefused(Exception):
    """The demo is not for production: its staff share a published password."""


@dataclass(frozen=True)
class DemoPerson:
    name: str
    email: str
    pronouns: str
    pronunciation: str = ""


@dataclass(frozen=True)
class DemoLink:
    name: str
    email: str
    group: str
    role: str
    link: str


@dataclass(frozen=True)
class DemoSeed:
    programme_id: int
    host_email: str
    password: str
    links: list[DemoLink]

    @property
    def participant_links(self) -> list[DemoLink]:
        return [link for link in self.links if link.role == Role.PARTICIPANT.value]


def _email_local_part(name: str) -> str:
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return ".".join(
        "".join(c for c in word.lower() if c.isalnum() or c == "-") for word in ascii_name.split()
    )


def demo_participants() -> list[DemoPerson]:
    """Eighty different people, always the same ones: the 41 surnames against the 40 first
    names never repeat a pair within 80, because 41 is prime and 17 is not a multiple of it."""
    people: list[DemoPerson] = []
    for i in range(PARTICIPANT_COUNT):
        first, pronouns, pronunciation = FIRST_NAMES[i % len(FIRST_NAMES)]
        last = LAST_NAMES[(i * 17 + 5) % len(LAST_NAMES)]
        name = f"{first} {last}"
        people.append(
            DemoPerson(
                name=name,
                email=f"{_email_local_part(name)}@{DEMO_DOMAIN}",
                # About half choose to show their pronouns, and a few how to say their name.
                pronouns=pronouns if i % 2 == 0 else "",
                pronunciation=pronunciation if i % 3 != 1 else "",
            )
        )
    return people


def _access_needs(i: int) -> dict[str, object]:
    """A realistic spread: captions for many, large text and screen readers for some."""
    return {
        "captions_on": i % 4 == 0,
        "large_text": i % 7 == 3,
        "screen_reader": i % 16 == 5,
        "high_contrast": i % 11 == 2,
        "reduced_motion": i % 13 == 6,
        "low_bandwidth": i % 6 == 1,
        "access_notes": ACCESS_NOTES[(i // 9) % len(ACCESS_NOTES)] if i % 9 == 4 else "",
    }


def next_tuesday(today: date) -> date:
    """The first Tuesday after `today` (a week on, when today is a Tuesday)."""
    return today + timedelta(days=(1 - today.weekday()) % 7 or 7)


def session_times(first_day: date, weeks_after: int) -> tuple[datetime, datetime]:
    local = datetime.combine(
        first_day + timedelta(weeks=weeks_after), SESSION_START, tzinfo=ZoneInfo(TIMEZONE)
    )
    return local.astimezone(UTC), (local + SESSION_LENGTH).astimezone(UTC)


async def _user(db: AsyncSession, person: DemoPerson, **fields: object) -> User:
    """The demo account with this e-mail address, or a new one (existing accounts are kept
    as they are)."""
    existing = await db.scalar(select(User).where(func.lower(User.email) == person.email))
    if existing is not None:
        return existing
    user = User(
        display_name=person.name,
        email=person.email,
        pronouns=person.pronouns,
        name_pronunciation=person.pronunciation,
        **fields,
    )
    db.add(user)
    return user


async def seed_demo(
    db: AsyncSession, *, settings: Settings, signer: Signer, today: date | None = None
) -> DemoSeed | None:
    """Add the demo programme, unless the database already has any programme (then None)."""
    if settings.environment == "production":
        raise DemoRefused(
            "The demo programme is not available in production: its staff accounts share a "
            "published password."
        )
    if await db.scalar(select(Programme.id).limit(1)) is not None:
        return None
    programme = Programme(
        title=DEMO_TITLE,
        description=(
            "A six-week programme for people who lead teams, on making room for every voice. "
            "This is demonstration data: the people in it are made up."
        ),
        timezone=TIMEZONE,
        group_capacity=GROUP_SIZE,
    )
    db.add(programme)
    await db.flush()
    first_day = next_tuesday(today or datetime.now(ZoneInfo(TIMEZONE)).date())
    _add_sessions(db, programme=programme, first_day=first_day)
    groups = _add_groups(db, programme=programme)
    people = await _add_people(db)
    await db.flush()  # the groups' and people's ids, for the links between them
    roster = _add_facilitations(db, groups=groups, people=people)
    links = await _add_memberships(
        db, programme=programme, roster=roster, settings=settings, signer=signer
    )
    await _add_stage(db, programme=programme, people=people)
    audit.record(
        db,
        actor=None,
        action="demo.seeded",
        programme_id=programme.id,
        target=f"programme:{programme.id}",
        people=len(roster),
    )
    await db.commit()
    return DemoSeed(
        programme_id=programme.id, host_email=HOST_EMAIL, password=DEMO_PASSWORD, links=links
    )


def _add_sessions(db: AsyncSession, *, programme: Programme, first_day: date) -> None:
    for number, (title, weeks_after, agenda) in enumerate(SESSIONS, start=1):
        starts_at, ends_at = session_times(first_day, weeks_after)
        db.add(
            ProgrammeSession(
                programme_id=programme.id,
                title=f"Session {number}: {title}",
                starts_at=starts_at,
                ends_at=ends_at,
                agenda=agenda,
            )
        )


@dataclass(frozen=True)
class _DemoPeople:
    host: User
    support: User
    interpreter: User
    facilitators: list[User]  # one for each group, in order
    participants: list[User]


# Who is in the demo programme: each person with their role and, for participants and
# facilitators, their group.
DemoRoster = list[tuple[User, Role, Group | None]]


def _add_groups(db: AsyncSession, *, programme: Programme) -> list[Group]:
    groups = [
        Group(programme_id=programme.id, name=f"Group {n}", position=n)
        for n in range(1, GROUP_COUNT + 1)
    ]
    db.add_all(groups)
    return groups


async def _add_people(db: AsyncSession) -> _DemoPeople:
    """The host, IT support, a facilitator for each group and the eighty participants."""
    # One hash for every staff account: they share the demo password anyway, and argon2
    # is slow on purpose.
    staff_hash = hash_password(DEMO_PASSWORD)
    host = await _user(
        db, DemoPerson(HOST_NAME[0], HOST_EMAIL, HOST_NAME[1]), password_hash=staff_hash
    )
    support = await _user(
        db, DemoPerson(SUPPORT_NAME[0], SUPPORT_EMAIL, SUPPORT_NAME[1]), password_hash=staff_hash
    )
    interpreter = await _user(
        db,
        DemoPerson(INTERPRETER_NAME[0], INTERPRETER_EMAIL, INTERPRETER_NAME[1]),
        password_hash=staff_hash,
    )
    facilitators = [
        await _user(
            db,
            DemoPerson(name, f"facilitator{n}@{DEMO_DOMAIN}", pronouns),
            password_hash=staff_hash,
        )
        for n, (name, pronouns) in enumerate(FACILITATOR_NAMES, start=1)
    ]
    participants = [
        await _user(db, person, **_access_needs(i)) for i, person in enumerate(demo_participants())
    ]
    return _DemoPeople(host, support, interpreter, facilitators, participants)


def _add_facilitations(db: AsyncSession, *, groups: list[Group], people: _DemoPeople) -> DemoRoster:
    """Link each facilitator to their group; everyone in order, with their role and group."""
    roster: DemoRoster = [(people.host, Role.HOST, None)]
    for facilitated, facilitator in zip(groups, people.facilitators, strict=True):
        db.add(GroupFacilitator(group_id=facilitated.id, user_id=facilitator.id))
        roster.append((facilitator, Role.FACILITATOR, facilitated))
    roster.append((people.support, Role.IT_SUPPORT, None))
    # The interpreter is in the programme with the least access (an observer sees the
    # plenary); being named and pinned for a session is what puts them on its stage.
    roster.append((people.interpreter, Role.OBSERVER, None))
    roster.extend(
        (person, Role.PARTICIPANT, groups[i // GROUP_SIZE])
        for i, person in enumerate(people.participants)
    )
    return roster


async def _add_memberships(
    db: AsyncSession,
    *,
    programme: Programme,
    roster: DemoRoster,
    settings: Settings,
    signer: Signer,
) -> list[DemoLink]:
    """Everyone's membership, and a sign-in link for each person without a password."""
    links: list[DemoLink] = []
    for user, role, group in roster:
        db.add(
            Membership(
                user_id=user.id,
                programme_id=programme.id,
                role=role.value,
                # Facilitators are linked to their group through GroupFacilitator.
                group_id=group.id if group is not None and role is Role.PARTICIPANT else None,
            )
        )
        if user.password_hash:
            continue  # staff sign in with the demo password; a link cannot sign them in
        await db.flush()  # the membership exists before its link is made
        invite = await issue_invitation(
            db,
            signer=signer,
            base_url=settings.base_url,
            user=user,
            programme_id=programme.id,
            created_by=None,
            valid_days=settings.invite_max_age_days,
        )
        links.append(
            DemoLink(
                name=user.display_name,
                email=user.email or "",
                group=group.name if group is not None else "",
                role=role.value,
                link=invite.link,
            )
        )
    return links


async def _add_stage(db: AsyncSession, *, programme: Programme, people: _DemoPeople) -> None:
    """The first session's stage: the first facilitator named as a presenter, and the
    interpreter named and pinned (their page asks them to turn their camera on)."""
    first = await db.scalar(
        select(ProgrammeSession)
        .where(ProgrammeSession.programme_id == programme.id)
        .order_by(ProgrammeSession.starts_at)
        .limit(1)
    )
    assert first is not None
    presenter = people.facilitators[0]
    db.add(StageRole(session_id=first.id, user_id=presenter.id, role=StageRoleKind.PRESENTER.value))
    db.add(
        StageRole(
            session_id=first.id,
            user_id=people.interpreter.id,
            role=StageRoleKind.INTERPRETER.value,
            assigned_by_id=people.host.id,
        )
    )
    db.add(
        StageTile(
            session_id=first.id,
            channel=channels.plenary(first.id),
            user_id=people.interpreter.id,
            kind=TileKind.INTERPRETER.value,
            pinned_by_id=people.host.id,
        )
    )


async def demo_host_exists(db: AsyncSession) -> bool:
    return await db.scalar(select(User.id).where(User.email == HOST_EMAIL)) is not None


def write_links_csv(path: Path, links: list[DemoLink]) -> None:
    """Everyone's sign-in link in one file, readable by its owner only (the links sign in)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with open(fd, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["name", "email", "group", "role", "link"])
        for link in links:
            writer.writerow([link.name, link.email, link.group, link.role, link.link])
