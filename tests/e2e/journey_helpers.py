"""The cast of the end-to-end journey (a host, two facilitators, sixteen participants in two
groups of eight, each with a personal invitation link) and the browser plumbing it needs:
contexts with WebSockets refused, screenshots kept as test artifacts, phase timings."""

from __future__ import annotations

import contextlib
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Group, Membership, Programme, ProgrammeSession, Role, User
from app.programmes.invite_batches import issue_links
from app.security import Signer
from realtime.publish import Live
from tests.factories import (
    PASSWORD,
    add_member,
    make_group,
    make_programme,
    make_session,
    make_user,
)

# Small enough for the README, large enough for the two-column live page.
VIEWPORT = {"width": 1280, "height": 800}
ARTIFACTS_ENV = "ROUNDTABLE_ARTIFACTS"

# (name, pronouns): people who share pronouns skip the welcome page after their link.
BIRCH = [
    ("Amara Okafor", "she/her"),
    ("Ben Carter", ""),
    ("Chen Wei", "he/him"),
    ("Dana Levi", "they/them"),
    ("Eilidh Ross", ""),
    ("Farid Haddad", "he/him"),
    ("Grace Mensah", "she/her"),
    ("Hiro Tanaka", ""),
]
ROWAN = [
    ("Ines Duarte", "she/her"),
    ("Jamal Price", ""),
    ("Kasia Nowak", "she/her"),
    ("Liam O'Brien", "he/him"),
    ("Maya Singh", ""),
    ("Noor Rahman", "they/them"),
    ("Olek Petrov", ""),
    ("Priya Nair", "she/her"),
]


@dataclass
class Cast:
    programme: Programme
    session: ProgrammeSession
    host: User
    facilitator_birch: User
    facilitator_rowan: User
    birch: Group
    rowan: Group
    # Participants in each group, in the order of BIRCH and ROWAN.
    in_birch: list[User] = field(default_factory=list)
    in_rowan: list[User] = field(default_factory=list)
    memberships: dict[int, Membership] = field(default_factory=dict)

    @property
    def live_url(self) -> str:
        return f"/programmes/{self.programme.id}/sessions/{self.session.id}/live"

    @property
    def participants(self) -> list[User]:
        return [*self.in_birch, *self.in_rowan]


async def make_cast(db: AsyncSession) -> Cast:
    """One programme, one session happening now, two groups of eight. Staff sign in with
    PASSWORD; participants have captions switched on in their profiles, so the caption
    panel is open on their pages."""
    programme = await make_programme(db, title="Inclusive Leadership")
    session = await make_session(db, programme, title="Webinar 2: Being heard", days_ahead=0)
    host = await make_user(db, name="Hana Sato", pronouns="she/her", password=PASSWORD)
    fola = await make_user(db, name="Fola Adeyemi", pronouns="she/her", password=PASSWORD)
    finn = await make_user(db, name="Finn Murphy", pronouns="he/him", password=PASSWORD)
    birch = await make_group(db, programme, name="Birch", facilitators=[fola])
    rowan = await make_group(db, programme, name="Rowan", facilitators=[finn])
    cast = Cast(programme, session, host, fola, finn, birch, rowan)
    await add_member(db, programme, host, Role.HOST)
    await add_member(db, programme, fola, Role.FACILITATOR)
    await add_member(db, programme, finn, Role.FACILITATOR)
    for people, group, into in ((BIRCH, birch, cast.in_birch), (ROWAN, rowan, cast.in_rowan)):
        for name, pronouns in people:
            user = await make_user(db, name=name, pronouns=pronouns, captions_on=True)
            membership = await add_member(db, programme, user, Role.PARTICIPANT, group)
            cast.memberships[user.id] = membership
            into.append(user)
    await db.commit()
    return cast


async def invitation_links(
    db: AsyncSession, cast: Cast, *, live: Live, signer: Signer, base_url: str
) -> dict[int, str]:
    """A personal link for each participant, issued as the host would from the roster."""
    issued = await issue_links(
        db,
        live,
        programme=cast.programme,
        actor=cast.host,
        signer=signer,
        base_url=base_url,
        valid_days=30,
        membership_ids=[m.id for m in cast.memberships.values()],
    )
    return {link.user_id: link.link for link in issued}


async def refuse(ws: Any) -> None:
    """As a corporate proxy would: the WebSocket never opens."""
    await ws.close(code=1006, reason="blocked")


EVERY_WEBSOCKET = re.compile(r".*")
LIVE_WEBSOCKET = re.compile(r".*/live/ws$")


async def new_context(browser: Any, base_url: str, *, blocked: re.Pattern[str] | None) -> Any:
    """A browser context (its own cookies, like a separate person's browser), with the
    WebSockets matching `blocked` refused on every page."""
    context = await browser.new_context(base_url=base_url, viewport=VIEWPORT)
    context.set_default_timeout(15_000)
    if blocked is not None:
        await context.route_web_socket(blocked, refuse)
    return context


async def new_page(context: Any) -> Any:
    """A page that keeps its script errors in `page.js_errors`."""
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.js_errors = errors
    return page


class Artifacts:
    """Screenshots and timings of one run, in $ROUNDTABLE_ARTIFACTS/<name> (.ci/run sets it
    to var/artifacts) or in the test's temporary folder."""

    def __init__(self, default: Path, name: str) -> None:
        root = os.environ.get(ARTIFACTS_ENV, "").strip()
        self.folder = (Path(root) if root else default) / name
        self.folder.mkdir(parents=True, exist_ok=True)
        self.started = time.perf_counter()
        self.last = self.started
        self.phases: list[tuple[str, float]] = []
        self.watched: list[Any] = []

    def watch(self, *pages: Any) -> None:
        """Pages to photograph if the test fails."""
        self.watched.extend(pages)

    async def failed(self) -> None:
        """A screenshot of every watched page still open, named after its person."""
        for n, page in enumerate(self.watched):
            who = re.sub(r"[^A-Za-z]+", "-", getattr(page, "who", "page")).strip("-").lower()
            with contextlib.suppress(Exception):
                await page.screenshot(path=str(self.folder / f"failed-{n:02d}-{who}.png"))

    async def screenshot(self, page: Any, name: str, *, full_page: bool = False) -> Path:
        path = self.folder / f"{name}.png"
        await page.screenshot(
            path=str(path), animations="disabled", caret="hide", full_page=full_page
        )
        return path

    def phase(self, name: str) -> None:
        now = time.perf_counter()
        self.phases.append((name, now - self.last))
        self.last = now

    def write_timings(self) -> str:
        total = time.perf_counter() - self.started
        lines = [f"{name:<40} {seconds:6.1f} s" for name, seconds in self.phases]
        lines.append(f"{'total':<40} {total:6.1f} s")
        text = "\n".join(lines) + "\n"
        (self.folder / "timings.txt").write_text(text)
        return text
