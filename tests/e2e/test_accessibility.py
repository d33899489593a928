"""Accessibility of every page and state, in real Chromium, for the right person: axe-core
finds no serious or critical WCAG 2.2 A/AA (or best-practice) violations, nor any about
headings and landmarks; form errors are tied to their fields; each page reflows without
horizontal scrolling at 320 CSS px and at 640 px with text at 200%; nothing moves when the
person asks for less motion; their own large text and high contrast still pass axe; names
are shown with pronouns.

Pages are visited many to a test (one live server and one browser context per role), and
every finding is collected before asserting, so one run lists everything that is wrong."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from playwright.async_api import expect

from app.captions import asr_tokens
from app.captions.models import CaptionSegment
from app.config import Settings
from app.db import utcnow
from app.evidence.models import Coding, EvidenceItem, Theme
from app.evidence.searchtext import refresh_search_text
from app.live import channels
from app.models import MembershipStatus, Role, User
from app.people.invitations import issue_invitation
from app.storage import LocalStorage
from tests import audio_fixtures
from tests import evidence_files as ef
from tests.conftest import LiveServer
from tests.e2e import axe
from tests.e2e.conftest import signed_in_page
from tests.factories import World, add_member, make_user, make_world

pytestmark = pytest.mark.e2e

# Live events reach pages within a second or so; generous for a busy two-core machine.
ARRIVES = 15_000


@pytest.fixture
def speech_model(request: pytest.FixtureRequest) -> bool:
    """Whether the live server loads the speech model (tests ask with indirect
    parametrization), so the caption and microphone controls show as they do in use."""
    return bool(getattr(request, "param", False))


@pytest.fixture
def settings(settings: Settings, speech_model: bool) -> Settings:
    path = audio_fixtures.model_path()
    if speech_model and (path / "am" / "final.mdl").is_file():
        return settings.model_copy(update={"vosk_model_path": path})
    return settings  # without a model: "captions unavailable", a state worth checking too


PRIYA = "Priya Participant (she/her)"
TESS = "Tess Teammate (they/them)"
WEBM = b"\x1a\x45\xdf\xa3" + bytes(range(256)) * 8
LONG_WORD = "Antidisestablishmentarianism" * 3  # one word wider than a phone


@dataclass
class Scene:
    """A programme in full swing: a breakout open, chat, captions, a raised hand and a
    help request, evidence of every kind, a codebook with codings, a speech token."""

    w: World
    teammate: User
    prog: str
    live: str
    board: str
    items: dict[str, int] = field(default_factory=dict)
    theme_id: int = 0


async def caption(db: Any, w: World, channel: str, group_id: int | None, text: str) -> None:
    now = utcnow()
    db.add(
        CaptionSegment(
            session_id=w.session.id,
            channel=channel,
            group_id=group_id,
            speaker_id=w.participant_a.id,
            speaker_name=w.participant_a.name_with_pronouns,
            stream_id="stream-1",
            stream_start=0.0,
            stream_end=2.0,
            started_at=now - timedelta(seconds=3),
            ended_at=now - timedelta(seconds=1),
            text=text,
            original_text=text,
        )
    )


async def evidence(db: Any, settings: Settings, s: Scene) -> None:
    w = s.w
    storage = LocalStorage(settings.upload_dir)

    async def stored(data: bytes) -> Any:
        async def chunks():  # type: ignore[no-untyped-def]
            yield data

        return await storage.save(chunks(), max_bytes=len(data) + 1)

    async def item(kind: str, title: str, data: bytes | None = None, **fields: Any) -> None:
        row = EvidenceItem(
            programme_id=w.programme.id,
            group_id=w.group_a.id,
            session_id=w.session.id,
            uploader_id=w.participant_a.id,
            kind=kind,
            title=title,
            **fields,
        )
        if data is not None:
            saved = await stored(data)
            row.storage_key, row.sha256, row.size_bytes = saved.key, saved.sha256, saved.size
        if kind == "image":
            row.thumbnail_key = (await stored(ef.png((20, 15)))).key
        refresh_search_text(row)
        db.add(row)
        await db.flush()
        s.items[kind] = row.id

    await item(
        "note",
        "Trio notes",
        note_markdown="We talked about **being heard**.\n\n- Junior staff *rarely* speak first\n"
        f"- {LONG_WORD}\n\n| who | said |\n|---|---|\n| Priya | chairs matter |\n",
        description="What our trio said",
        from_trio=True,
    )
    await item(
        "image",
        "Wall of sticky notes",
        ef.png((400, 300)),
        filename="wall.png",
        content_type="image/png",
        width=400,
        height=300,
        alt_text="Sticky notes: be heard, be paid, be believed",
    )
    await item(
        "audio",
        "Voice note",
        WEBM,
        filename="voice.webm",
        content_type="audio/webm",
        duration_seconds=12.5,
        transcript="being heard is the hard part",
        transcript_status="done",
        transcript_progress=1.0,
    )
    await item(
        "document",
        "Agenda",
        ef.PDF,
        filename="agenda.pdf",
        content_type="application/pdf",
    )
    await item(
        "link",
        "A useful article",
        link_url="https://example.org/articles/being-heard-at-work-" + LONG_WORD,
    )
    # One the facilitator has not yet seen a description for: the "needs attention" state.
    await item(
        "image",
        "Undescribed poster",
        ef.png((40, 30)),
        filename="poster.png",
        content_type="image/png",
        width=40,
        height=30,
    )


async def codebook(db: Any, s: Scene) -> None:
    w = s.w
    heard = Theme(
        programme_id=w.programme.id,
        name="Being heard",
        colour="#1d70b8",
        description="Who gets to speak, and who is listened to",
    )
    db.add(heard)
    await db.flush()
    chairs = Theme(programme_id=w.programme.id, name="Chairs", colour="#b3261e", parent_id=heard.id)
    pay = Theme(programme_id=w.programme.id, name="Pay", colour="#00703c")
    db.add_all([chairs, pay])
    await db.flush()
    note = s.items["note"]
    db.add_all(
        [
            Coding(
                item_id=note,
                theme_id=heard.id,
                coder_id=w.facilitator_a.id,
                memo="Seniority decides who speaks",
            ),
            Coding(
                item_id=note,
                theme_id=chairs.id,
                coder_id=w.facilitator_a.id,
                source="note",
                start_offset=0,
                end_offset=7,
                excerpt="We talk",
            ),
            Coding(
                item_id=s.items["audio"],
                theme_id=pay.id,
                coder_id=w.host.id,
                source="transcript",
                start_offset=0,
                end_offset=12,
                excerpt="being heard ",
            ),
        ]
    )
    s.theme_id = heard.id


async def make_scene(db: Any, settings: Settings, server: LiveServer) -> Scene:
    w = await make_world(db)
    w.participant_a.captions_on = True
    teammate = await make_user(db, name="Tess Teammate", pronouns="they/them")
    await add_member(db, w.programme, teammate, Role.PARTICIPANT, w.group_a)
    prog = f"/programmes/{w.programme.id}"
    s = Scene(
        w=w,
        teammate=teammate,
        prog=prog,
        live=f"{prog}/sessions/{w.session.id}/live",
        board=f"{prog}/groups/{w.group_a.id}/evidence",
    )
    await caption(db, w, channels.plenary(w.session.id), None, "welcome everyone to the session")
    await evidence(db, settings, s)
    await codebook(db, s)
    await asr_tokens.issue_token(db, label="Jigasi transcriber", days=30, created_by=w.host)
    await db.commit()
    return s


async def post(server: LiveServer, user: User, url: str, data: dict[str, str]) -> None:
    async with server.client(user) as client:
        response = await client.post(url, data=data, headers={"HX-Request": "true"})
        assert response.status_code < 400, (url, response.status_code, response.text)


async def open_breakouts(db: Any, server: LiveServer, s: Scene) -> None:
    """Breakout rooms open; group A's room has chat, a final caption, a hand and a help
    request waiting for the facilitator."""
    w = s.w
    room_a = channels.room(w.session.id, w.group_a.id)
    await caption(db, w, room_a, w.group_a.id, "the quick brown fox jumps over the lazy dog")
    await db.commit()
    await post(server, w.host, s.live + "/breakouts/open", {"minutes": "20"})
    for author, text in (
        (w.participant_a, "Being heard is the hard part"),
        (s.teammate, f"Agreed. Here is a link: https://example.org/{LONG_WORD}"),
    ):
        await post(
            server,
            author,
            s.live + "/chat",
            {"channel": room_a, "text": text, "client_id": f"c{author.id}"},
        )
    await post(
        server,
        w.participant_a,
        s.live + "/chat",
        {"channel": room_a, "text": "Just to you", "client_id": "p1", "private": "on"},
    )
    await post(server, s.teammate, s.live + "/hand", {"action": "raise"})
    await post(server, w.participant_a, s.live + "/help", {"note": "My microphone is not working"})


# ---- page checks ---------------------------------------------------------------------

REFLOW_CHECK = """(width) => {
    const root = document.documentElement;
    if (root.scrollWidth <= width + 1) return [];
    // What sticks out: elements and runs of text, except inside boxes that clip or scroll.
    const clipped = el => {
        for (let p = el; p && p !== root; p = p.parentElement) {
            if (getComputedStyle(p).overflowX !== "visible") return true;
        }
        return false;
    };
    const name = el => el.tagName.toLowerCase() + (el.id ? "#" + el.id : "") +
        (typeof el.className === "string" && el.className.trim() ? "." + el.className.trim().split(/\\s+/).join(".") : "");
    const out = [];
    for (const el of document.body.querySelectorAll("*")) {
        const r = el.getBoundingClientRect();
        if (r.right > width + 1 && r.width > 0 && !clipped(el.parentElement)) {
            out.push(name(el) + " right=" + Math.round(r.right));
        }
    }
    const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
    for (let n = walker.nextNode(); n; n = walker.nextNode()) {
        const range = document.createRange();
        range.selectNodeContents(n);
        const r = range.getBoundingClientRect();
        if (r.right > width + 1 && !clipped(n.parentElement)) {
            out.push(`text ${JSON.stringify(n.textContent.trim().slice(0, 30))} in ${name(n.parentElement)} right=${Math.round(r.right)}`);
        }
    }
    return [`scrollWidth ${root.scrollWidth} > ${width}`, ...out.slice(0, 6)];
}"""

MOTION_CHECK = """() => {
    const moving = [];
    const seconds = v => Math.max(...v.split(",").map(s => parseFloat(s) * (s.trim().endsWith("ms") ? 0.001 : 1)));
    for (const el of [document.documentElement, ...document.querySelectorAll("*")]) {
        for (const pseudo of [null, "::before", "::after"]) {
            const cs = getComputedStyle(el, pseudo);
            const anim = cs.animationName !== "none" ? seconds(cs.animationDuration) : 0;
            const trans = seconds(cs.transitionDuration);
            if (anim > 0.01 || trans > 0.01 || cs.scrollBehavior === "smooth") {
                moving.push(el.tagName.toLowerCase() + (pseudo || "") + (el.className ? "." + el.className : "") +
                    ` animation=${cs.animationName} ${cs.animationDuration} transition=${cs.transitionDuration}`);
            }
        }
    }
    return moving.slice(0, 6);
}"""


ERRORS_CHECK = """() => {
    // Every error message shown next to a field is tied to that field's control.
    const problems = [];
    let shown = 0;
    for (const error of document.querySelectorAll("main .field .error, main fieldset .error")) {
        if (!error.textContent.trim() || error.closest("[hidden]")) continue;
        shown++;
        const box = error.closest(".field, fieldset");
        const controls = [...box.querySelectorAll("input:not([type=hidden]), select, textarea")];
        const tied = controls.filter(c =>
            (c.getAttribute("aria-describedby") || "").split(/\\s+/).includes(error.id) &&
            c.getAttribute("aria-invalid") === "true");
        if (!error.id || !tied.length) {
            problems.push(`error ${JSON.stringify(error.textContent.trim().slice(0, 60))} ` +
                `(id ${error.id || "none"}) is not tied to ${controls.map(c => "#" + c.id).join(", ") || "any control"}`);
        }
    }
    return { shown, problems };
}"""


@dataclass
class Findings:
    violations: list[axe.Violation] = field(default_factory=list)
    layout: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def assert_none(self) -> None:
        problems = []
        if self.violations:
            problems.append(axe.report(self.violations))
        if self.layout:
            problems.append("Layout problems:\n" + "\n".join(self.layout))
        if self.errors:
            problems.append("Form errors not tied to their fields:\n" + "\n".join(self.errors))
        assert not problems, "\n\n".join(problems)


async def reflow_problems(page: Any, where: str) -> list[str]:
    """At 320 CSS px wide (WCAG 1.4.10), then 640 px with text at 200% (1.4.4: a 1280 px
    window zoomed to 200%, with text enlarged on top), nothing scrolls sideways."""
    found: list[str] = []
    original = page.viewport_size
    for width, text in ((320, "100%"), (640, "200%")):
        await page.set_viewport_size({"width": width, "height": 800})
        await page.evaluate("(size) => { document.documentElement.style.fontSize = size; }", text)
        wide = await page.evaluate(REFLOW_CHECK, width)
        if wide:
            found.append(f"{where} at {width}px, text {text}: " + "; ".join(wide))
    await page.evaluate("() => { document.documentElement.style.fontSize = ''; }")
    await page.set_viewport_size(original)
    return found


async def check(
    page: Any, where: str, found: Findings, *, reflow: bool = True, errors: bool = False
) -> None:
    """axe, the reflow, and form errors tied to their fields; `errors`: the page is
    expected to be showing some."""
    found.violations += await axe.serious(page, where)
    if reflow:
        found.layout += await reflow_problems(page, where)
    tied = await page.evaluate(ERRORS_CHECK)
    found.errors += [f"{where}: {problem}" for problem in tied["problems"]]
    if errors and not tied["shown"]:
        found.errors.append(f"{where}: no error is shown next to a field")


async def visit(page: Any, url: str, where: str, found: Findings, status: int = 200) -> None:
    response = await page.goto(url)
    assert response is not None and response.status == status, (where, url, response.status)
    await check(page, where, found)


# ---- the tests -----------------------------------------------------------------------


async def test_signed_out_pages(live_server: Any, plain_db: Any, chromium: Any) -> None:
    w = await make_world(plain_db)
    invite = await issue_invitation(
        plain_db,
        signer=live_server.signer,
        base_url=live_server.http,
        user=w.participant_b,
        programme_id=w.programme.id,
        created_by=w.host,
        valid_days=30,
    )
    await plain_db.commit()
    context = await chromium.new_context(base_url=live_server.http)
    page = await context.new_page()
    page.set_default_timeout(10_000)
    found = Findings()
    await visit(page, "/signin", "sign-in", found)
    await page.get_by_label(re.compile("E-mail address")).fill("nobody@example.org")
    await page.get_by_label(re.compile("^Password")).fill("wrong password")
    await page.get_by_role("button", name=re.compile("Sign in", re.I)).click()
    await expect(page.locator(".error, .error-summary").first).to_be_visible()
    await check(page, "sign-in with an error", found, errors=True)
    await visit(page, "/accessibility", "accessibility statement", found)
    await visit(page, "/invite/not-a-real-invitation", "invalid invitation", found, status=400)
    link = invite.link.removeprefix(live_server.http)
    await visit(page, link, "an invitation link's welcome", found)
    await page.get_by_role("button", name=re.compile("^Continue to")).click()
    await expect(page).not_to_have_url(re.compile("/invite/"))
    elsewhere = await chromium.new_context(base_url=live_server.http)
    other_page = await elsewhere.new_page()
    await visit(other_page, link, "an invitation link used already", found, status=410)
    await elsewhere.close()
    await visit(page, "/no-such-page", "404 page", found, status=404)
    await context.close()
    found.assert_none()


@pytest.mark.parametrize("speech_model", [True], ids=["speech-model"], indirect=True)
async def test_participant_pages(
    live_server: Any, plain_db: Any, chromium: Any, settings: Settings
) -> None:
    s = await make_scene(plain_db, settings, live_server)
    w = s.w
    # Asked to join a second programme: the home page shows the invitation, with the
    # password she must choose to accept it.
    invited = await add_member(plain_db, w.other_programme, w.participant_a, Role.PARTICIPANT)
    invited.status = MembershipStatus.INVITED.value
    await plain_db.commit()
    page = await signed_in_page(chromium, live_server, w.participant_a)
    found = Findings()
    await visit(page, "/", "home", found)
    await expect(page.get_by_role("heading", name="Invitations to join")).to_be_visible()
    await visit(page, "/profile", "profile", found)
    await page.get_by_label(re.compile("Your name as others see it")).fill("")
    await page.get_by_role("button", name="Save").click()
    await expect(page.locator(".error-summary")).to_be_visible()
    await check(page, "profile with an error", found, errors=True)
    await visit(page, "/profile/captions", "caption preferences", found)
    await visit(page, s.prog, "programme page", found)
    await visit(page, f"{s.prog}/sessions/{w.session.id}", "session lobby", found)
    await visit(page, s.live, "live page in plenary", found)
    await expect(page.locator("#live-status")).to_have_text("Live", timeout=12_000)
    await check(page, "live page in plenary, connected", found, reflow=False)

    await open_breakouts(plain_db, live_server, s)
    await expect(page.locator("#room-title")).to_have_text("Group A room", timeout=ARRIVES)
    await expect(page.locator(".caption-log .caption.final")).to_have_count(1, timeout=ARRIVES)
    if (settings.vosk_model_path / "am" / "final.mdl").is_file():
        await expect(page.locator(".mic-consent")).to_be_visible()
    await check(page, "live page in a breakout room with captions", found)
    await visit(page, s.live + "/captions", "captions page", found)
    await visit(page, s.board, "evidence board", found)
    await expect(page.locator(".evidence-card").first).to_contain_text(PRIYA)
    await visit(page, f"{s.board}/{s.items['image']}", "evidence image", found)
    await visit(page, f"{s.board}/{s.items['audio']}", "evidence sound with transcript", found)
    await visit(page, f"{s.board}/{s.items['link']}", "evidence link", found)
    await visit(page, s.board + "/notes/new", "new note", found)
    await page.get_by_role("button", name="Add the note").click()
    await expect(page.locator(".error-summary")).to_be_visible()
    await check(page, "new note with errors", found, errors=True)
    await visit(page, s.board + "/links/new", "new link", found)
    await visit(page, s.board + "/upload", "upload page", found)
    await page.get_by_role("button", name="Upload").click()
    await expect(page.locator(".error-summary")).to_be_visible()
    await check(page, "upload page with an error", found, errors=True)
    await visit(page, f"{s.prog}/roster", "403 page", found, status=403)
    assert page.js_errors == [], page.js_errors
    found.assert_none()


async def test_facilitator_pages(
    live_server: Any, plain_db: Any, chromium: Any, settings: Settings
) -> None:
    s = await make_scene(plain_db, settings, live_server)
    w = s.w
    await open_breakouts(plain_db, live_server, s)
    page = await signed_in_page(chromium, live_server, w.facilitator_a)
    found = Findings()
    await visit(page, s.live, "live page: facilitator with a hand and a help request", found)
    await expect(page.locator(".help.open")).to_have_count(2)
    # Names are shown with pronouns wherever people are listed.
    await expect(page.locator(".help.hand")).to_contain_text(TESS)
    await expect(page.locator(".help:not(.hand)")).to_contain_text(PRIYA)
    said = page.locator(".log .msg", has_text="Being heard is the hard part")
    await expect(said).to_contain_text("Priya Participant (she/her)")
    await visit(page, s.board, "evidence board (facilitator)", found)
    await visit(page, f"{s.board}/{s.items['note']}", "evidence note with coding panel", found)
    await visit(page, f"{s.board}/{s.items['document']}", "evidence document", found)
    await visit(page, f"{s.prog}/themes", "codebook", found)
    await visit(page, f"{s.prog}/themes/overview", "theme overview", found)
    await visit(page, f"{s.prog}/groups", "groups", found)
    assert page.js_errors == [], page.js_errors
    found.assert_none()


async def test_host_and_admin_pages(
    live_server: Any, plain_db: Any, chromium: Any, settings: Settings
) -> None:
    s = await make_scene(plain_db, settings, live_server)
    w = s.w
    page = await signed_in_page(chromium, live_server, w.host)
    found = Findings()
    await visit(page, s.live, "host controls before breakouts", found)
    await open_breakouts(plain_db, live_server, s)
    await visit(page, s.live, "host controls during breakouts", found)
    await expect(page.locator("#move-person")).to_contain_text(PRIYA)
    await visit(page, f"{s.prog}/sessions", "sessions", found)
    await visit(page, f"{s.prog}/sessions/new", "new session", found)
    await visit(page, f"{s.prog}/settings", "programme settings", found)
    await visit(page, f"{s.prog}/roster", "roster", found)
    await expect(page.locator("main")).to_contain_text(TESS)
    await visit(page, f"{s.prog}/groups", "groups", found)
    await visit(page, f"{s.prog}/groups/{w.group_a.id}", "group", found)
    await expect(page.locator("main")).to_contain_text(PRIYA)
    await visit(page, f"{s.prog}/themes/{s.theme_id}/delete", "delete a theme", found)
    await visit(page, f"{s.board}/{s.items['note']}/delete", "delete evidence", found)
    await visit(page, "/asr/tokens", "speech recognition tokens", found)
    await page.get_by_role("button", name="Issue token").click()
    await expect(page.locator(".error-summary")).to_be_visible()
    await check(page, "speech recognition tokens with an error", found, errors=True)
    await page.get_by_label(re.compile("^Name")).fill("Telephone bridge")
    await page.get_by_role("button", name="Issue token").click()
    await expect(page.locator("#new-token")).to_be_visible()
    await check(page, "speech recognition tokens, one just issued", found)
    admin = await signed_in_page(chromium, live_server, w.admin)
    await visit(admin, "/admin", "administration", found)
    await admin.get_by_role("button", name="Create programme").click()
    await expect(admin.locator(".error-summary")).to_be_visible()
    await check(admin, "administration with an error", found, errors=True)
    assert page.js_errors == [], page.js_errors
    found.assert_none()


# The consoles and the tech check, as the people who use them.
CONSOLES = [
    ("facilitator", "/programmes/{programme_id}/sessions/{session_id}/live/console/{group_id}"),
    ("host", "/programmes/{programme_id}/sessions/{session_id}/live/console"),
    ("host", "/programmes/{programme_id}/sessions/{session_id}/live/host"),
    ("participant", "/tech-check"),
]


async def test_consoles_and_tech_check(
    live_server: Any, plain_db: Any, chromium: Any, settings: Settings
) -> None:
    s = await make_scene(plain_db, settings, live_server)
    w = s.w
    people = {"facilitator": w.facilitator_a, "host": w.host, "participant": w.participant_a}
    urls = [
        (
            who,
            path.format(
                programme_id=w.programme.id, session_id=w.session.id, group_id=w.group_a.id
            ),
        )
        for who, path in CONSOLES
    ]
    await open_breakouts(plain_db, live_server, s)
    pages = {who: await signed_in_page(chromium, live_server, user) for who, user in people.items()}
    found = Findings()
    for who, url in urls:
        await visit(pages[who], url, f"{url} as {who}", found)
    for page in pages.values():
        assert page.js_errors == [], page.js_errors
    found.assert_none()


MOVING_RULE = (
    ".timer, .brand::after { transition: color 2s; animation: roundtable-spin 3s infinite; }"
)


async def motion(page: Any) -> list[str]:
    """What moves on the page, after adding a rule that makes things move (as a future
    style might): the page's own styles must stop it when less movement is wanted."""
    await page.evaluate(
        """(rule) => {
            const sheet = [...document.styleSheets].find(s => s.href && s.href.includes("app.css"));
            sheet.insertRule("@keyframes roundtable-spin { to { transform: rotate(1turn); } }", sheet.cssRules.length);
            sheet.insertRule(rule, sheet.cssRules.length);
        }""",
        MOVING_RULE,
    )
    return await page.evaluate(MOTION_CHECK)


async def test_less_movement_when_asked(
    live_server: Any, plain_db: Any, chromium: Any, settings: Settings
) -> None:
    """Asked for by the browser (prefers-reduced-motion) or in the profile, nothing is
    animated and nothing transitions; without either, the added rule does move things
    (so the check can see movement)."""
    s = await make_scene(plain_db, settings, live_server)
    w = s.w
    await open_breakouts(plain_db, live_server, s)
    w.participant_b.reduced_motion = True
    await plain_db.commit()
    browser_asks = await signed_in_page(chromium, live_server, w.participant_a)
    await browser_asks.emulate_media(reduced_motion="reduce")
    profile_asks = await signed_in_page(chromium, live_server, w.participant_b)
    board_b = f"{s.prog}/groups/{w.group_b.id}/evidence"
    problems = []
    for page, urls in (
        (browser_asks, [s.live, s.board, "/profile"]),
        (profile_asks, [s.live, board_b, "/"]),
    ):
        for url in urls:
            await page.goto(url)
            moving = await motion(page)
            if moving:
                problems.append(f"{url}: " + "; ".join(moving))
    nobody_asks = await signed_in_page(chromium, live_server, w.facilitator_a)
    await nobody_asks.goto(s.live)
    assert await motion(nobody_asks), "the check should see the added movement"
    assert not problems, "\n".join(problems)


async def test_large_text_and_high_contrast(
    live_server: Any, plain_db: Any, chromium: Any, settings: Settings
) -> None:
    """A person who chose large text and high contrast gets both, on each kind of page,
    and the pages still pass axe (contrast included) and reflow."""
    s = await make_scene(plain_db, settings, live_server)
    w = s.w
    for person in (w.participant_a, w.facilitator_a):
        person.large_text = True
        person.high_contrast = True
    await plain_db.commit()
    await open_breakouts(plain_db, live_server, s)
    found = Findings()
    participant = await signed_in_page(chromium, live_server, w.participant_a)
    await visit(participant, "/", "home, large text and high contrast", found)
    body = await participant.evaluate(
        "() => { const cs = getComputedStyle(document.body); return [cs.fontSize, cs.color]; }"
    )
    assert body == ["20px", "rgb(0, 0, 0)"], body
    for url, where in (
        ("/profile", "profile"),
        (s.live, "live page in a room"),
        (s.board, "evidence board"),
    ):
        await visit(participant, url, f"{where}, large text and high contrast", found)
    facilitator = await signed_in_page(chromium, live_server, w.facilitator_a)
    for url, where in (
        (f"{s.board}/{s.items['note']}", "evidence note with coding panel"),
        (f"{s.prog}/themes/overview", "theme overview"),
    ):
        await visit(facilitator, url, f"{where}, large text and high contrast", found)
    found.assert_none()


async def test_deck_pages(live_server: Any, plain_db: Any, chromium: Any, tmp_path: Any) -> None:
    """The decks page (empty, with an error, with a deck), a deck as its presenter edits it
    and as a participant reads it, and deleting it; the upload is made with the page's
    own form."""
    from tests.stage.deck_samples import slide_pdf

    w = await make_world(plain_db)
    decks = f"/programmes/{w.programme.id}/sessions/{w.session.id}/decks"
    deck_file = tmp_path / "Why we listen.pdf"
    deck_file.write_bytes(slide_pdf(2, picture=True))
    page = await signed_in_page(chromium, live_server, w.host)
    found = Findings()
    await visit(page, decks, "decks page, no decks yet", found)
    await page.get_by_role("button", name="Upload the deck").click()
    await expect(page.locator(".error-summary")).to_be_visible()
    await check(page, "decks page with an error", found, errors=True)
    await page.get_by_label(re.compile("^Slides file")).set_input_files(str(deck_file))
    await page.get_by_role("button", name="Upload the deck").click()
    await expect(page.get_by_role("heading", name="Why we listen", level=1)).to_be_visible()
    await expect(page.locator(".deck-slide")).to_have_count(3)
    await check(page, "deck page, as its presenter", found)
    deck_url = page.url.split("?")[0]
    await page.get_by_label("Description of slide 3").fill("x" * 2001)
    await page.get_by_role("button", name="Save slide 3").click()
    await expect(page.locator(".error-summary")).to_be_visible()
    await check(page, "deck page with an error", found, errors=True)
    await visit(page, decks, "decks page with a deck", found)
    await visit(page, deck_url + "/delete", "delete a deck", found)
    reader = await signed_in_page(chromium, live_server, w.participant_a)
    await visit(reader, deck_url, "deck page, as a participant", found)
    # The first slide's image (the others load lazily, as they are scrolled to) is shown
    # to someone who may see the deck: 480 px wide or wider, from the srcset.
    await reader.wait_for_function(
        "() => { const img = document.querySelector('.deck-slide-image');"
        " return img.complete && img.naturalWidth >= 480; }"
    )
    assert page.js_errors == [] and reader.js_errors == [], (page.js_errors, reader.js_errors)
    found.assert_none()
