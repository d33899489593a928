"""The consoles and the tech check in real Chromium: a facilitator's console shows who
arrives, a raised hand and a request for help as they happen (over WebSockets and with
them blocked), the host console shows every room and drives the breakouts, and the tech
check hears a (fake) microphone, captions it, and says how the browser is connected."""

from __future__ import annotations

import re
import wave
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import expect

from app.config import Settings
from tests.audio_fixtures import (  # noqa: F401
    Speech,
    silence,
    speech_fixture,
    vosk_model_path_fixture,
)
from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS, signed_in_page
from tests.factories import make_world

pytestmark = pytest.mark.e2e

SENTENCE = "the quick brown fox jumps over the lazy dog"
HEARD = re.compile(r"\b(quick|brown|fox|jumps|lazy|dog)\b")


@pytest.fixture
def settings(settings: Settings, vosk_model_path: Path) -> Settings:
    """The live server with the real speech model, for the tech check's sample caption."""
    return settings.model_copy(update={"vosk_model_path": vosk_model_path})


async def block_websockets(page: Any) -> None:
    """As a corporate proxy would: every WebSocket is refused."""

    async def refuse(ws: Any) -> None:
        await ws.close(code=1006, reason="blocked")

    await page.route_web_socket(re.compile(r".*"), refuse)


async def post(server: Any, user: Any, path: str, data: dict[str, str] | None = None) -> None:
    async with server.client(user) as http:
        response = await http.post(path, data=data or {}, headers={"HX-Request": "true"})
    assert response.status_code < 400, response.text


@pytest.mark.parametrize("websockets_blocked", [False, True], ids=["websocket", "fallback"])
async def test_facilitator_console_shows_hands_and_help_live(
    live_server: Any, plain_db: Any, chromium: Any, websockets_blocked: bool
) -> None:
    w = await make_world(plain_db)
    w.participant_a.access_notes = "I lip-read: cameras on, please"
    await plain_db.commit()
    base = f"/programmes/{w.programme.id}/sessions/{w.session.id}/live"
    await post(live_server, w.host, base + "/breakouts/open", {"minutes": "20"})

    fola = await signed_in_page(chromium, live_server, w.facilitator_a)
    if websockets_blocked:
        await block_websockets(fola)
    await fola.goto(base)
    await fola.get_by_role("link", name="Facilitator console").click()
    await expect(fola.locator("h1")).to_have_text("Console: Group A")
    expected = "Live (compatibility mode)" if websockets_blocked else "Live"
    await expect(fola.locator("#live-status")).to_have_text(expected, timeout=12_000)
    await expect(fola.locator(".countdown")).to_have_text(re.compile(r"^(19|20):\d\d$"))
    await expect(fola.get_by_text("No hands are raised.")).to_be_visible()

    # Priya arrives in the room: she appears with what she shares with her facilitator.
    priya = await signed_in_page(chromium, live_server, w.participant_a)
    await priya.goto(base)
    await expect(priya.locator("#room-title")).to_have_text("Group A room")
    people = fola.locator("#console-people")
    await expect(people).to_contain_text("Priya Participant (she/her)", timeout=12_000)
    await expect(people).to_contain_text("I lip-read: cameras on, please")

    # Her hand and then her request for help appear without a reload, each in its place.
    await priya.get_by_role("button", name="Raise my hand").click()
    hands = fola.get_by_role("region", name="Raised hands")
    hand = fola.locator(f"#console-hand-g{w.group_a.id} li")
    await expect(hand).to_contain_text("Raised hand: Priya Participant (she/her)", timeout=12_000)
    await expect(fola.get_by_text("No hands are raised.")).to_be_hidden()
    await priya.locator("#help-note").fill("My sound keeps cutting out")
    await priya.get_by_role("button", name="Ask for help").click()
    request = fola.locator(f"#console-help-g{w.group_a.id} li")
    await expect(request).to_contain_text("My sound keeps cutting out", timeout=12_000)
    await expect(hands).to_contain_text("Priya Participant (she/her)")
    await expect(hands).not_to_contain_text("My sound keeps cutting out")
    await expect(people).to_contain_text("Hand raised", timeout=15_000)

    # Fola answers the hand from the console; Priya is told.
    await hand.get_by_role("button", name=re.compile("^Answer")).click()
    await expect(hand).to_contain_text("Fola Facilitator has answered.", timeout=12_000)
    await expect(priya.locator(".notice", has_text="has seen your hand")).to_be_visible(
        timeout=12_000
    )
    # A quick note from the console lands on the group's board.
    await fola.get_by_label(re.compile("^Note")).fill("Agreed: rotate who speaks first.")
    await fola.get_by_role("button", name="Save the note").click()
    await expect(fola.locator("#quick-note .result")).to_contain_text("evidence board")
    await expect(fola.get_by_label(re.compile("^Note"))).to_have_value("")
    for page in (fola, priya):
        assert page.js_errors == [], page.js_errors


async def test_host_console_shows_every_room_and_opens_them(
    live_server: Any, plain_db: Any, chromium: Any
) -> None:
    w = await make_world(plain_db)
    base = f"/programmes/{w.programme.id}/sessions/{w.session.id}/live"
    hana = await signed_in_page(chromium, live_server, w.host)
    await hana.goto(base)
    await hana.get_by_role("link", name="Host console").click()
    await expect(hana.locator("h1")).to_have_text("Host console")
    await expect(hana.locator("#live-status")).to_have_text("Live", timeout=12_000)

    # The host opens the rooms from the console, which redraws itself with the timer.
    await hana.get_by_label(re.compile("Length in minutes")).fill("15")
    await hana.get_by_role("button", name="Open breakout rooms").click()
    await expect(hana.get_by_role("button", name="Close all rooms")).to_be_visible(timeout=12_000)
    await expect(hana.locator(".countdown")).to_have_text(re.compile(r"^1[45]:\d\d$"))

    # People arrive in their rooms; the table of rooms shows them at its next refresh.
    pages = []
    for user in (w.participant_a, w.facilitator_a, w.participant_b):
        page = await signed_in_page(chromium, live_server, user)
        await page.goto(base)
        pages.append(page)
    row_a = hana.locator("#console-rooms tr", has=hana.locator("th", has_text="Group A"))
    row_b = hana.locator("#console-rooms tr", has=hana.locator("th", has_text="Group B"))
    await expect(row_a.locator("td").first).to_have_text("2", timeout=15_000)
    await expect(row_a).to_contain_text("Priya Participant (she/her)")
    await expect(row_b.locator("td").first).to_have_text("1", timeout=15_000)

    # A request for help from group B reaches the console's help desk at once.
    await pages[2].get_by_role("button", name="Ask for help").click()
    desk = hana.get_by_role("region", name="Hands and help requests from every room")
    await expect(desk).to_contain_text("Help requested: Pat Participant, Group B", timeout=12_000)
    await expect(row_b.locator("td").nth(4)).to_have_text("1", timeout=15_000)
    for page in (hana, *pages):
        assert page.js_errors == [], page.js_errors


def microphone_wav(speech: Speech, folder: Path) -> Path:
    """What the fake microphone plays, over and over."""
    rate = 48000
    path = folder / "microphone.wav"
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(silence(0.5, rate) + speech.pcm(SENTENCE, rate) + silence(0.5, rate))
    return path


async def test_tech_check_hears_the_microphone_and_knows_the_connection(
    live_server: Any, plain_db: Any, chromium: Any, speech: Speech, tmp_path: Path
) -> None:
    w = await make_world(plain_db)
    browser = await chromium.browser_type.launch(
        executable_path=CHROMIUM,
        args=[
            *CHROMIUM_ARGS,
            "--use-fake-ui-for-media-stream",
            "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-audio-capture={microphone_wav(speech, tmp_path)}",
        ],
    )
    try:
        priya = await signed_in_page(browser, live_server, w.participant_a)
        await priya.context.grant_permissions(["microphone"], origin=live_server.http)
        await priya.goto("/")
        await priya.get_by_role("link", name=re.compile("^Tech check")).click()
        await expect(priya.locator("h1")).to_have_text("Tech check")

        # The connection: a WebSocket, with its round trip.
        await expect(priya.locator("#tc-transport")).to_have_text("WebSocket", timeout=12_000)
        await expect(priya.locator("#tc-rtt")).to_have_text(re.compile(r"^\d+ ms \("))
        # The browser: every feature listed in words, not colour alone.
        features = priya.locator("#tc-features li")
        await expect(features).to_have_count(7)
        await expect(features.first).to_have_text(re.compile(r"^WebSocket: Yes, "))

        # The microphone: the level moves, and a sample is captioned.
        await priya.get_by_role("button", name="Start the microphone check").click()
        await expect(priya.locator("#tc-mic-status")).to_contain_text("microphone is on")
        meter = priya.locator("#tc-level")
        for _ in range(40):
            if await meter.evaluate("m => m.value") > 8:
                break
            await priya.wait_for_timeout(250)
        assert await meter.evaluate("m => m.value") > 8
        await expect(priya.locator("#tc-level-text")).to_have_text(re.compile(r"^\d+%: "))
        record = priya.get_by_role("button", name="Record 5 seconds and caption them")
        await expect(record).to_be_enabled()
        await record.click()
        caption = priya.locator("#tc-caption")
        await expect(caption).to_have_text(re.compile("^We heard: "), timeout=20_000)
        assert HEARD.search(await caption.inner_text()), await caption.inner_text()

        # Asking IT support sends what the check found.
        await priya.get_by_label(re.compile("What is the problem")).fill("Echo on my side")
        await priya.get_by_role("button", name="Ask IT support for help").click()
        await expect(priya.locator("#tc-help-form .result")).to_contain_text(
            "IT support for “Webinar 1” has your request"
        )
        async with live_server.client(w.it_support) as http:
            desk = await http.get(
                f"/programmes/{w.programme.id}/sessions/{w.session.id}/live/console"
            )
            assert desk.status_code == 403  # IT support's help desk is on the live page
            live = await http.get(f"/programmes/{w.programme.id}/sessions/{w.session.id}/live")
        assert "From the tech check. Connection: WebSocket" in live.text
        assert "Echo on my side" in live.text and "sample caption" in live.text
        await priya.get_by_role("button", name="Stop the microphone").click()

        # Where WebSockets are blocked, the check says so and times plain HTTP instead.
        blocked = await signed_in_page(browser, live_server, w.participant_b)
        await block_websockets(blocked)
        await blocked.goto(f"/tech-check?session_id={w.session.id}")
        await expect(blocked.locator("#tc-transport")).to_have_text(
            "Compatibility mode (no WebSocket)", timeout=12_000
        )
        await expect(blocked.locator("#tc-rtt")).to_have_text(re.compile(r"^\d+ ms \("))
        await expect(blocked.locator("#tc-transport-note")).to_contain_text("still works")
        for page in (priya, blocked):
            assert page.js_errors == [], page.js_errors
    finally:
        await browser.close()
