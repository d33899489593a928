"""Calendar (.ics) downloads of sessions."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from icalendar import Calendar

from app.models import Programme, ProgrammeSession, Role
from app.programmes.calendar import DESCRIPTION_MAX, build_calendar
from tests.factories import add_member, make_world


def parse(body: bytes) -> Calendar:
    return Calendar.from_ical(body)


async def test_session_ics_parses_with_the_right_start(db, browser_factory) -> None:
    w = await make_world(db)
    # After the October change: 10:00 GMT is 10:00 UTC; in summer it would be 09:00 UTC.
    w.session.starts_at = datetime(2025, 10, 28, 10, 0, tzinfo=UTC)
    w.session.ends_at = datetime(2025, 10, 28, 12, 0, tzinfo=UTC)
    w.session.title = "Week 3; listening, together"
    w.session.agenda = "Welcome\nBreakouts"
    await db.commit()
    participant = browser_factory(w.participant_a)
    response = await participant.get(
        f"/programmes/{w.programme.id}/sessions/{w.session.id}/calendar.ics"
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/calendar; charset=utf-8"
    assert response.headers["content-disposition"].startswith("attachment;")
    assert ".ics" in response.headers["content-disposition"]

    calendar = parse(response.content)
    [event] = calendar.walk("VEVENT")
    start = event.decoded("dtstart")
    assert start == datetime(2025, 10, 28, 10, 0, tzinfo=UTC)
    assert start.utcoffset() is not None
    assert event["dtstart"].params["TZID"] == "Europe/London"
    assert [tz["TZID"] for tz in calendar.walk("VTIMEZONE")] == ["Europe/London"]
    assert event.decoded("dtend") == datetime(2025, 10, 28, 12, 0, tzinfo=UTC)
    assert str(event["uid"]) == f"session-{w.session.id}@roundtable"
    assert str(event["summary"]) == "Inclusive Leadership: Week 3; listening, together"
    lobby = f"http://testserver/programmes/{w.programme.id}/sessions/{w.session.id}"
    assert str(event["url"]) == lobby
    description = str(event["description"])
    assert description.startswith("Welcome\nBreakouts") and lobby in description


async def test_summer_session_keeps_its_local_time(db, browser_factory) -> None:
    w = await make_world(db)
    w.session.starts_at = datetime(2025, 6, 3, 13, 30, tzinfo=UTC)
    w.session.ends_at = datetime(2025, 6, 3, 15, 0, tzinfo=UTC)
    await db.commit()
    host = browser_factory(w.host)
    response = await host.get(f"/programmes/{w.programme.id}/sessions/{w.session.id}/calendar.ics")
    [event] = parse(response.content).walk("VEVENT")
    assert b"DTSTART;TZID=Europe/London:20250603T143000" in response.content
    local = event.decoded("dtstart").astimezone(ZoneInfo("Europe/London"))
    assert (local.hour, local.minute) == (14, 30)


async def test_outsider_gets_404_for_the_ics(db, browser_factory) -> None:
    w = await make_world(db)
    outsider = browser_factory(w.outsider)
    url = f"/programmes/{w.programme.id}/sessions/{w.session.id}/calendar.ics"
    assert (await outsider.get(url)).status_code == 404


async def test_my_calendar_has_only_my_programmes(db, browser_factory) -> None:
    w = await make_world(db)
    db.add(
        ProgrammeSession(
            programme_id=w.programme.id,
            title="Webinar 2",
            starts_at=datetime(2026, 1, 5, 10, tzinfo=UTC),
            ends_at=datetime(2026, 1, 5, 11, tzinfo=UTC),
        )
    )
    await db.commit()

    mine = await browser_factory(w.participant_a).get("/me/calendar.ics")
    assert mine.status_code == 200
    assert mine.headers["content-type"] == "text/calendar; charset=utf-8"
    uids = {str(e["uid"]) for e in parse(mine.content).walk("VEVENT")}
    assert f"session-{w.session.id}@roundtable" in uids
    assert f"session-{w.other_session.id}@roundtable" not in uids
    assert len(uids) == 2

    outsider = await browser_factory(w.outsider).get("/me/calendar.ics")
    summaries = [str(e["summary"]) for e in parse(outsider.content).walk("VEVENT")]
    assert summaries == ["Another programme: Elsewhere webinar"]

    # Joining a second programme adds its sessions.
    await add_member(db, w.programme, w.outsider, Role.OBSERVER)
    await db.commit()
    both = await browser_factory(w.outsider).get("/me/calendar.ics")
    assert len(parse(both.content).walk("VEVENT")) == 3


async def test_my_calendar_needs_sign_in(browser) -> None:
    response = await browser.get("/me/calendar.ics")
    assert response.status_code == 303
    assert response.headers["location"].startswith("/signin")


def test_long_agenda_is_shortened_in_description() -> None:
    programme = Programme(id=1, title="P", timezone="Europe/London")
    session = ProgrammeSession(
        id=9,
        programme_id=1,
        title="Long",
        starts_at=datetime(2025, 1, 1, 9, tzinfo=UTC),
        ends_at=datetime(2025, 1, 1, 10, tzinfo=UTC),
        agenda="word " * 2_000,
    )
    body = build_calendar([(session, programme)], base_url="https://rt.example", name="x")
    [event] = parse(body).walk("VEVENT")
    description = str(event["description"])
    assert len(description) < DESCRIPTION_MAX + 200
    assert "The full agenda is on the session page." in description
    assert "https://rt.example/programmes/1/sessions/9" in description
