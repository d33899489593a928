"""The administration commands: the demo programme, the first administrator, invitations."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
from collections import Counter
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app import cli
from app.config import PROJECT_ROOT, Settings
from app.db import Base
from app.demo import DEMO_PASSWORD, HOST_EMAIL, next_tuesday
from app.models import (
    Group,
    GroupFacilitator,
    Invitation,
    Membership,
    Programme,
    ProgrammeSession,
    Role,
    User,
)
from app.stage.models import StageTile
from tests.conftest import TEST_SECRET

ADMIN_PASSWORD = "a long admin password"  # noqa: S105 - test data


async def run_cli(settings: Settings, *argv: str, stdin: str = "") -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = await cli.run(
        list(argv), settings=settings, stdin=io.StringIO(stdin), stdout=out, stderr=err
    )
    return code, out.getvalue(), err.getvalue()


async def seed(settings: Settings, links_file: Path) -> tuple[int, str, str]:
    return await run_cli(settings, "seed-demo", "--links-file", str(links_file))


async def row_counts(db: AsyncSession) -> dict[str, int]:
    counts = {}
    for table in Base.metadata.sorted_tables:
        counts[table.name] = await db.scalar(select(func.count()).select_from(table)) or 0
    await db.rollback()  # end the read so the next command's writes are seen
    return counts


def read_links(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


async def test_demo_has_ten_groups_of_eight_each_with_a_facilitator(
    settings: Settings, db: AsyncSession, tmp_path: Path
) -> None:
    code, out, err = await seed(settings, tmp_path / "links.csv")
    assert (code, err) == (0, "")

    programme = await db.scalar(select(Programme))
    assert programme is not None and programme.title == "Inclusive Leadership (demo)"
    roles = Counter(
        await db.scalars(select(Membership.role).where(Membership.programme_id == programme.id))
    )
    # The observer is the first session's sign-language interpreter, pinned on its stage.
    assert roles == {
        "participant": 80,
        "facilitator": 10,
        "host": 1,
        "it_support": 1,
        "observer": 1,
    }
    pinned = (
        await db.execute(
            select(StageTile.kind, User.email).join(User, User.id == StageTile.user_id)
        )
    ).all()
    assert pinned == [("interpreter", "interpreter@demo.example.org")]

    groups = (await db.scalars(select(Group).order_by(Group.position))).all()
    assert [g.name for g in groups] == [f"Group {n}" for n in range(1, 11)]
    for group in groups:
        members = (
            await db.scalars(
                select(Membership).where(
                    Membership.group_id == group.id, Membership.role == Role.PARTICIPANT.value
                )
            )
        ).all()
        assert len(members) == 8, group.name
        facilitator_ids = (
            await db.scalars(
                select(GroupFacilitator.user_id).where(GroupFacilitator.group_id == group.id)
            )
        ).all()
        assert len(facilitator_ids) == 1, group.name
        facilitator_role = await db.scalar(
            select(Membership.role).where(
                Membership.user_id == facilitator_ids[0],
                Membership.programme_id == programme.id,
            )
        )
        assert facilitator_role == Role.FACILITATOR.value

    participants = (
        await db.scalars(
            select(User)
            .join(Membership, Membership.user_id == User.id)
            .where(Membership.role == Role.PARTICIPANT.value)
        )
    ).all()
    assert len({p.display_name for p in participants}) == 80
    assert len({p.email for p in participants}) == 80
    assert all(p.password_hash is None for p in participants)  # they join by link
    assert 10 < sum(bool(p.pronouns) for p in participants) < 80
    assert sum(p.captions_on for p in participants) >= 10
    assert sum(p.screen_reader for p in participants) >= 3
    assert sum(p.large_text for p in participants) >= 5

    # The host's sign-in details and three participants' links are shown; all are in the file.
    assert HOST_EMAIL in out and DEMO_PASSWORD in out
    assert out.count("http://testserver/invite/") == 3
    # Only participants have links: staff have passwords, and a link never signs in an account
    # with a password.
    links = read_links(tmp_path / "links.csv")
    assert len(links) == 80
    assert Counter(row["role"] for row in links) == {"participant": 80}
    assert all(row["link"].startswith("http://testserver/invite/") for row in links)
    assert await db.scalar(select(func.count()).select_from(Invitation)) == 80


async def test_demo_sessions_are_tuesday_afternoons_over_six_weeks(
    settings: Settings, db: AsyncSession, tmp_path: Path
) -> None:
    await seed(settings, tmp_path / "links.csv")
    sessions = (
        await db.scalars(select(ProgrammeSession).order_by(ProgrammeSession.starts_at))
    ).all()
    assert len(sessions) == 5
    london = ZoneInfo("Europe/London")
    starts = [s.starts_at.astimezone(london) for s in sessions]
    assert all(start.weekday() == 1 and (start.hour, start.minute) == (14, 0) for start in starts)
    assert all(s.ends_at - s.starts_at == timedelta(hours=2) for s in sessions)
    assert starts[0].date() > date.today() - timedelta(days=1)
    assert starts[-1] - starts[0] < timedelta(weeks=6)
    assert all(s.agenda for s in sessions)


def test_next_tuesday_is_always_in_the_future() -> None:
    monday, tuesday = date(2026, 11, 23), date(2026, 11, 24)
    assert next_tuesday(monday) == tuesday
    assert next_tuesday(tuesday) == date(2026, 12, 1)
    assert next_tuesday(date(2026, 11, 29)) == date(2026, 12, 1)


async def test_seeding_again_changes_nothing(
    settings: Settings, db: AsyncSession, tmp_path: Path
) -> None:
    await seed(settings, tmp_path / "links.csv")
    before = await row_counts(db)
    links_before = (tmp_path / "links.csv").read_text()

    code, out, _ = await seed(settings, tmp_path / "links.csv")

    assert code == 0
    assert "no demo data was added" in out
    assert HOST_EMAIL in out and "links.csv" in out
    assert await row_counts(db) == before
    assert (tmp_path / "links.csv").read_text() == links_before


async def test_demo_is_refused_in_production(tmp_path: Path, database_url: str) -> None:
    production = Settings(
        _env_file=None,  # type: ignore[call-arg]
        environment="production",
        secret_key=TEST_SECRET,
        database_url=database_url,
    )
    code, _, err = await seed(production, tmp_path / "links.csv")
    assert code == 1
    assert "not available in production" in err
    assert not (tmp_path / "links.csv").exists()


async def test_a_participant_link_opens_their_group(
    settings: Settings, browser: Any, tmp_path: Path
) -> None:
    await seed(settings, tmp_path / "links.csv")
    participant = next(
        row
        for row in read_links(tmp_path / "links.csv")
        if row["role"] == "participant" and row["group"] == "Group 3"
    )
    link_path = participant["link"].removeprefix("http://testserver")
    welcome = await browser.get(link_path)
    assert welcome.status_code == 200
    assert participant["name"] in welcome.text and "Continue to" in welcome.text
    assert "rt_session=" not in welcome.headers.get("set-cookie", "")  # opening uses nothing up

    response = await browser.submit(link_path)
    assert response.status_code == 303
    assert "rt_session=" in response.headers["set-cookie"]
    programme_path = "/programmes/" + response.headers["location"].rsplit("/programmes/", 1)[1]

    page = await browser.get(programme_path)
    assert page.status_code == 200
    assert "Group 3" in page.text
    assert "Your facilitator" in page.text and "Not assigned yet" not in page.text


async def test_demo_host_signs_in_with_the_published_password(
    settings: Settings, browser: Any, tmp_path: Path
) -> None:
    await seed(settings, tmp_path / "links.csv")
    response = await browser.submit("/signin", {"email": HOST_EMAIL, "password": DEMO_PASSWORD})
    assert response.status_code == 303
    assert "rt_session=" in response.headers["set-cookie"]


async def test_create_admin_then_sign_in(
    settings: Settings, db: AsyncSession, browser: Any
) -> None:
    code, out, err = await run_cli(
        settings,
        "create-admin",
        "--email",
        " Ada@Example.org ",
        "--name",
        "Ada Lovelace",
        "--password-stdin",
        stdin=ADMIN_PASSWORD + "\n",
    )
    assert (code, err) == (0, "")
    assert "ada@example.org" in out

    user = await db.scalar(select(User).where(User.email == "ada@example.org"))
    assert user is not None and user.is_admin and user.display_name == "Ada Lovelace"

    wrong = await browser.submit(
        "/signin", {"email": "ada@example.org", "password": "not it at all"}
    )
    assert wrong.status_code == 400
    response = await browser.submit(
        "/signin", {"email": "ADA@example.org", "password": ADMIN_PASSWORD, "next": "/admin"}
    )
    assert response.status_code == 303
    assert (await browser.get("/admin")).status_code == 200


@pytest.mark.parametrize(
    ("email", "name", "password", "message"),
    [
        ("not-an-address", "Ada", ADMIN_PASSWORD, "not a valid e-mail address"),
        ("ada@example.org", "Ada", "too short", "at least 10 characters"),
        ("ada@example.org", "   ", ADMIN_PASSWORD, "Give a name"),
    ],
)
async def test_create_admin_refuses_bad_input(
    settings: Settings, db: AsyncSession, email: str, name: str, password: str, message: str
) -> None:
    code, out, err = await run_cli(
        settings, "create-admin", "--email", email, "--name", name, "--password-stdin",
        stdin=password,
    )  # fmt: skip
    assert code == 1
    assert message in err and out == ""
    assert await db.scalar(select(func.count()).select_from(User)) == 0


async def test_create_admin_without_a_terminal_asks_for_password_stdin(settings: Settings) -> None:
    code, _, err = await run_cli(
        settings, "create-admin", "--email", "a@example.org", "--name", "A"
    )
    assert code == 1
    assert "--password-stdin" in err


def test_duplicate_admin_email_is_a_clear_error(settings: Settings) -> None:
    """Through the real command line, as an operator would type it."""
    env = {
        **os.environ,
        "DATABASE_URL": settings.database_url,
        "ENVIRONMENT": "test",
        "SECRET_KEY": TEST_SECRET,
        "PYTHONPATH": str(PROJECT_ROOT),
    }
    command = [sys.executable, "-m", "app", "create-admin", "--email", "ada@example.org"]
    command += ["--name", "Ada", "--password-stdin"]

    def run(stdin: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(  # noqa: S603 - our own command line
            command,
            input=stdin,
            capture_output=True,
            text=True,
            env=env,
            cwd=PROJECT_ROOT,
            timeout=60,
        )

    first = run(ADMIN_PASSWORD + "\n")
    assert first.returncode == 0, first.stderr
    second = run("another long password\n")
    assert second.returncode == 1
    assert "An account with the e-mail address ada@example.org already exists" in second.stderr
    assert "Traceback" not in second.stderr


async def test_invite_prints_a_working_link_for_a_member(
    settings: Settings, browser: Any, tmp_path: Path
) -> None:
    await seed(settings, tmp_path / "links.csv")
    old = next(row for row in read_links(tmp_path / "links.csv") if row["role"] == "participant")

    code, out, err = await run_cli(
        settings, "invite", "--programme", "1", "--email", old["email"].upper()
    )
    assert (code, err) == (0, "")
    link = out.strip()
    assert link.startswith("http://testserver/invite/") and link != old["link"]

    # Only the newest link works.
    assert (await browser.submit(old["link"].removeprefix("http://testserver"))).status_code == 400
    assert (await browser.submit(link.removeprefix("http://testserver"))).status_code == 303


async def test_invite_refuses_people_outside_the_programme(
    settings: Settings, tmp_path: Path
) -> None:
    await seed(settings, tmp_path / "links.csv")
    code, out, err = await run_cli(
        settings, "invite", "--programme", "1", "--email", "stranger@example.org"
    )
    assert (code, out) == (1, "")
    assert "is not a member" in err
    code, _, err = await run_cli(settings, "invite", "--programme", "99", "--email", HOST_EMAIL)
    assert code == 1 and "no programme with id 99" in err
