"""Live captions in real Chromium: a participant speaks (a fake microphone playing espeak
speech), the people in their room read the captions with the speaker's name, the other
room sees nothing, the transcript downloads, and a facilitator's mute stops the speaker."""

from __future__ import annotations

import json
import re
import wave
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import expect

from app.config import Settings
from app.live import channels
from app.models import Role
from tests.audio_fixtures import (  # noqa: F401
    Speech,
    silence,
    speech_fixture,
    vosk_model_path_fixture,
)
from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS, signed_in_page
from tests.factories import add_member, make_user, make_world

pytestmark = pytest.mark.e2e

SENTENCE = "the quick brown fox jumps over the lazy dog"
WORDS = ("quick", "brown", "fox", "jumps", "lazy", "dog")
# What the microphone's state says while the room hears the speaker (the PCM path, for
# browsers without an Opus encoder, is captioned only).
ON = "Microphone on: Group A room hears you"


@pytest.fixture
def settings(settings: Settings, vosk_model_path: Path) -> Settings:
    """The live server with the real speech model."""
    return settings.model_copy(update={"vosk_model_path": vosk_model_path})


def microphone_wav(speech: Speech, folder: Path) -> Path:
    """What the fake microphone plays, over and over: 16-bit PCM with a second of silence
    on each side, so every loop is a separate utterance."""
    rate = 48000
    path = folder / "microphone.wav"
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(silence(1, rate) + speech.pcm(SENTENCE, rate) + silence(1, rate))
    return path


async def words_heard(page: Any, selector: str, timeout_s: float) -> set[str]:
    """Words of the sentence found in the final captions, once two have appeared."""
    heard: set[str] = set()
    for _ in range(int(timeout_s * 4)):
        text = " ".join(await page.locator(selector).all_inner_texts()).lower()
        heard = {word for word in WORDS if word in text}
        if len(heard) >= 2:
            break
        await page.wait_for_timeout(250)
    return heard


def record_audio_frames(page: Any, sent: list[Any]) -> None:
    """Keep what the page sends on its audio WebSocket."""

    def opened(ws: Any) -> None:
        if ws.url.endswith("/live/audio"):
            ws.on("framesent", lambda payload: sent.append(payload))

    page.on("websocket", opened)


async def cut_off_able(page: Any, connections: list[Any]) -> None:
    """Route the page's audio WebSockets through the test, so one can be cut off as a
    network blip would."""

    async def route(ws: Any) -> None:
        connections.append((ws, ws.connect_to_server()))

    await page.route_web_socket(re.compile(r".*/live/audio$"), route)


# Chromium has WebCodecs' Opus encoder; without it (as in some browsers) the page sends PCM.
@pytest.mark.parametrize("codec", ["opus", "pcm16"])
async def test_speech_is_captioned_for_the_speakers_room_only(
    live_server: Any, plain_db: Any, chromium: Any, speech: Speech, tmp_path: Path, codec: str
) -> None:
    w = await make_world(plain_db)
    reader = await make_user(plain_db, name="Rosa Reader", pronouns="they/them")
    reader.captions_on = True
    await add_member(plain_db, w.programme, reader, Role.PARTICIPANT, w.group_a)
    await plain_db.commit()
    url = f"/programmes/{w.programme.id}/sessions/{w.session.id}/live"
    room_a = channels.room(w.session.id, w.group_a.id)
    async with live_server.client(w.host) as host:
        opened = await host.post(url + "/breakouts/open", data={"minutes": "20"})
        assert opened.status_code < 400, opened.text

    # The speaker's own Chromium, whose microphone plays the sentence.
    wav = microphone_wav(speech, tmp_path)
    speaker_browser = await chromium.browser_type.launch(
        executable_path=CHROMIUM,
        args=[
            *CHROMIUM_ARGS,
            "--use-fake-ui-for-media-stream",
            "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-audio-capture={wav}",
        ],
    )
    try:
        priya = await signed_in_page(speaker_browser, live_server, w.participant_a)
        await priya.context.grant_permissions(["microphone"], origin=live_server.http)
        if codec == "pcm16":
            await priya.add_init_script("delete window.AudioEncoder;")
        sent: list[Any] = []
        record_audio_frames(priya, sent)
        connections: list[Any] = []
        await cut_off_able(priya, connections)
        rosa = await signed_in_page(chromium, live_server, reader)
        pat = await signed_in_page(chromium, live_server, w.participant_b)
        for page, room in ((priya, "Group A room"), (rosa, "Group A room"), (pat, "Group B room")):
            await page.goto(url)
            await expect(page.locator("#room-title")).to_have_text(room)
            await expect(page.locator("#live-status")).to_have_text("Live", timeout=12_000)

        # Rosa asked for captions in her profile: they are shown; the list is announced.
        log = rosa.locator(".caption-log")
        await expect(log).to_be_visible()
        await expect(log).to_have_attribute("id", f"captions-{room_a}")
        await expect(log).to_have_attribute("aria-live", "polite")
        await expect(pat.get_by_text("Show captions")).to_be_visible()

        # Priya reads who hears her and that she is captioned, agrees, and is captioned.
        await expect(priya.locator(".mic-consent")).to_contain_text(
            "kept in this session's transcript"
        )
        await priya.get_by_role("button", name="I agree, turn on my microphone").click()
        toggle = priya.locator(".mic-toggle")
        await expect(toggle).to_have_text("Mute my microphone")
        await expect(priya.locator(".mic-state")).to_have_text(re.compile(ON), timeout=10_000)

        finals = ".caption-log .caption.final"
        heard = await words_heard(rosa, finals, timeout_s=15)
        assert len(heard) >= 2, await rosa.locator(".caption-log").inner_text()
        await expect(rosa.locator(finals).first).to_contain_text("Priya Participant (she/her)")
        # Partial lines, if one is showing, are hidden from screen readers.
        for partial in await rosa.locator(".caption-log .partial").all():
            assert await partial.get_attribute("aria-hidden") == "true"

        start = next(frame for frame in sent if isinstance(frame, str))
        assert json.loads(start) == {
            "type": "start",
            "codec": codec,
            "sample_rate": 48000 if codec == "opus" else 16000,
            "consent": True,
        }
        audio = [frame for frame in sent if isinstance(frame, bytes)]
        if codec == "opus":  # one 20 ms packet a frame, at 20 kbit/s
            assert max(len(frame) for frame in audio) < 200
        else:  # 120 ms of 16 kHz 16-bit PCM a frame
            assert {len(frame) for frame in audio} == {3840}

        # The other room hears nothing of it.
        await expect(pat.locator(".caption-log .caption")).to_have_count(0)

        # The transcript downloads, with the speaker's name.
        async with rosa.expect_download() as download_info:
            await rosa.get_by_role("link", name="WebVTT").click()
        vtt = Path(await (await download_info.value).path()).read_text()
        assert vtt.startswith("WEBVTT") and "Priya Participant" in vtt, vtt

        # Priya mutes herself: the stream pauses (the microphone stays open); unmuting
        # resumes it on the same connection. Turning the microphone off ends the stream;
        # unmuting then starts a new one.
        await toggle.click()
        await expect(toggle).to_have_text("Unmute my microphone")
        await expect(priya.locator(".mic-state")).to_contain_text("Microphone muted")
        assert '{"type":"pause"}' in sent
        await toggle.click()
        await expect(toggle).to_have_text("Mute my microphone")
        assert '{"type":"resume"}' in sent
        await priya.get_by_role("button", name="Turn off my microphone").click()
        await expect(priya.locator(".mic-state")).to_contain_text("Microphone off")
        assert '{"type":"stop"}' in sent
        await toggle.click()
        await expect(toggle).to_have_text("Mute my microphone")
        await expect(priya.locator(".mic-state")).to_have_text(re.compile(ON), timeout=10_000)
        assert len(connections) == 2

        # The connection drops: the page says so, connects again and captions go on.
        page_side, server_side = connections[-1]
        await server_side.close(code=1001, reason="going away")
        await page_side.close(code=1012, reason="service restart")
        await expect(priya.locator(".mic-message")).to_contain_text("trying again")
        await expect(priya.locator(".mic-state")).to_have_text(re.compile(ON), timeout=10_000)
        assert len(connections) == 3
        said_before = await rosa.locator(finals).count()
        await expect(rosa.locator(finals).nth(said_before)).to_be_attached(timeout=15_000)

        # The captions page shows the earlier captions, large, and nothing else.
        rosa_full = await rosa.context.new_page()
        rosa_full.js_errors = []
        rosa_full.on("pageerror", lambda exc: rosa_full.js_errors.append(str(exc)))
        await rosa_full.goto(url + "/captions")
        await expect(rosa_full.locator(finals).first).to_contain_text("Priya Participant")
        await expect(rosa_full.locator(".msg")).to_have_count(0)
        await expect(rosa_full.get_by_role("link", name="Back to Group A room")).to_be_visible()

        # Her facilitator turns Priya's captioning off: she is told, and it stops.
        async with live_server.client(w.facilitator_a) as fola:
            muted = await fola.post(
                url + "/captions/mute", data={"user_id": str(w.participant_a.id)}
            )
            assert muted.status_code < 400, muted.text
        await expect(priya.locator(".mic-message")).to_contain_text(
            "turned off live captions", timeout=10_000
        )
        await expect(toggle).to_have_text("Unmute my microphone")
        await expect(priya.locator(".mic-state")).to_contain_text("Microphone off")
        # Unmuting does not get round it: the server refuses, and the page says why.
        await priya.locator(".mic-message").evaluate("el => { el.textContent = ''; }")
        await toggle.click()
        await expect(priya.locator(".mic-message")).to_contain_text("turned off live captions")
        await expect(toggle).to_have_text("Unmute my microphone")
        for page in (priya, rosa, pat, rosa_full):
            assert page.js_errors == [], page.js_errors
    finally:
        await speaker_browser.close()
