"""Sessions as iCalendar (RFC 5545) files that calendar apps can import."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime

from icalendar import Calendar, Event
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import utcnow
from app.models import Membership, MembershipStatus, Programme, ProgrammeSession, User
from app.programmes.schedule import programme_zone

PRODID = "-//Roundtable//Roundtable sessions//EN"
UID_DOMAIN = "roundtable"
# Calendar apps show a few paragraphs at most; the lobby page has the full agenda.
DESCRIPTION_MAX = 1_500


def session_uid(session: ProgrammeSession) -> str:
    """Stable for the life of the session, so re-importing updates rather than duplicates."""
    return f"session-{session.id}@{UID_DOMAIN}"


def lobby_url(base_url: str, session: ProgrammeSession) -> str:
    return f"{base_url.rstrip('/')}/programmes/{session.programme_id}/sessions/{session.id}"


def _shorten(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    cut = text[:limit]
    # End at a paragraph, line or word break when there is one reasonably near the limit.
    for sep in ("\n\n", "\n", " "):
        at = cut.rfind(sep)
        if at > limit * 0.6:
            cut = cut[:at]
            break
    return cut.rstrip() + " …"


def _description(session: ProgrammeSession, url: str) -> str:
    parts = []
    if session.agenda:
        agenda = _shorten(session.agenda, DESCRIPTION_MAX)
        parts.append(agenda)
        if agenda != session.agenda:
            parts.append("The full agenda is on the session page.")
    parts.append(f"Session page: {url}")
    return "\n\n".join(parts)


def session_event(
    session: ProgrammeSession, programme: Programme, *, base_url: str, stamp: datetime
) -> Event:
    zone = programme_zone(programme)
    url = lobby_url(base_url, session)
    event = Event()
    event.add("uid", session_uid(session))
    event.add("dtstamp", stamp)
    event.add("dtstart", session.starts_at.astimezone(zone))
    event.add("dtend", session.ends_at.astimezone(zone))
    event.add("summary", f"{programme.title}: {session.title}")
    event.add("description", _description(session, url))
    event.add("url", url)
    event.add("location", url)
    return event


def build_calendar(
    items: Sequence[tuple[ProgrammeSession, Programme]], *, base_url: str, name: str
) -> bytes:
    """One VCALENDAR with a VEVENT per session and the VTIMEZONEs they refer to."""
    calendar = Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("method", "PUBLISH")
    calendar.add("x-wr-calname", name)
    stamp = utcnow().replace(microsecond=0)
    for session, programme in items:
        calendar.add_component(session_event(session, programme, base_url=base_url, stamp=stamp))
    if items:
        # Time-zone rules only for the years the sessions span, to keep the file small.
        first = min(s.starts_at for s, _ in items)
        last = max(s.ends_at for s, _ in items)
        calendar.add_missing_timezones(
            first_date=date(first.year - 1, 1, 1), last_date=date(last.year + 2, 1, 1)
        )
    result: bytes = calendar.to_ical()
    return result


async def sessions_for_person(
    db: AsyncSession, *, user: User
) -> list[tuple[ProgrammeSession, Programme]]:
    """Every session of every programme the person is a member of (administrators too:
    only the programmes they belong to, not every programme on the server)."""
    rows = await db.execute(
        select(ProgrammeSession, Programme)
        .join(Programme, Programme.id == ProgrammeSession.programme_id)
        .join(Membership, Membership.programme_id == Programme.id)
        .where(Membership.user_id == user.id, Membership.status == MembershipStatus.ACTIVE.value)
        .order_by(ProgrammeSession.starts_at, ProgrammeSession.id)
    )
    return [(session, programme) for session, programme in rows.tuples().all()]


def calendar_filename(text: str) -> str:
    safe = "".join(c if c.isascii() and (c.isalnum() or c in "-_") else "-" for c in text)
    safe = "-".join(part for part in safe.split("-") if part)[:60]
    return f"{safe or 'sessions'}.ics"
