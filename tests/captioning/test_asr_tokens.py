"""Tokens for the speech recognition endpoint: the hosts' page and the command line.
(The endpoint's own checks of tokens are in test_vosk_protocol.py.)"""

from __future__ import annotations

import io
import re
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app import cli
from app.captions.asr_models import AsrToken
from app.captions.asr_tokens import check_token
from app.config import Settings
from app.models import AuditEntry, Role
from app.security import sha256_hex
from tests.factories import World, add_member, make_user, make_world

TOKEN = re.compile(r"rtasr_[A-Za-z0-9_-]{43}")


@pytest.fixture
async def world(db: AsyncSession) -> World:
    return await make_world(db)


async def test_a_host_issues_sees_and_revokes_a_token(
    world: World, browser_factory: Any, db: AsyncSession
) -> None:
    host = browser_factory(world.host)
    page = await host.get("/asr/tokens")
    assert page.status_code == 200
    assert "You have not issued any tokens yet." in page.text
    assert "ws://testserver/asr/vosk?token=" in page.text

    created = await host.submit("/asr/tokens", {"label": "Phone bridge <b>", "days": "7"})
    assert created.status_code == 200
    assert created.headers["cache-control"] == "no-store"
    secrets = set(TOKEN.findall(created.text))
    assert len(secrets) == 1
    secret = secrets.pop()
    assert "Phone bridge &lt;b&gt;" in created.text  # escaped
    assert "shown only once" in created.text

    stored = await db.scalar(select(AsrToken).where(AsrToken.created_by_id == world.host.id))
    assert stored is not None
    assert stored.token_hash == sha256_hex(secret) and secret not in stored.token_hash
    assert 6.9 < (stored.expires_at - stored.created_at).total_seconds() / 86400 <= 7
    assert (await check_token(db, secret=secret)).ok

    again = await host.get("/asr/tokens")
    assert secret not in again.text  # shown once only
    assert "Phone bridge &lt;b&gt;" in again.text and "Active" in again.text

    revoked = await host.submit(f"/asr/tokens/{stored.id}/revoke")
    assert (revoked.status_code, revoked.headers["location"]) == (303, "/asr/tokens?revoked=1")
    listing = await host.get("/asr/tokens?revoked=1")
    assert "The token has been revoked" in listing.text and "Revoked" in listing.text
    db.expire_all()  # the page changed it in its own session
    check = await check_token(db, secret=secret)
    assert (check.ok, check.reason) == (False, "this token has been revoked")
    actions = await db.scalars(
        select(AuditEntry.action).where(AuditEntry.target == f"asr_token:{stored.id}")
    )
    assert sorted(actions) == ["asr_token.issued", "asr_token.revoked"]


@pytest.mark.parametrize(
    ("form", "field", "message"),
    [
        ({"label": "", "days": "30"}, "label", "Give the token a name"),
        ({"label": "x" * 101, "days": "30"}, "label", "at most 100 characters"),
        ({"label": "Bridge", "days": "0"}, "days", "from 1 to 365"),
        ({"label": "Bridge", "days": "366"}, "days", "from 1 to 365"),
        ({"label": "Bridge", "days": "a week"}, "days", "from 1 to 365"),
    ],
)
async def test_bad_token_requests_are_shown_on_the_form(
    world: World,
    browser_factory: Any,
    db: AsyncSession,
    form: dict[str, str],
    field: str,
    message: str,
) -> None:
    page = await browser_factory(world.host).submit("/asr/tokens", form)
    assert page.status_code == 400
    assert message in page.text
    assert f'id="error-{field}"' in page.text and 'aria-invalid="true"' in page.text
    assert not TOKEN.search(page.text)
    assert await db.scalar(select(AsrToken.id)) is None


async def test_transport_limits_on_the_form_give_400_not_500(
    world: World, browser_factory: Any
) -> None:
    page = await browser_factory(world.host).submit("/asr/tokens", {"label": "x" * 5000})
    assert page.status_code in (400, 422)


async def test_who_may_use_the_token_page(world: World, browser_factory: Any) -> None:
    for user in (world.admin, world.host):
        assert (await browser_factory(user).get("/asr/tokens")).status_code == 200
    for user in (
        world.facilitator_a,
        world.participant_a,
        world.it_support,
        world.observer,
        world.outsider,
    ):
        browser = browser_factory(user)
        assert (await browser.get("/asr/tokens")).status_code == 403, user.display_name
        refused = await browser.submit("/asr/tokens", {"label": "Mine", "days": "5"})
        assert refused.status_code == 403
    anonymous = browser_factory()
    assert (await anonymous.get("/asr/tokens")).status_code == 303  # to sign in


async def test_the_form_needs_its_csrf_token(world: World, browser_factory: Any) -> None:
    page = await browser_factory(world.host).post("/asr/tokens", data={"label": "A", "days": "5"})
    assert page.status_code == 403


async def test_hosts_revoke_their_own_tokens_and_administrators_any(
    world: World, browser_factory: Any, db: AsyncSession, settings: Settings
) -> None:
    other_host = await make_user(db, name="Olga Otherhost")
    await add_member(db, world.other_programme, other_host, Role.HOST)
    await db.commit()
    host, other, admin = (browser_factory(u) for u in (world.host, other_host, world.admin))
    created = await host.submit("/asr/tokens", {"label": "Hana's bridge", "days": "5"})
    secret = TOKEN.findall(created.text)[0]
    token_id = await db.scalar(select(AsrToken.id).where(AsrToken.token_hash == sha256_hex(secret)))
    await cli.run(
        ["asr-token", "--label", "Script"],
        settings=settings,
        stdout=io.StringIO(),
        stderr=io.StringIO(),
    )

    assert "Hana&#39;s bridge" not in (await other.get("/asr/tokens")).text
    assert (await other.submit(f"/asr/tokens/{token_id}/revoke")).status_code == 404
    assert (await other.submit("/asr/tokens/999999/revoke")).status_code == 404
    assert (await check_token(db, secret=secret)).ok

    listing = (await admin.get("/asr/tokens")).text
    assert "Hana&#39;s bridge" in listing and "Hana Host" in listing
    assert "Script" in listing and "command line" in listing
    assert (await admin.submit(f"/asr/tokens/{token_id}/revoke")).status_code == 303
    db.expire_all()
    assert (await check_token(db, secret=secret)).reason == "this token has been revoked"


async def test_the_command_line_prints_a_token_once(settings: Settings, db: AsyncSession) -> None:
    out, err = io.StringIO(), io.StringIO()
    code = await cli.run(
        ["asr-token", "--label", "Transcription script", "--days", "90"],
        settings=settings,
        stdout=out,
        stderr=err,
    )
    assert code == 0, err.getvalue()
    secret = out.getvalue().strip()
    assert TOKEN.fullmatch(secret)
    assert "shown only once" in err.getvalue()
    token = await db.scalar(select(AsrToken).where(AsrToken.token_hash == sha256_hex(secret)))
    assert token is not None and token.label == "Transcription script"
    assert token.created_by_id is None
    assert 89.9 < (token.expires_at - token.created_at).total_seconds() / 86400 <= 90

    out, err = io.StringIO(), io.StringIO()
    code = await cli.run(
        ["asr-token", "--label", "Too long", "--days", "400"],
        settings=settings,
        stdout=out,
        stderr=err,
    )
    assert (code, out.getvalue()) == (1, "")
    assert "from 1 to 365" in err.getvalue()
