"""Hearing each other in real Chromium, through the real server: speakers' fake microphones
play espeak-ng speech, and what each listener's page actually plays is recorded (an
AudioWorklet on the player's output, tests/e2e/voice_browser.py) and transcribed by Vosk.

- Breakout rooms: the speaker's room hears the words (and reads her captions); another
  room receives no packet and plays silence. The same with the listeners' WebSockets
  blocked (they hear through Server-Sent Events).
- The plenary: two participants hear the host; a participant without the floor is told to
  raise a hand and is not heard; once the host gives the floor from her console, she is.
- A room move while someone speaks: the moved listener receives nothing more of the old
  room from the first packet of the new one on (and none once the page shows the new
  room), and hears the new room's speaker instead."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import jiwer
import numpy as np
import pytest
from playwright.async_api import expect

from app.config import Settings
from app.models import Role
from tests.audio_fixtures import (  # noqa: F401
    Speech,
    speech_fixture,
    vosk_model_path_fixture,
)
from tests.e2e.conftest import signed_in_page
from tests.e2e.journey_helpers import refuse
from tests.e2e.voice_browser import (
    hear_an_utterance,
    join_audio,
    microphone_wav,
    packet_log,
    recorded,
    rms,
    speaker_browser,
    start_recording,
    voice_stats,
    words_of,
)
from tests.factories import add_member, make_user, make_world

pytestmark = pytest.mark.e2e

WER_BOUND = 0.4
# Near silence: what a page plays when no packet comes is exact zeros.
QUIET_RMS = 30
AGREE = "I agree, turn on my microphone"
FLOOR_NEEDED = "Raise your hand to ask the host for the floor."


@pytest.fixture
def settings(settings: Settings, vosk_model_path: Path) -> Settings:
    """The live server with the real speech model (speech is captioned as it is heard)."""
    return settings.model_copy(update={"vosk_model_path": vosk_model_path})


async def open_pages(url: str, pages: list[tuple[Any, str]], status: str = "Live") -> None:
    for page, room in pages:
        await page.goto(url)
        await expect(page.locator("#room-title")).to_have_text(room)
    for page, _ in pages:
        await expect(page.locator("#live-status")).to_have_text(status, timeout=20_000)


async def turn_on_microphone(page: Any, hears_you: str) -> None:
    origin = re.match(r"https?://[^/]+", page.url).group(0)  # type: ignore[union-attr]
    await page.context.grant_permissions(["microphone"], origin=origin)
    await page.get_by_role("button", name=AGREE).click()
    try:
        await expect(page.locator(".mic-state")).to_contain_text(hears_you, timeout=20_000)
    except AssertionError as exc:
        said = await page.locator(".mic-message").inner_text()
        raise AssertionError(f"the microphone says {said!r}") from exc


async def hears_the_words(
    page: Any, sentence: str, others: tuple[Any, ...] = ()
) -> dict[Any, np.ndarray]:
    """Record what `page` plays until a whole utterance has played, and assert that Vosk
    hears the sentence in it (WER bound). On a busy machine the player may cut a stretch
    to catch up after a stall (docs/voice.md): up to three utterances are heard before
    this fails. Returns what `others` played meanwhile."""
    transcripts = []
    theirs: dict[Any, np.ndarray] = {other: np.zeros(0, dtype=np.int16) for other in others}
    for _ in range(3):
        samples, span, more = await hear_an_utterance(page, others)
        for other in others:
            theirs[other] = np.concatenate([theirs[other], more[other]])
        transcripts.append(words_of(samples, span))
        if jiwer.wer(sentence, transcripts[-1]) <= WER_BOUND:
            print(f"heard {transcripts}")
            return theirs
    raise AssertionError(f"heard {transcripts} for {sentence!r}")


def assert_silent(samples: np.ndarray, seconds: float) -> None:
    assert len(samples) >= seconds * 48000, f"only {len(samples) / 48000:.1f} s recorded"
    loudest = int(np.abs(samples).max(initial=0))
    assert rms(samples) < QUIET_RMS and loudest < 1000, (rms(samples), loudest)


async def wait_for_packets(page: Any, source: int, count: int, seconds: float = 20) -> None:
    """Wait until `count` packets of `source` have reached the page."""
    for _ in range(int(seconds * 4)):
        if sum(s == source for s, _, _ in await packet_log(page)) >= count:
            return
        await page.wait_for_timeout(250)
    raise AssertionError(f"fewer than {count} packets of {source} in {seconds} s")


async def settled(page: Any, seconds: float = 15) -> None:
    """Wait until no packet has reached the page for a second."""
    count = -1
    for _ in range(int(seconds)):
        now = (await voice_stats(page))["packets"]
        if now == count:
            return
        count = now
        await page.wait_for_timeout(1000)
    raise AssertionError(f"packets kept coming for {seconds} s")


def no_js_errors(*pages: Any) -> None:
    for page in pages:
        assert page.js_errors == [], page.js_errors


@pytest.mark.parametrize("transport", ["websocket", "no-websocket"])
async def test_a_breakout_room_hears_its_speaker_and_no_other_room_does(
    live_server: Any, plain_db: Any, chromium: Any, speech: Speech, tmp_path: Path, transport: str
) -> None:
    sentence = "thank you all for coming to this session today"
    w = await make_world(plain_db)
    rosa = await make_user(plain_db, name="Rosa Reader", pronouns="they/them")
    rosa.captions_on = True
    await add_member(plain_db, w.programme, rosa, Role.PARTICIPANT, w.group_a)
    await plain_db.commit()
    url = f"/programmes/{w.programme.id}/sessions/{w.session.id}/live"
    async with live_server.client(w.host) as host:
        opened = await host.post(url + "/breakouts/open", data={"minutes": "20"})
        assert opened.status_code < 400, opened.text

    blocked = transport == "no-websocket"
    async with speaker_browser(chromium, microphone_wav(speech, tmp_path, sentence)) as mics:
        priya = await signed_in_page(mics, live_server, w.participant_a)
        listener_rosa = await signed_in_page(chromium, live_server, rosa)
        pat = await signed_in_page(chromium, live_server, w.participant_b)
        asked: list[str] = []
        sockets: list[str] = []
        spoke: list[str] = []
        priya.on("request", lambda r: spoke.append(r.url))
        for page in (listener_rosa, pat):
            page.on("request", lambda r: asked.append(r.url))
            page.on("websocket", lambda ws: sockets.append(ws.url))
        for page in (priya, listener_rosa, pat):
            if blocked:  # as a corporate proxy would: no WebSocket ever opens
                await page.context.route_web_socket(re.compile(".*"), refuse)
        status = "Live (compatibility mode)" if blocked else "Live"
        await open_pages(url, [(priya, "Group A room")], status)
        await open_pages(url, [(listener_rosa, "Group A room"), (pat, "Group B room")], status)
        await join_audio(listener_rosa, "Group A room")
        await join_audio(pat, "Group B room")

        await turn_on_microphone(priya, "Group A room hears you")
        await start_recording(listener_rosa)
        await start_recording(pat)
        # Rosa, in Priya's room, hears Priya's words, and only Priya.
        others = await hears_the_words(listener_rosa, sentence, (pat,))
        assert {source for source, _, _ in await packet_log(listener_rosa)} == {w.participant_a.id}
        # Pat, in another room, received no packet and his page played silence.
        silent = np.concatenate([others[pat], await recorded(pat)])
        assert_silent(silent, seconds=3)
        assert (await voice_stats(pat))["packets"] == 0
        assert await packet_log(pat) == []

        # Rosa also reads Priya's captions (she asked for captions); Pat sees none.
        finals = listener_rosa.locator(".caption-log .caption.final")
        await expect(finals.first).to_contain_text("Priya Participant", timeout=20_000)
        text = (await finals.first.inner_text()).lower()
        assert sum(word in text for word in ("thank", "coming", "session", "today")) >= 2, text
        await expect(pat.locator(".caption-log .caption")).to_have_count(0)

        if blocked:  # heard through the fallback stream, spoken in short POSTs
            assert any("/live/sse?" in u and "media=audio" in u for u in asked), asked
            assert any("/live/audio/http/" in u for u in spoke), spoke
        else:
            assert any(u.endswith("/live/ws") for u in sockets), sockets
        no_js_errors(priya, listener_rosa, pat)


async def test_the_plenary_hears_the_host_and_a_participant_once_given_the_floor(
    live_server: Any, plain_db: Any, chromium: Any, speech: Speech, tmp_path: Path
) -> None:
    sentence = "the facilitator will read the notes from each group"
    w = await make_world(plain_db)
    rosa = await make_user(plain_db, name="Rosa Reader", pronouns="they/them")
    await add_member(plain_db, w.programme, rosa, Role.PARTICIPANT)
    w.participant_b.captions_on = True
    await plain_db.commit()
    url = f"/programmes/{w.programme.id}/sessions/{w.session.id}/live"

    async with speaker_browser(chromium, microphone_wav(speech, tmp_path, sentence)) as mics:
        hana = await signed_in_page(mics, live_server, w.host)
        priya = await signed_in_page(mics, live_server, w.participant_a)
        pat = await signed_in_page(chromium, live_server, w.participant_b)
        listener_rosa = await signed_in_page(chromium, live_server, rosa)
        pages = (hana, priya, pat, listener_rosa)
        await open_pages(url, [(page, "Plenary") for page in pages])
        for listener in (pat, listener_rosa):
            await join_audio(listener, "Plenary")

        # The host speaks (hosts always have the floor): both participants hear her words.
        await turn_on_microphone(hana, "Plenary hears you")
        for listener in (pat, listener_rosa):
            await start_recording(listener)
        for listener in (pat, listener_rosa):
            await hears_the_words(listener, sentence)
            sources = {source for source, _, _ in await packet_log(listener)}
            assert sources == {w.host.id}, sources
        # Pat reads her captions.
        finals = pat.locator(".caption-log .caption.final")
        await expect(finals.first).to_contain_text("Hana Host", timeout=20_000)

        # The host mutes herself. Priya, without the floor, is told to raise her hand, and
        # is not heard however long she talks.
        await hana.get_by_role("button", name="Mute my microphone").click()
        await expect(hana.locator(".mic-state")).to_contain_text("Microphone muted")
        await priya.context.grant_permissions(["microphone"], origin=live_server.http)
        await priya.get_by_role("button", name=AGREE).click()
        await expect(priya.locator(".mic-message")).to_contain_text(FLOOR_NEEDED, timeout=20_000)
        await expect(priya.locator(".mic-state")).to_contain_text(
            "You do not have the floor: nobody hears you."
        )
        await settled(pat)  # the end of Hana's last words
        await start_recording(pat)
        await pat.wait_for_timeout(4500)  # longer than one loop of the sentence
        assert_silent(await recorded(pat), seconds=4)
        assert w.participant_a.id not in {s for s, _, _ in await packet_log(pat)}

        # Priya raises her hand; the host gives her the floor from her console.
        await priya.get_by_role("button", name="Raise my hand").click()
        console = await hana.context.new_page()
        console.js_errors = []
        console.on("pageerror", lambda exc: console.js_errors.append(str(exc)))
        await console.goto(url + "/host")
        give = console.get_by_role("button", name="Give the floor to Priya Participant")
        for _ in range(20):  # the raised hand reaches the console live, or on a reload
            if await give.count():
                break
            await console.wait_for_timeout(500)
            await console.reload()
        await give.click()
        await expect(console.locator("#voice-said")).to_contain_text("Priya", timeout=10_000)
        await expect(priya.locator(".mic-message")).to_have_text(
            "You may speak now.", timeout=20_000
        )
        await expect(priya.locator(".mic-state")).to_contain_text("Plenary hears you")

        # Now the plenary hears Priya.
        await start_recording(pat)
        await hears_the_words(pat, sentence)
        assert w.participant_a.id in {s for s, _, _ in await packet_log(pat)}
        no_js_errors(*pages, console)


async def test_a_listener_moved_while_someone_speaks_stops_hearing_the_old_room_at_once(
    live_server: Any, plain_db: Any, chromium: Any, speech: Speech, tmp_path: Path
) -> None:
    sentence = "thank you all for coming to this session today"
    w = await make_world(plain_db)
    rosa = await make_user(plain_db, name="Rosa Reader", pronouns="they/them")
    await add_member(plain_db, w.programme, rosa, Role.PARTICIPANT, w.group_a)
    await plain_db.commit()
    url = f"/programmes/{w.programme.id}/sessions/{w.session.id}/live"
    async with live_server.client(w.host) as host:
        opened = await host.post(url + "/breakouts/open", data={"minutes": "20"})
        assert opened.status_code < 400, opened.text

        async with speaker_browser(chromium, microphone_wav(speech, tmp_path, sentence)) as mics:
            # Priya talks in Group A's room, Pat in Group B's, both without a pause.
            priya_id, pat_id = w.participant_a.id, w.participant_b.id
            priya = await signed_in_page(mics, live_server, w.participant_a)
            pat = await signed_in_page(mics, live_server, w.participant_b)
            listener = await signed_in_page(chromium, live_server, rosa)
            await open_pages(
                url,
                [(priya, "Group A room"), (pat, "Group B room"), (listener, "Group A room")],
            )
            await join_audio(listener, "Group A room")
            await turn_on_microphone(priya, "Group A room hears you")
            await turn_on_microphone(pat, "Group B room hears you")
            await start_recording(listener)
            await hears_the_words(listener, sentence)
            assert {s for s, _, _ in await packet_log(listener)} == {w.participant_a.id}

            # The host moves Rosa to Group B while Priya is talking.
            asked = time.monotonic()
            moved = await host.post(
                url + "/move", data={"user_id": str(rosa.id), "group_id": str(w.group_b.id)}
            )
            assert moved.status_code < 400, moved.text
            await expect(listener.locator("#room-title")).to_have_text(
                "Group B room", timeout=15_000
            )
            seen = time.monotonic() - asked
            await expect(listener.locator(".voice-message")).to_have_text(
                "You are hearing Group B room."
            )
            # She hears Group B's room now: Pat's packets arrive and play.
            await start_recording(listener)
            await wait_for_packets(listener, pat_id, 50)
            # (The player holds the first 100 ms of a new speaker back: record past it.)
            await listener.wait_for_timeout(800)
            assert rms(await recorded(listener)) > 200

    log = await packet_log(listener)
    sources = [source for source, _, _ in log]
    assert set(sources) == {priya_id, pat_id}, set(sources)
    # Group A's sound stops at once: not one of Priya's packets after the first of Pat's
    # (which may come just before the page has drawn the new room), and none at all once
    # the page shows Group B's room.
    last_a = max(i for i, source in enumerate(sources) if source == priya_id)
    first_b = sources.index(pat_id)
    assert last_a < first_b, (last_a, first_b)
    assert all(source == pat_id for source, room, _ in log if room == "Group B room")
    print(
        f"move seen on the page {seen:.2f} s after the host asked; first of Group B's "
        f"packets {(log[first_b][2] - log[last_a][2]) / 1000:.2f} s after the last of A's"
    )
    no_js_errors(priya, pat, listener)
