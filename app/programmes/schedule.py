"""A programme's sessions: dated webinars with an agenda and a recording link.

Times are stored in UTC. People enter and read them in the programme's time zone, so
this module turns wall-clock times into instants and back, DST gaps and overlaps included."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app import audit
from app.db import utcnow
from app.models import Paper, Programme, ProgrammeSession, User
from app.storage import Storage

TITLE_MAX = 200
AGENDA_MAX = 20_000
RECORDING_URL_MAX = 500
MAX_DURATION = timedelta(hours=12)
# Years outside this range are typing mistakes, and far-off years overflow when converted.
EARLIEST_YEAR, LATEST_YEAR = 2000, 2100
FALLBACK_ZONE = "Europe/London"

_LOCAL_INPUT = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2})?$")
_LINE_BREAKS = re.compile(r"\r\n?")


class ScheduleError(ValueError):
    """Field-level problems with a session, each with a message for the person."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(errors.values()))
        self.errors = errors


@dataclass
class SessionFields:
    """What a host enters for a session, with times already resolved to UTC."""

    title: str
    starts_at: datetime
    ends_at: datetime
    agenda: str = ""
    recording_url: str = ""


def programme_zone(programme: Programme) -> ZoneInfo:
    try:
        return ZoneInfo(programme.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo(FALLBACK_ZONE)


def zone_name(programme: Programme) -> str:
    return programme_zone(programme).key


def parse_local_time(value: str, zone: ZoneInfo) -> datetime:
    """A `datetime-local` value (wall-clock time in `zone`) as a UTC instant.

    A time skipped when the clocks go forward is refused; a time that happens twice when
    they go back means the first occurrence (fold=0)."""
    value = value.strip()
    if not value:
        raise ValueError("Enter a date and time.")
    if not _LOCAL_INPUT.match(value):
        raise ValueError(
            "Enter the date and time as year-month-day hour:minute, e.g. 2025-10-28 14:30."
        )
    try:
        naive = datetime.fromisoformat(value.replace(" ", "T"))
    except ValueError:
        raise ValueError("That date does not exist; check the day and month.") from None
    if not EARLIEST_YEAR <= naive.year <= LATEST_YEAR:
        raise ValueError(f"Choose a year from {EARLIEST_YEAR} to {LATEST_YEAR}.")
    instant = naive.replace(tzinfo=zone, fold=0).astimezone(UTC)
    # A wall-clock time that does not survive the round trip fell in a spring-forward gap.
    if instant.astimezone(zone).replace(tzinfo=None) != naive:
        raise ValueError(
            f"{naive:%H:%M} on {naive:%d %B %Y} does not exist in {zone.key}: the clocks go "
            "forward then. Choose a time before or after the change."
        )
    return instant


def local_input_value(instant: datetime, zone: ZoneInfo) -> str:
    """The value to put back in a `datetime-local` field."""
    return instant.astimezone(zone).strftime("%Y-%m-%dT%H:%M")


def clean_title(value: str) -> str:
    return " ".join("".join(c for c in value if unicodedata.category(c) != "Cc").split())


def clean_agenda(value: str) -> str:
    """Plain text with its line breaks; other control characters are dropped (PostgreSQL
    refuses NUL, and the rest only confuse screen readers)."""
    value = _LINE_BREAKS.sub("\n", value)
    return "".join(c for c in value if c in "\n\t" or unicodedata.category(c) != "Cc").strip()


def recording_url_problem(url: str) -> str | None:
    """Why a recording link is unacceptable, or None. Only http(s) links to a named host:
    never javascript:, data: or anything else a browser would run."""
    if not url:
        return None
    if len(url) > RECORDING_URL_MAX:
        return f"The link must be at most {RECORDING_URL_MAX} characters."
    if any(c.isspace() or unicodedata.category(c) in ("Cc", "Cf") for c in url):
        return "The link must not contain spaces or hidden characters."
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        return "That does not look like a web address."
    if parts.scheme.lower() not in ("http", "https"):
        return "The link must be a web address starting with https:// (or http://)."
    if not host:
        return "The link must include a website name, e.g. https://example.org/recording."
    if parts.username is not None or parts.password is not None:
        return "The link must not contain a user name or password."
    return None


def check_session_fields(fields: SessionFields) -> dict[str, str]:
    errors: dict[str, str] = {}
    if not fields.title:
        errors["title"] = "Enter a title for the session."
    elif len(fields.title) > TITLE_MAX:
        errors["title"] = f"The title must be at most {TITLE_MAX} characters."
    if fields.ends_at <= fields.starts_at:
        errors["ends_at"] = "The session must end after it starts."
    elif fields.ends_at - fields.starts_at > MAX_DURATION:
        errors["ends_at"] = "A session can last at most 12 hours."
    if len(fields.agenda) > AGENDA_MAX:
        errors["agenda"] = f"The agenda must be at most {AGENDA_MAX:,} characters."
    problem = recording_url_problem(fields.recording_url)
    if problem:
        errors["recording_url"] = problem
    return errors


def fields_from_form(
    *,
    programme: Programme,
    title: str,
    starts_at: str,
    ends_at: str,
    agenda: str,
    recording_url: str,
) -> SessionFields:
    """Read the HTML form (times in the programme's zone); raise ScheduleError with every
    problem found, not just the first."""
    zone = programme_zone(programme)
    errors: dict[str, str] = {}
    times: dict[str, datetime] = {}
    for name, raw in (("starts_at", starts_at), ("ends_at", ends_at)):
        try:
            times[name] = parse_local_time(raw, zone)
        except ValueError as exc:
            errors[name] = str(exc)
    fields = SessionFields(
        title=clean_title(title),
        starts_at=times.get("starts_at", utcnow()),
        ends_at=times.get("ends_at", utcnow() + timedelta(hours=1)),
        agenda=clean_agenda(agenda),
        recording_url=recording_url.strip(),
    )
    for name, message in check_session_fields(fields).items():
        # A time that could not be read says so; no second message about its order.
        if name in ("starts_at", "ends_at") and ("starts_at" in errors or "ends_at" in errors):
            continue
        errors.setdefault(name, message)
    if errors:
        order = ("title", "starts_at", "ends_at", "agenda", "recording_url")
        raise ScheduleError({name: errors[name] for name in order if name in errors})
    return fields


def normalise(fields: SessionFields) -> SessionFields:
    """Clean API input the same way as the form and check it."""
    cleaned = SessionFields(
        title=clean_title(fields.title),
        starts_at=fields.starts_at.astimezone(UTC),
        ends_at=fields.ends_at.astimezone(UTC),
        agenda=clean_agenda(fields.agenda),
        recording_url=fields.recording_url.strip(),
    )
    errors = check_session_fields(cleaned)
    if errors:
        raise ScheduleError(errors)
    return cleaned


def current_fields(session: ProgrammeSession) -> SessionFields:
    return SessionFields(
        title=session.title,
        starts_at=session.starts_at,
        ends_at=session.ends_at,
        agenda=session.agenda,
        recording_url=session.recording_url,
    )


async def list_sessions(db: AsyncSession, *, programme_id: int) -> list[ProgrammeSession]:
    rows = await db.scalars(
        select(ProgrammeSession)
        .where(ProgrammeSession.programme_id == programme_id)
        .order_by(ProgrammeSession.starts_at, ProgrammeSession.id)
    )
    return list(rows.all())


def next_session(
    sessions: list[ProgrammeSession], *, now: datetime | None = None
) -> ProgrammeSession | None:
    """The session happening now, or else the next to start."""
    now = now or utcnow()
    upcoming = [s for s in sessions if s.ends_at > now]
    return min(upcoming, key=lambda s: s.starts_at, default=None)


async def create_session(
    db: AsyncSession, *, programme: Programme, actor: User, fields: SessionFields
) -> ProgrammeSession:
    fields = normalise(fields)
    session = ProgrammeSession(
        programme_id=programme.id,
        title=fields.title,
        starts_at=fields.starts_at,
        ends_at=fields.ends_at,
        agenda=fields.agenda,
        recording_url=fields.recording_url,
    )
    db.add(session)
    await db.flush()
    audit.record(
        db,
        actor=actor,
        action="session.create",
        programme_id=programme.id,
        target=f"session:{session.id}",
        title=session.title,
        starts_at=session.starts_at.isoformat(),
    )
    await db.commit()
    return session


async def update_session(
    db: AsyncSession, *, session: ProgrammeSession, actor: User, fields: SessionFields
) -> ProgrammeSession:
    fields = normalise(fields)
    changed = [
        name
        for name in ("title", "starts_at", "ends_at", "agenda", "recording_url")
        if getattr(session, name) != getattr(fields, name)
    ]
    for name in changed:
        setattr(session, name, getattr(fields, name))
    if changed:
        audit.record(
            db,
            actor=actor,
            action="session.update",
            programme_id=session.programme_id,
            target=f"session:{session.id}",
            changed=changed,
        )
        await db.commit()
    return session


async def delete_session(
    db: AsyncSession, *, session: ProgrammeSession, actor: User, storage: Storage
) -> None:
    """Delete the session and its papers; their files go once the deletion is committed."""
    keys = list(
        (await db.scalars(select(Paper.storage_key).where(Paper.session_id == session.id))).all()
    )
    audit.record(
        db,
        actor=actor,
        action="session.delete",
        programme_id=session.programme_id,
        target=f"session:{session.id}",
        title=session.title,
        papers=len(keys),
    )
    await db.delete(session)
    await db.commit()
    for key in keys:
        await storage.delete(key)
