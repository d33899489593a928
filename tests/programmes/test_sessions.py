"""Programme sessions: scheduling in the programme's time zone, editing, access."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from app.models import AuditEntry, ProgrammeSession
from app.programmes.schedule import next_session, parse_local_time, recording_url_problem
from tests.factories import make_world

LONDON_FORM = {
    "title": "Clocks go back",
    "agenda": "",
    "recording_url": "",
}


async def _session_titled(db, title: str) -> ProgrammeSession | None:
    return await db.scalar(
        select(ProgrammeSession)
        .where(ProgrammeSession.title == title)
        .execution_options(populate_existing=True)
    )


async def test_host_creates_session_across_october_clock_change(db, browser_factory) -> None:
    w = await make_world(db)
    host = browser_factory(w.host)
    # 26 Oct 2025: London goes from BST (UTC+1) to GMT at 02:00 BST.
    response = await host.submit(
        f"/programmes/{w.programme.id}/sessions",
        {**LONDON_FORM, "starts_at": "2025-10-26T00:30", "ends_at": "2025-10-26T03:00"},
    )
    assert response.status_code == 303, response.text
    session = await _session_titled(db, "Clocks go back")
    assert session is not None
    assert session.starts_at == datetime(2025, 10, 25, 23, 30, tzinfo=UTC)
    assert session.ends_at == datetime(2025, 10, 26, 3, 0, tzinfo=UTC)
    assert response.headers["location"] == (
        f"/programmes/{w.programme.id}/sessions/{session.id}?done=created"
    )
    audit = await db.scalar(select(AuditEntry).where(AuditEntry.action == "session.create"))
    assert audit is not None and audit.target == f"session:{session.id}"

    lobby = await host.get(response.headers["location"])
    assert lobby.status_code == 200
    assert "The session has been created." in lobby.text
    # Shown in London time, with the zone named.
    assert "Sun 26 Oct 2025, 00:30" in lobby.text and "Europe/London" in lobby.text


def test_ambiguous_time_is_the_first_occurrence() -> None:
    from zoneinfo import ZoneInfo

    london = ZoneInfo("Europe/London")
    # 01:30 happens twice on 26 Oct 2025; the first is still BST.
    assert parse_local_time("2025-10-26T01:30", london) == datetime(2025, 10, 26, 0, 30, tzinfo=UTC)
    assert parse_local_time("2025-07-01 09:00", london) == datetime(2025, 7, 1, 8, 0, tzinfo=UTC)


async def test_time_in_spring_forward_gap_is_refused(db, browser_factory) -> None:
    w = await make_world(db)
    host = browser_factory(w.host)
    response = await host.submit(
        f"/programmes/{w.programme.id}/sessions",
        {**LONDON_FORM, "starts_at": "2026-03-29T01:30", "ends_at": "2026-03-29T04:00"},
    )
    assert response.status_code == 400
    assert "does not exist in Europe/London" in response.text
    assert "clocks go forward" in response.text
    assert 'aria-invalid="true"' in response.text
    assert await _session_titled(db, "Clocks go back") is None


async def test_end_before_start_and_overlong_sessions_are_refused(db, browser_factory) -> None:
    w = await make_world(db)
    host = browser_factory(w.host)
    url = f"/programmes/{w.programme.id}/sessions"
    before = await host.submit(
        url, {**LONDON_FORM, "starts_at": "2025-11-03T10:00", "ends_at": "2025-11-03T09:00"}
    )
    assert before.status_code == 400
    assert "The session must end after it starts." in before.text
    # What was typed is kept so the host can correct it.
    assert 'value="2025-11-03T10:00"' in before.text
    too_long = await host.submit(
        url, {**LONDON_FORM, "starts_at": "2025-11-03T08:00", "ends_at": "2025-11-03T20:01"}
    )
    assert too_long.status_code == 400
    assert "at most 12 hours" in too_long.text
    assert await _session_titled(db, "Clocks go back") is None


async def test_javascript_recording_link_is_refused(db, browser_factory) -> None:
    w = await make_world(db)
    host = browser_factory(w.host)
    response = await host.submit(
        f"/programmes/{w.programme.id}/sessions/{w.session.id}/edit",
        {
            "title": "Webinar 1",
            "starts_at": "2025-11-03T10:00",
            "ends_at": "2025-11-03T11:00",
            "agenda": "",
            "recording_url": "javascript:alert(document.cookie)",
        },
    )
    assert response.status_code == 400
    assert "must be a web address starting with https://" in response.text
    await db.refresh(w.session)
    assert w.session.recording_url == ""

    api = await host.api(
        "PATCH",
        f"/api/v1/programmes/{w.programme.id}/sessions/{w.session.id}",
        json={"recording_url": "JavaScript:alert(1)"},
    )
    assert api.status_code == 422
    assert api.json()["errors"][0]["field"] == "recording_url"


def test_recording_link_rules() -> None:
    assert recording_url_problem("https://video.example.org/rec/1?t=2") is None
    assert recording_url_problem("http://example.org/a") is None
    for bad in (
        "data:text/html,<script>alert(1)</script>",
        "vbscript:msgbox",
        "https://",
        "//example.org/x",
        "https://user:pass@example.org/",
        "https://exa mple.org/",
        "https://example.org/\u202egpj.exe",
    ):
        assert recording_url_problem(bad), bad


async def test_host_edits_session_and_agenda_is_escaped_with_line_breaks(
    db, browser_factory
) -> None:
    w = await make_world(db)
    host = browser_factory(w.host)
    agenda = "1. Welcome\r\n2. <script>alert('x')</script> breakouts\r\n3. Close"
    response = await host.submit(
        f"/programmes/{w.programme.id}/sessions/{w.session.id}/edit",
        {
            "title": "  Webinar   one ",
            "starts_at": "2025-06-03T14:30",
            "ends_at": "2025-06-03T16:00",
            "agenda": agenda,
            "recording_url": "https://video.example.org/rec/1",
        },
    )
    assert response.status_code == 303
    await db.refresh(w.session)
    assert w.session.title == "Webinar one"
    assert w.session.starts_at == datetime(2025, 6, 3, 13, 30, tzinfo=UTC)
    assert w.session.agenda == "1. Welcome\n2. <script>alert('x')</script> breakouts\n3. Close"

    participant = browser_factory(w.participant_a)
    page = await participant.get(f"/programmes/{w.programme.id}/sessions/{w.session.id}")
    assert page.status_code == 200
    assert "<script>alert" not in page.text
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in page.text
    assert "1. Welcome\n2." in page.text  # shown with white-space: pre-wrap
    assert 'href="https://video.example.org/rec/1"' in page.text
    # Participants see their own group and facilitator, not the host's forms.
    assert "Group A" in page.text and "Fola Facilitator" in page.text
    assert "Finn Facilitator" not in page.text
    assert "Edit the session" not in page.text
    assert f"/sessions/{w.session.id}/calendar.ics" in page.text


async def test_participant_cannot_edit_or_create(db, browser_factory) -> None:
    w = await make_world(db)
    participant = browser_factory(w.participant_a)
    base = f"/programmes/{w.programme.id}/sessions"
    form = {**LONDON_FORM, "starts_at": "2025-11-03T10:00", "ends_at": "2025-11-03T11:00"}
    assert (await participant.submit(f"{base}/{w.session.id}/edit", form)).status_code == 403
    assert (await participant.submit(base, form)).status_code == 403
    assert (await participant.submit(f"{base}/{w.session.id}/delete")).status_code == 403
    assert (await participant.get(f"{base}/new")).status_code == 403
    api = await participant.api(
        "PATCH", f"/api/v1{base}/{w.session.id}", json={"title": "Hijacked"}
    )
    assert api.status_code == 403
    await db.refresh(w.session)
    assert w.session.title == "Webinar 1"


async def test_other_programme_participant_gets_404(db, browser_factory) -> None:
    w = await make_world(db)
    outsider = browser_factory(w.outsider)
    base = f"/programmes/{w.programme.id}/sessions/{w.session.id}"
    assert (await outsider.get(base)).status_code == 404
    assert (await outsider.get(f"/api/v1{base}")).status_code == 404
    assert (await outsider.api("DELETE", f"/api/v1{base}")).status_code == 404
    # A session id from another programme under this programme's path is 404 even for its host.
    host = browser_factory(w.host)
    mixed = f"/programmes/{w.programme.id}/sessions/{w.other_session.id}"
    assert (await host.get(mixed)).status_code == 404
    assert (await host.api("PATCH", f"/api/v1{mixed}", json={"title": "x"})).status_code == 404


async def test_host_deletes_session_after_confirming(db, browser_factory) -> None:
    w = await make_world(db)
    host = browser_factory(w.host)
    base = f"/programmes/{w.programme.id}/sessions/{w.session.id}"
    confirm = await host.get(f"{base}/delete")
    assert confirm.status_code == 200 and "cannot be undone" in confirm.text
    response = await host.submit(f"{base}/delete")
    assert response.status_code == 303
    assert (await host.get(base)).status_code == 404
    assert await db.scalar(select(AuditEntry).where(AuditEntry.action == "session.delete"))


async def test_session_list_marks_the_next_session(db, browser_factory) -> None:
    w = await make_world(db)
    now = datetime.now(UTC)
    db.add_all(
        [
            ProgrammeSession(
                programme_id=w.programme.id,
                title="Already happened",
                starts_at=now - timedelta(days=3),
                ends_at=now - timedelta(days=3) + timedelta(hours=1),
            ),
            ProgrammeSession(
                programme_id=w.programme.id,
                title="Far future",
                starts_at=now + timedelta(days=30),
                ends_at=now + timedelta(days=30, hours=1),
            ),
        ]
    )
    await db.commit()
    page = await browser_factory(w.participant_b).get(f"/programmes/{w.programme.id}/sessions")
    assert page.status_code == 200
    items = page.text.split('<li class="session-item')[1:]
    assert len(items) == 3
    assert "Already happened" in items[0] and "finished" in items[0]
    assert "Webinar 1" in items[1] and "Next session" in items[1]
    assert "Far future" in items[2] and "Next session" not in items[2]


def test_next_session_prefers_one_in_progress() -> None:
    now = datetime(2025, 5, 1, 12, tzinfo=UTC)
    running = ProgrammeSession(
        id=1, title="Running", starts_at=now - timedelta(hours=1), ends_at=now + timedelta(hours=1)
    )
    later = ProgrammeSession(
        id=2,
        title="Later",
        starts_at=now + timedelta(days=1),
        ends_at=now + timedelta(days=1, hours=1),
    )
    assert next_session([later, running], now=now) is running
    assert next_session([], now=now) is None


async def test_api_create_list_update_delete(db, browser_factory) -> None:
    w = await make_world(db)
    host = browser_factory(w.host)
    base = f"/api/v1/programmes/{w.programme.id}/sessions"
    created = await host.api(
        "POST",
        base,
        json={
            "title": "API session",
            "starts_at": "2025-10-26T01:30:00+01:00",
            "ends_at": "2025-10-26T01:30:00+00:00",
            "agenda": "Plan",
        },
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["starts_at"].startswith("2025-10-26T00:30:00")
    assert body["ends_at"].startswith("2025-10-26T01:30:00")
    assert body["timezone"] == "Europe/London"
    assert body["starts_at_local"] == "2025-10-26T01:30:00+01:00"
    assert (
        body["lobby_url"] == f"http://testserver/programmes/{w.programme.id}/sessions/{body['id']}"
    )

    listed = await browser_factory(w.participant_a).get(base)
    assert listed.status_code == 200
    # Soonest first: the world's session is a week from now, this one is in 2025.
    assert [s["title"] for s in listed.json()] == ["API session", "Webinar 1"]

    patched = await host.api("PATCH", f"{base}/{body['id']}", json={"title": "Renamed"})
    assert patched.status_code == 200 and patched.json()["title"] == "Renamed"
    assert patched.json()["agenda"] == "Plan"

    assert (await host.api("DELETE", f"{base}/{body['id']}")).status_code == 204
    assert (await host.get(f"{base}/{body['id']}")).status_code == 404


async def test_api_refuses_naive_times_and_bad_order(db, browser_factory) -> None:
    w = await make_world(db)
    host = browser_factory(w.host)
    base = f"/api/v1/programmes/{w.programme.id}/sessions"
    naive = await host.api(
        "POST",
        base,
        json={"title": "x", "starts_at": "2025-10-26T01:30:00", "ends_at": "2025-10-26T03:00:00Z"},
    )
    assert naive.status_code == 422
    errors = naive.json()["errors"]
    assert errors[0]["field"] == "starts_at"
    assert "UTC offset" in errors[0]["message"]

    backwards = await host.api(
        "POST",
        base,
        json={"title": "x", "starts_at": "2025-10-26T03:00:00Z", "ends_at": "2025-10-26T02:00:00Z"},
    )
    assert backwards.status_code == 422
    assert backwards.json()["errors"] == [
        {"field": "ends_at", "message": "The session must end after it starts."}
    ]
    far = await host.api(
        "POST",
        base,
        json={
            "title": "x",
            "starts_at": "9999-12-31T23:00:00-05:00",
            "ends_at": "2025-10-26T02:00Z",
        },
    )
    assert far.status_code == 422
