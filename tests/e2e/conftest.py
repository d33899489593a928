"""Browser tests: Debian's Chromium driven by Playwright against a live server."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.db import make_engine, make_sessionmaker
from app.models import User
from app.security import CSRF_COOKIE, SESSION_COOKIE, SessionClaims
from tests.conftest import IN_CI, LiveServer

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-quic",
    "--no-first-run",
    "--disable-sync",
]


@pytest.fixture
async def plain_db(settings: Settings) -> AsyncIterator[AsyncSession]:
    """A database session without a second app (the live server is the only one running)."""
    engine = make_engine(settings.async_database_url)
    async with make_sessionmaker(engine)() as session:
        yield session
    await engine.dispose()


@pytest.fixture
async def chromium() -> AsyncIterator[Any]:
    if shutil.which(CHROMIUM) is None:
        if IN_CI:
            pytest.fail(
                f"Chromium is not installed at {CHROMIUM}; .ci/run installs Debian's chromium"
            )
        pytest.skip(f"Chromium is not installed at {CHROMIUM}")
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        await browser.close()


async def signed_in_page(chromium: Any, server: LiveServer, user: User) -> Any:
    """A page in its own browser context, signed in as `user`."""
    context = await chromium.new_context(base_url=server.http)
    claims = SessionClaims(user_id=user.id, epoch=user.auth_epoch)
    await context.add_cookies(
        [
            {
                "name": SESSION_COOKIE,
                "value": server.signer.session_cookie(claims),
                "url": server.http,
                "httpOnly": True,
                "sameSite": "Lax",
            },
            {"name": CSRF_COOKIE, "value": "live-test", "url": server.http, "httpOnly": True},
        ]
    )
    page = await context.new_page()
    page.set_default_timeout(10_000)
    # Loading a page waits for its scripts too; on a machine busy with the rest of the suite
    # (speech, rendering, other browsers) that can take longer than an action may.
    page.set_default_navigation_timeout(30_000)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.js_errors = errors  # type: ignore[attr-defined]
    return page
