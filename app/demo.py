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
from app.models import Group, GroupFacilitator, Membership, Programme, ProgrammeSession, Role, User
from app.people.invitations import issue_invitation
from app.security import Signer, hash_password

DEMO_TITLE = "Inclusive Leadership (demo)"
# example.org is reserved for examples, so no demo e-mail can reach a real person.
DEMO_DOMAIN = "demo.example.org"
DEMO_PASSWORD = "roundtable-demo"  # noqa: S105 - published on purpose; refused in production
HOST_EMAIL = f"host@{DEMO_DOMAIN}"
SUPPORT_EMAIL = f"support@{DEMO_DOMAIN}"
GROUP_COUNT = 10
GROUP_SIZE = 8
PARTICIPANT_COUNT = GROUP_COUNT * GROUP_SIZE
TIMEZONE = "Europe/London"
SESSION_START = time(14, 0)
SESSION_LENGTH = timedelta(hours=2)

# (first name, pronouns they share, how to say it where people often ask)
FIRST_NAMES: tuple[tuple[str, str, str], ...] = (
    ("Amara", "she/her", "ah-MAH-rah"),
    ("Oliver", "he/him", ""),
    ("Siobhan", "she/her", "shiv-AWN"),
    ("Kwame", "he/him", "KWAH-may"),
    ("Priya", "she/her", ""),
    ("Tomasz", "he/him", "TOH-mash"),
    ("Aoife", "she/her", "EE-fa"),
    ("Jordan", "they/them", ""),
    ("Fatima", "she/her", ""),
    ("Rhys", "he/him", "REES"),
    ("Mei", "she/her", "MAY"),
    ("Callum", "he/him", ""),
    ("Niamh", "she/her", "NEEV"),
    ("Oluwaseun", "he/him", "oh-loo-wah-SHAY-oon"),
    ("Zainab", "she/her", ""),
    ("Hamish", "he/him", ""),
    ("Siân", "she/her", "SHAHN"),
    ("Ravi", "he/him", ""),
    ("Alex", "they/them", ""),
    ("Chidinma", "she/her", "chee-DEEN-mah"),
    ("Ewan", "he/him", ""),
    ("Grace", "she/her", ""),
    ("Mohammed", "he/him", ""),
    ("Leah", "she/her", ""),
    ("Dafydd", "he/him", "DAV-ith"),
    ("Ayesha", "she/her", ""),
    ("Sam", "they/them", ""),
    ("Bronwen", "she/her", ""),
    ("Tariq", "he/him", ""),
    ("Ingrid", "she/her", ""),
    ("Kofi", "he/him", ""),
    ("Saoirse", "she/her", "SEER-sha"),
    ("Jamal", "he/him", ""),
    ("Eleanor", "she/her", ""),
    ("Wei", "he/him", "WAY"),
    ("Zoë", "she/her", ""),
    ("Declan", "he/him", ""),
    ("Harpreet", "she/her", ""),
    ("Robin", "they/them", ""),
    ("Nkechi", "she/her", "n-KETCH-ee"),
)
LAST_NAMES: tuple[str, ...] = (
    "Okafor", "Smith", "Patel", "O'Neill", "Kowalski", "Begum", "Jones", "Nguyen",
    "Campbell", "Mensah", "Ahmed", "Evans", "Chen", "MacLeod", "Adeyemi", "Kaur",
    "Hughes", "Hussain", "Murphy", "Taylor", "Osei", "Rahman", "Williams", "Singh",
    "Davies", "Wright", "Bello", "Khan", "Fraser", "Li", "Thomas", "Nowak",
    "Robinson", "Ali", "Doyle", "Edwards", "Mahmood", "Clarke", "Boateng", "Walsh",
    "Reid",
)  # fmt: skip
FACILITATOR_NAMES: tuple[tuple[str, str], ...] = (
    ("Adaeze Nwosu", "she/her"),
    ("Gareth Price", "he/him"),
    ("Nadia Karim", "she/her"),
    ("Lewis Anderson", "he/him"),
    ("Yasmin Chowdhury", "she/her"),
    ("Marcus Johnson", "he/him"),
    ("Ceri Morgan", "they/them"),
    ("Anjali Mehta", "she/her"),
    ("Fergus Stewart", "he/him"),
    ("Abena Asante", "she/her"),
)
HOST_NAME = ("Harriet Lindqvist", "she/her")
SUPPORT_NAME = ("Dev Sharma", "he/him")
ACCESS_NOTES: tuple[str, ...] = (
    "I lip-read, so please face the camera when you speak.",
    "I may step away for short breaks; I will catch up from the notes.",
    "I use a screen reader: please send papers as Word documents, not scans.",
    "A British Sign Language interpreter will join the sessions with me.",
    "I sometimes need a little longer to gather my thoughts before I answer.",
)

SESSIONS: tuple[tuple[str, int, str], ...] = (
    # (title, weeks after the first session, agenda)
    (
        "Welcome, and what brings us here",
        0,
        "14:00 Welcome and how we will work together\n"
        "14:20 In your groups: introductions and hopes for the programme\n"
        "15:10 Back together: what we heard\n"
        "15:40 Pre-reading for next time, and close",
    ),
    (
        "Power, privilege and voice",
        1,
        "14:00 Check-in\n"
        "14:15 Short talk: whose voices get heard at work?\n"
        "14:35 In your groups: a time you were, or were not, heard\n"
        "15:25 Back together: patterns across the groups\n"
        "15:50 Close",
    ),
    (
        "Listening across difference",
        2,
        "14:00 Check-in\n"
        "14:10 Practice in pairs and trios: listening without fixing\n"
        "15:00 In your groups: what made listening hard or easy\n"
        "15:40 Back together, and close",
    ),
    (
        "From insight to action",
        4,
        "14:00 Check-in after the reflection week\n"
        "14:15 The themes so far, from all ten groups\n"
        "14:35 In your groups: one change each of us will try\n"
        "15:30 Back together: commitments\n"
        "15:50 Close",
    ),
    (
        "Sharing what we found",
        5,
        "14:00 Welcome\n"
        "14:10 Each group shares its poster and findings\n"
        "15:20 What happens next with what we found\n"
        "15:45 Thanks and close",
    ),
)


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

    # One hash for every staff account: they share the demo password anyway, and argon2
    # is slow on purpose.
    staff_hash = hash_password(DEMO_PASSWORD)
    host = await _user(
        db, DemoPerson(HOST_NAME[0], HOST_EMAIL, HOST_NAME[1]), password_hash=staff_hash
    )
    support = await _user(
        db, DemoPerson(SUPPORT_NAME[0], SUPPORT_EMAIL, SUPPORT_NAME[1]), password_hash=staff_hash
    )
    groups = [
        Group(programme_id=programme.id, name=f"Group {n}", position=n)
        for n in range(1, GROUP_COUNT + 1)
    ]
    db.add_all(groups)
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
    await db.flush()

    roster: list[tuple[User, Role, Group | None]] = [(host, Role.HOST, None)]
    for facilitated, facilitator in zip(groups, facilitators, strict=True):
        db.add(GroupFacilitator(group_id=facilitated.id, user_id=facilitator.id))
        roster.append((facilitator, Role.FACILITATOR, facilitated))
    roster.append((support, Role.IT_SUPPORT, None))
    roster.extend(
        (person, Role.PARTICIPANT, groups[i // GROUP_SIZE]) for i, person in enumerate(participants)
    )
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
