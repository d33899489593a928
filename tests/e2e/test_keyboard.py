"""The core of a session with the keyboard alone, in real Chromium: a participant and a
facilitator Tab, Enter and Space their way through it (no mouse, no element.click()), and
every control they pass shows where the focus is. New chat, room moves and help are
announced politely, without taking the focus away from what the person was doing."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import pytest
from playwright.async_api import expect

from app.live import channels
from tests import evidence_files as ef
from tests.conftest import LiveServer
from tests.e2e.conftest import signed_in_page
from tests.factories import PASSWORD, World, make_world

pytestmark = pytest.mark.e2e

# Live events reach pages within a second or so; generous for a busy two-core machine.
ARRIVES = 15_000
FOCUSED = """() => {
    const el = document.activeElement;
    if (!el || el === document.body) return null;
    const cs = getComputedStyle(el);
    const r = el.getBoundingClientRect();
    const label = el.labels && el.labels.length ? el.labels[0].innerText : "";
    const name = el.getAttribute("aria-label") || label || el.innerText || el.value || "";
    return {
        id: el.id, tag: el.tagName.toLowerCase(), name: name.trim().replace(/\\s+/g, " "),
        outline: cs.outlineStyle, outlineWidth: parseFloat(cs.outlineWidth) || 0,
        shadow: cs.boxShadow,
        onScreen: r.width > 0 && r.height > 0 && r.bottom > 0 && r.right > 0
            && r.top < innerHeight && r.left < innerWidth,
    };
}"""


@dataclass
class Keyboard:
    """Moves through a page with Tab, checking that every stop shows its focus."""

    page: Any
    unseen: list[str] = field(default_factory=list)
    stops: int = 0

    async def focused(self) -> dict[str, Any] | None:
        found: dict[str, Any] | None = await self.page.evaluate(FOCUSED)
        return found

    async def tab_to(
        self, name: str | re.Pattern[str] = "", *, id: str = "", back: bool = False
    ) -> dict[str, Any]:
        """Press Tab (or Shift+Tab) until the control named `name` (or with `id`) has the
        focus; every control on the way must show its focus."""
        for _ in range(150):
            await self.page.keyboard.press("Shift+Tab" if back else "Tab")
            now = await self.focused()
            if now is None:
                continue
            self.stops += 1
            self.check_visible(now)
            if id and now["id"] == id:
                return now
            if name and (
                now["name"] == name
                if isinstance(name, str)
                else re.search(name, now["name"]) is not None
            ):
                return now
        raise AssertionError(f"Tab never reached {name or id} on {self.page.url}")

    async def follow(self, name: str | re.Pattern[str]) -> None:
        """Tab to a link and press Enter on it: the next page loads."""
        await self.tab_to(name)
        async with self.page.expect_navigation():
            await self.page.keyboard.press("Enter")

    def check_visible(self, now: dict[str, Any]) -> None:
        outlined = now["outline"] != "none" and now["outlineWidth"] >= 2
        if not (outlined or now["shadow"] != "none") or not now["onScreen"]:
            self.unseen.append(
                f"{now['tag']}#{now['id']} {now['name'][:40]!r} on {self.page.url}: "
                f"outline {now['outline']} {now['outlineWidth']}px, box-shadow {now['shadow']}, "
                f"on screen: {now['onScreen']}"
            )

    async def assert_focus_is(self, id: str) -> None:
        now = await self.focused()
        assert now is not None and now["id"] == id, f"focus is on {now}, not #{id}"

    def assert_focus_always_visible(self) -> None:
        assert self.stops > 20, self.stops
        assert not self.unseen, "Focus not visible at:\n" + "\n".join(self.unseen)


async def post(server: LiveServer, user: Any, url: str, data: dict[str, str]) -> None:
    async with server.client(user) as client:
        response = await client.post(url, data=data, headers={"HX-Request": "true"})
        assert response.status_code < 400, (url, response.status_code, response.text)


async def skip_to_main(kb: Keyboard) -> None:
    """The first Tab reaches the skip link, shown; Enter moves the focus to the main content."""
    skip = await kb.tab_to("Skip to main content")
    assert skip["tag"] == "a" and skip["onScreen"], skip
    await kb.page.keyboard.press("Enter")
    await expect(kb.page.locator("main")).to_be_focused()


async def open_live_page(kb: Keyboard, room: str) -> None:
    """From the home page: the next session's page, then its live page."""
    await kb.follow("Webinar 1")
    await expect(kb.page.get_by_role("heading", level=1)).to_have_text("Webinar 1")
    await kb.follow("Go to the live session")
    await expect(kb.page.locator("#room-title")).to_have_text(room)
    await expect(kb.page.locator("#live-status")).to_have_text("Live", timeout=12_000)


async def assert_polite_live_regions(page: Any, w: World) -> None:
    """Chat, help and notices are logs; captions are polite; room moves and results of
    actions are status messages; none of them is assertive."""
    room = channels.room(w.session.id, w.group_a.id)
    chat = page.locator(f'[data-channel="{room}"]')
    await expect(chat).to_have_attribute("role", "log")
    await expect(chat).to_have_attribute("aria-live", "polite")
    await expect(page.locator(f'[id="captions-{room}"]')).to_have_attribute("aria-live", "polite")
    await expect(page.locator("#action-status")).to_have_attribute("role", "status")
    await expect(page.locator("#live-status")).to_have_attribute("role", "status")
    for result in await page.locator(".live-controls .result").all():
        assert await result.get_attribute("role") == "status"
    assert await page.locator('[aria-live="assertive"]').count() == 0


async def participant_in_the_room(kb: Keyboard, server: LiveServer, w: World, url: str) -> None:
    page = kb.page
    await page.goto("/")
    await skip_to_main(kb)
    await open_live_page(kb, "Group A room")
    await assert_polite_live_regions(page, w)

    # Chat: Enter sends; the message shows and the box is ready for the next one.
    await kb.tab_to(id="chat-text")
    await page.keyboard.type("Typed without a mouse")
    await page.keyboard.press("Enter")
    await expect(page.locator(".log .msg", has_text="Typed without a mouse")).to_be_visible(
        timeout=ARRIVES
    )
    await expect(page.locator("#chat-text")).to_have_value("")
    await kb.assert_focus_is("chat-text")

    # Someone else writes: it arrives, and the focus stays where she is typing.
    await page.keyboard.type("half a thought")
    room = channels.room(w.session.id, w.group_a.id)
    await post(
        server,
        w.facilitator_a,
        url + "/chat",
        {"channel": room, "text": "Welcome, everyone", "client_id": "f1"},
    )
    await expect(page.locator(".log .msg", has_text="Welcome, everyone")).to_be_visible(
        timeout=ARRIVES
    )
    await kb.assert_focus_is("chat-text")
    await expect(page.locator("#chat-text")).to_have_value("half a thought")

    # Raise a hand with Space; ask for help with Enter.
    await kb.tab_to("Raise my hand")
    await page.keyboard.press("Space")
    hand_form = page.locator("form", has=page.get_by_role("button", name="Raise my hand"))
    await expect(hand_form.locator(".result")).to_have_text("Your hand is raised.", timeout=ARRIVES)
    await kb.tab_to(id="help-note")
    await page.keyboard.type("My microphone does not work")
    await kb.tab_to("Ask for help")
    await page.keyboard.press("Enter")
    help_form = page.locator("form", has=page.locator("#help-note"))
    await expect(help_form.locator(".result")).to_contain_text(
        "Help is on its way", timeout=ARRIVES
    )

    # The host moves her to the plenary while she is typing: the page says where she is
    # now, and her focus is still in the message box.
    await kb.tab_to(id="chat-text", back=True)
    await post(
        server, w.host, url + "/move", {"user_id": str(w.participant_a.id), "group_id": "plenary"}
    )
    await expect(page.locator("#room-title")).to_have_text("Plenary", timeout=ARRIVES)
    await expect(page.locator("#action-status")).to_have_text(
        "You are now in: Plenary", timeout=ARRIVES
    )
    await kb.assert_focus_is("chat-text")


async def facilitator_takes_them_on(kb: Keyboard) -> None:
    page = kb.page
    # Signs in with a password, with the keyboard.
    await page.goto("/signin")
    await skip_to_main(kb)
    await kb.tab_to(id="field-email")
    await page.keyboard.type("fola@example.org")
    await kb.tab_to(id="field-password")
    await page.keyboard.type(PASSWORD)
    async with page.expect_navigation():
        await page.keyboard.press("Enter")
    await expect(page.get_by_role("heading", level=1)).to_have_text("My programmes")
    await open_live_page(kb, "Group A room")

    # Answers the raised hand, then takes on the help request; the focus stays on the
    # request just taken (its next button), not at the top of the page.
    hand = page.locator(".help.hand")
    await expect(hand).to_have_class(re.compile(r"\bopen\b"))
    await kb.tab_to(re.compile(r"^Answer\b"))
    await page.keyboard.press("Enter")
    await expect(hand).to_have_class(re.compile(r"\bclaimed\b"), timeout=ARRIVES)
    assert await page.evaluate("() => !!document.activeElement.closest('.help.hand')")
    request = page.locator(".help:not(.hand)")
    await kb.tab_to(re.compile(r"^I'll help\b"))
    await page.keyboard.press("Space")
    await expect(request).to_have_class(re.compile(r"\bclaimed\b"), timeout=ARRIVES)
    await expect(request).to_contain_text("is helping", timeout=ARRIVES)
    assert await page.evaluate("() => !!document.activeElement.closest('.help:not(.hand)')")


async def participant_adds_evidence(kb: Keyboard, tmp_path: Any) -> None:
    page = kb.page
    await page.goto("/")
    await kb.follow("Inclusive Leadership")
    await kb.follow("its evidence")
    await expect(page.get_by_role("heading", level=1)).to_have_text("Evidence: Group A")

    # A typed note.
    await kb.follow("Write a note")
    await kb.tab_to(id="field-title")
    await page.keyboard.type("Keyboard notes")
    await kb.tab_to(id="field-markdown")
    await page.keyboard.type("Being **heard** matters.")
    await kb.tab_to("Add the note")
    async with page.expect_navigation():
        await page.keyboard.press("Enter")
    # Back on the board, at the new note; the upload form is above it.
    await expect(page).to_have_url(re.compile(r"/evidence\?done=note#item-\d+$"))
    await expect(page.get_by_role("heading", name="Keyboard notes")).to_be_visible()

    # A file: the picker is the operating system's, so the file is set on the input the
    # keyboard reached; the rest is keys.
    files = await kb.tab_to(id="field-files", back=True)
    assert files["tag"] == "input"
    report = tmp_path / "agenda.pdf"
    report.write_bytes(ef.PDF)
    await page.locator("#field-files").set_input_files(str(report))
    await kb.tab_to("Upload")
    await page.keyboard.press("Enter")
    await expect(page.locator("[data-upload-status]")).to_contain_text("uploaded", timeout=15_000)


async def test_a_session_with_the_keyboard_alone(
    live_server: Any, plain_db: Any, chromium: Any, tmp_path: Any
) -> None:
    w = await make_world(plain_db)
    w.facilitator_a.email = "fola@example.org"
    await plain_db.commit()
    url = f"/programmes/{w.programme.id}/sessions/{w.session.id}/live"
    await post(live_server, w.host, url + "/breakouts/open", {"minutes": "30"})

    priya = Keyboard(await signed_in_page(chromium, live_server, w.participant_a))
    await participant_in_the_room(priya, live_server, w, url)

    context = await chromium.new_context(base_url=live_server.http)
    fola_page = await context.new_page()
    fola_page.set_default_timeout(10_000)
    fola = Keyboard(fola_page)
    await facilitator_takes_them_on(fola)

    await participant_adds_evidence(priya, tmp_path)
    assert priya.page.js_errors == [], priya.page.js_errors
    priya.assert_focus_always_visible()
    fola.assert_focus_always_visible()
