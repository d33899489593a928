"""The whole of a live session in real Chromium, as its people would live it.

A host signs in and opens the session; sixteen participants in two groups of eight join from
their personal invitation links; the host opens breakout rooms and everyone lands in their
own group's room; people chat and only their room reads it; one participant speaks into a
(fake) microphone and her room reads the captions while the other room sees none; someone
asks for help and their facilitator takes it on; someone uploads evidence with progress
bars; the host writes to every room and closes them, and everyone is back in the plenary.

The same journey runs over WebSockets and with every WebSocket refused (the fallback
transports: Server-Sent Events, then long-polling). Speaking is the one exception there:
the speaker's microphone has only a WebSocket (docs/captioning.md), so her live page is
refused its WebSocket but her microphone's is let through; her room still reads the
captions over the fallback.

Screenshots of the key pages go to $ROUNDTABLE_ARTIFACTS/journey-<transport>/ (.ci/run sets
it to var/artifacts), with timings.txt; the best are copied to docs/screenshots/."""

from __future__ import annotations

import asyncio
import re
import wave
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import expect

from app.config import Settings
from tests import evidence_files as ef
from tests.audio_fixtures import (  # noqa: F401
    Speech,
    silence,
    speech_fixture,
    vosk_model_path_fixture,
)
from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS
from tests.e2e.journey_helpers import (
    EVERY_WEBSOCKET,
    LIVE_WEBSOCKET,
    Artifacts,
    Cast,
    invitation_links,
    make_cast,
    new_context,
    new_page,
)
from tests.factories import PASSWORD

pytestmark = pytest.mark.e2e

SPOKEN = "the quick brown fox jumps over the lazy dog"
HEARD = re.compile(r"\b(quick|brown|fox|jumps|lazy|dog)\b", re.IGNORECASE)
# Events reach twenty pages on two cores: generous, but every wait ends as soon as it can.
ARRIVES = 15_000


@pytest.fixture
def settings(settings: Settings, vosk_model_path: Path) -> Settings:
    """The live server with the real speech model."""
    return settings.model_copy(update={"vosk_model_path": vosk_model_path})


def microphone_wav(speech: Speech, folder: Path) -> Path:
    """What the fake microphone plays, over and over: a sentence between two seconds of
    silence, so that each loop is an utterance of its own."""
    rate = 48000
    path = folder / "microphone.wav"
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(silence(1, rate) + speech.pcm(SPOKEN, rate) + silence(1, rate))
    return path


async def sign_in_with_password(
    browser: Any, server: Any, cast: Cast, user: Any, *, blocked: re.Pattern[str] | None
) -> Any:
    """Staff sign in with their e-mail address and password, straight into the session."""
    page = await new_page(await new_context(browser, server.http, blocked=blocked))
    page.who = user.display_name
    await page.goto(f"/signin?next={cast.live_url}")
    await page.get_by_label("E-mail address").fill(user.email)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.locator("#room-title")).to_have_text("Plenary")
    return page


async def join_from_link(context: Any, link: str, cast: Cast, user: Any) -> Any:
    """A participant opens their invitation link: first-timers are welcomed on their profile
    page, people who have shared their pronouns go to the programme; then the session."""
    page = await new_page(context)
    page.who = user.display_name
    await page.goto(link, wait_until="domcontentloaded")
    # The link's own page says whose it is; its button signs in (once).
    await expect(
        page.get_by_text(f"This is your personal link, {user.display_name}.")
    ).to_be_visible()
    await page.get_by_role("button", name=f"Continue to {cast.programme.title}").click()
    if user.pronouns:
        await expect(page).to_have_url(re.compile(rf"/programmes/{cast.programme.id}$"))
    else:
        await expect(page.get_by_role("heading", name="Welcome to Roundtable")).to_be_visible()
    await page.goto(cast.live_url, wait_until="domcontentloaded")
    await expect(page.locator("#room-title")).to_have_text("Plenary")
    return page


def room_row(console: Any, room: str) -> Any:
    """A room's row in the host console's table: people, who, speaking, hands, help."""
    return console.locator("#console-rooms tr", has=console.locator("th", has_text=room))


async def send_chat(page: Any, text: str) -> None:
    await page.locator("#chat-text").fill(text)
    await page.locator("#chat-text").press("Enter")
    await expect(page.locator("#chat-text")).to_have_value("")


def evidence_files(folder: Path) -> list[str]:
    """A 4 MB poster and a photo of a flip chart."""
    poster = folder / "poster.pdf"
    poster.write_bytes(ef.PDF[:-6] + b"\n" * (4 * 1024 * 1024) + b"%%EOF\n")
    photo = folder / "flipchart.jpg"
    photo.write_bytes(ef.jpeg_with_location())
    return [str(poster), str(photo)]


async def all_have(pages: list[Any], selector: str, text: str | re.Pattern[str]) -> None:
    """Every page shows an element matching `selector` with `text`."""
    await asyncio.gather(
        *(
            expect(page.locator(selector, has_text=text).first).to_be_visible(timeout=ARRIVES)
            for page in pages
        )
    )


async def none_have(pages: list[Any], selector: str, text: str | re.Pattern[str] = "") -> None:
    for page in pages:
        found = page.locator(selector, has_text=text) if text else page.locator(selector)
        await expect(found).to_have_count(0)


@pytest.mark.parametrize("websockets_blocked", [False, True], ids=["websocket", "fallback"])
async def test_a_whole_session(
    live_server: Any,
    plain_db: Any,
    chromium: Any,
    speech: Speech,
    tmp_path: Path,
    websockets_blocked: bool,
) -> None:
    transport = "fallback" if websockets_blocked else "websocket"
    art = Artifacts(tmp_path, f"journey-{transport}")
    cast = await make_cast(plain_db)
    links = await invitation_links(
        plain_db,
        cast,
        live=live_server.app_state.live,
        signer=live_server.signer,
        base_url=live_server.http,
    )
    assert len(links) == 16
    blocked = EVERY_WEBSOCKET if websockets_blocked else None
    # The speaker has her own Chromium, whose (fake) microphone plays the sentence.
    speaker_browser = await chromium.browser_type.launch(
        executable_path=CHROMIUM,
        args=[
            *CHROMIUM_ARGS,
            "--use-fake-ui-for-media-stream",
            "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-audio-capture={microphone_wav(speech, tmp_path)}",
        ],
    )
    try:
        art.phase("setup")

        # The host and the two facilitators sign in; the sixteen follow their links.
        host, fola, finn = await asyncio.gather(
            *(
                sign_in_with_password(chromium, live_server, cast, staff, blocked=blocked)
                for staff in (cast.host, cast.facilitator_birch, cast.facilitator_rowan)
            )
        )
        art.phase("host and facilitators sign in")
        speaker = cast.in_birch[0]
        speaker_context = await new_context(
            speaker_browser,
            live_server.http,
            blocked=LIVE_WEBSOCKET if websockets_blocked else None,
        )
        await speaker_context.grant_permissions(["microphone"], origin=live_server.http)
        contexts = {speaker.id: speaker_context}
        for user in cast.participants[1:]:
            contexts[user.id] = await new_context(chromium, live_server.http, blocked=blocked)
        joined = await asyncio.gather(
            *(join_from_link(contexts[u.id], links[u.id], cast, u) for u in cast.participants)
        )
        art.phase("16 participants follow their links")
        page_of = {user.id: page for user, page in zip(cast.participants, joined, strict=True)}
        birch = [page_of[u.id] for u in cast.in_birch]
        rowan = [page_of[u.id] for u in cast.in_rowan]
        amara, ben, chen = birch[:3]
        ines, jamal, kasia = rowan[:3]
        everyone = [host, fola, finn, *birch, *rowan]
        art.watch(*everyone)
        status = "Live (compatibility mode)" if websockets_blocked else "Live"
        for page in everyone:
            await expect(page.locator("#live-status")).to_have_text(status, timeout=ARRIVES)
        art.phase("every page connected")

        # The host opens the breakout rooms: each person is taken to their group's room.
        await host.get_by_label("Length in minutes").fill("20")
        await host.get_by_role("button", name="Open breakout rooms").click()
        for room, pages in (("Birch room", [fola, *birch]), ("Rowan room", [finn, *rowan])):
            for page in pages:
                await expect(page.locator("#room-title"), page.who).to_have_text(
                    room, timeout=ARRIVES
                )
        await expect(host.get_by_role("button", name="Close all rooms")).to_be_visible()
        await expect(ben.locator(".countdown")).to_have_text(re.compile(r"^(19|20):\d\d$"))
        await expect(ben.locator(".presence")).to_contain_text("9 people here", timeout=ARRIVES)
        # The host keeps the console of every room open beside the live page; each
        # facilitator keeps their group's console open.
        host_console = await new_page(host.context)
        host_console.who = "host console"
        await host_console.goto(cast.live_url + "/host")
        birch_row = room_row(host_console, "Birch")
        rowan_row = room_row(host_console, "Rowan")
        for row in (birch_row, rowan_row):
            await expect(row.locator("td").first).to_have_text("9", timeout=ARRIVES)
        finn_console = await new_page(finn.context)
        finn_console.who = "facilitator console"
        art.watch(host_console, finn_console)
        await finn_console.goto(cast.live_url + "/console")
        await expect(finn_console.locator("#room-title")).to_have_text("Console: Rowan")
        art.phase("breakout rooms open")

        # A couple of people chat in each room; only their room reads it.
        said = {
            ben: "What helped me most was being asked, not told.",
            chen: "Same here: the check-in round made it easier to speak.",
            ines: "Our poster is about quiet voices in meetings.",
            jamal: "I will write up the three examples we heard.",
        }
        for page, text in said.items():
            await send_chat(page, text)
        for readers, writers, others in (
            ([fola, *birch], (ben, chen), [finn, *rowan]),
            ([finn, *rowan], (ines, jamal), [fola, *birch]),
        ):
            for writer in writers:
                await all_have(readers, ".log .msg", said[writer])
            for writer in writers:
                await none_have(others, ".log .msg", said[writer])
        art.phase("chat in each room")

        # Amara agrees to captioning: her room reads what she says, with her name. (The
        # participants asked for captions in their profiles; the facilitators open them.)
        for page in (fola, finn):
            await page.get_by_text("Show captions").click()
        await amara.get_by_role("button", name="I agree, turn on my microphone").click()
        await expect(amara.locator(".mic-state")).to_have_text(
            re.compile("hears you and your speech is captioned"), timeout=ARRIVES
        )
        final = ".caption-log .caption.final"
        await expect(ben.locator(final, has_text=HEARD).first).to_be_visible(timeout=30_000)
        await all_have([fola, *birch[1:]], final, HEARD)
        await expect(ben.locator(final).first).to_contain_text("Amara Okafor (she/her)")
        await ben.locator("#chat-text").blur()
        await ben.evaluate("window.scrollTo(0, 0)")
        await art.screenshot(ben, "02-participant-reads-captions")
        # The other room has none.
        await none_have([finn, *rowan], ".caption-log .caption")
        art.phase("captions in one room only")

        # While Amara speaks, Kasia asks for help: her facilitator sees it on his live page
        # and in his console; the host's console shows who is where, who is speaking and
        # the open request. Finn takes it on; Kasia is told.
        note = "How do we add our poster to the evidence?"
        await kasia.get_by_label("What do you need help with?").fill(note)
        await kasia.get_by_role("button", name="Ask for help").click()
        for page in (finn, finn_console):
            asked = page.locator(".help", has_text="Kasia Nowak (she/her), Rowan")
            await expect(asked).to_contain_text("Help requested")
            await expect(asked).to_contain_text(note)
        await art.screenshot(finn_console, "03-facilitator-console-help-request")
        # Leaving the plenary is confirmed after a few seconds' grace (app/live/presence.py).
        await expect(room_row(host_console, "Plenary").locator("td").first).to_have_text(
            "1", timeout=ARRIVES
        )
        await expect(birch_row.locator("td").nth(2)).to_contain_text("Amara Okafor")
        await expect(rowan_row.locator("td").nth(2)).to_have_text("—")
        await expect(rowan_row.locator("td").nth(4)).to_have_text("1", timeout=ARRIVES)
        await art.screenshot(host_console, "01-host-console-rooms-open")
        request = finn_console.locator(".help", has_text="Kasia Nowak (she/her), Rowan")
        await request.get_by_role("button", name="I'll help").click()
        await expect(request).to_contain_text("Finn Murphy (he/him) is helping.")
        await expect(
            kasia.locator(".notice", has_text="Finn Murphy is coming to help.")
        ).to_be_visible()
        await amara.get_by_role("button", name="Mute my microphone").click()
        await expect(amara.locator(".mic-state")).to_contain_text("Microphone muted")
        art.phase("help request; the consoles")

        # Kasia uploads the poster from another tab, each file with its progress bar.
        upload = await new_page(kasia.context)
        await upload.goto(f"/programmes/{cast.programme.id}/groups/{cast.rowan.id}/evidence/upload")
        await upload.get_by_label("Title").fill("Quiet voices poster")
        await upload.get_by_label("Files").set_input_files(evidence_files(tmp_path))
        await upload.get_by_label(re.compile("Describe flipchart.jpg")).fill(
            "Flip chart: three times someone was talked over, and what helped"
        )
        # At a weak connection's pace (2 MB/s up), so the bar can be seen moving.
        devtools = await upload.context.new_cdp_session(upload)
        await devtools.send("Network.enable")
        await devtools.send(
            "Network.emulateNetworkConditions",
            {"offline": False, "latency": 20, "downloadThroughput": -1, "uploadThroughput": 2e6},
        )
        await upload.get_by_role("button", name="Upload").click()
        bars = upload.locator(".upload-item progress")
        await expect(bars.first).to_have_attribute("value", re.compile(r"^[3-9]\d$"))
        await art.screenshot(upload, "04-evidence-upload-progress")
        await expect(upload.locator("[data-upload-status]")).to_contain_text(
            "2 of 2 uploaded", timeout=30_000
        )
        for bar in await bars.all():
            await expect(bar).to_have_attribute("value", "100")
        await devtools.detach()
        await art.screenshot(upload, "05-evidence-uploaded")
        assert upload.js_errors == [], upload.js_errors
        await upload.close()
        art.phase("evidence upload")

        # The host writes to every room, then closes them with a short warning.
        message = "Two minutes left: choose one thing to share with everyone."
        await host.get_by_label("Message to every room").fill(message)
        await host.get_by_role("button", name="Send to every room").click()
        await all_have([fola, finn, *birch, *rowan], ".broadcast", message)
        art.phase("broadcast")

        await host.get_by_label("Warning before closing").fill("3")
        await host.get_by_role("button", name="Close all rooms").click()
        await expect(ben.locator(".notice", has_text="Rooms close in 3 seconds")).to_be_visible()
        for page in [fola, finn, *birch, *rowan]:
            await expect(page.locator("#room-title"), page.who).to_have_text(
                "Plenary", timeout=ARRIVES
            )
        await expect(host.get_by_role("button", name="Open breakout rooms")).to_be_visible()
        await expect(host_console.locator(".timer")).to_have_text(
            "Breakout rooms are not open: everyone is in the plenary.", timeout=ARRIVES
        )
        # Everyone reads the plenary again.
        welcome = "Welcome back! One thing from each room, please."
        reply = "Rowan: ask the quiet voices first."
        await send_chat(host, welcome)
        await all_have(everyone, ".log .msg", welcome)
        await send_chat(ines, reply)
        await all_have(everyone, ".log .msg", reply)
        await expect(host.locator(".presence")).to_contain_text("19 people here", timeout=ARRIVES)
        await host.locator("#chat-text").blur()
        await host.locator("#chat-heading").evaluate("h => h.scrollIntoView()")
        await art.screenshot(host, "06-back-in-plenary")
        art.phase("rooms closed, everyone in plenary")

        for page in [*everyone, host_console, finn_console]:
            assert page.js_errors == [], page.js_errors
    except Exception:
        await art.failed()
        raise
    finally:
        await speaker_browser.close()
        print(f"\njourney over {transport}:\n{art.write_timings()}")
