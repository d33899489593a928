"""A breakout room where people speak and listen, in real Chromium through the real server,
photographed for the README (docs/screenshots/room-with-voice.png).

Amara's fake microphone says a sentence over and over in the Birch room; Ben, in the same
room, has joined the audio and turned his own microphone on (it hears only silence, so
nobody hears him). Ben's page plays Amara's words (what it plays is recorded and Vosk
hears the sentence in it), shows "Talking now: Amara Okafor (she/her)" while she talks,
and her final captions with her name. Ben's page is then saved as
$ROUNDTABLE_ARTIFACTS/voice-room/01-room-with-voice.png (.ci/run sets it to var/artifacts;
otherwise pytest's temporary folder), from where it is copied to docs/screenshots/ like
the journey's screenshots (tests/e2e/test_journey.py)."""

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
from tests.e2e.conftest import signed_in_page
from tests.e2e.journey_helpers import VIEWPORT, Artifacts, make_cast
from tests.e2e.test_voice_in_browser import hears_the_words, open_pages, turn_on_microphone
from tests.e2e.voice_browser import (
    RATE,
    join_audio,
    microphone_wav,
    packet_log,
    speaker_browser,
    start_recording,
)

pytestmark = pytest.mark.e2e

SPOKEN = "thank you all for coming to this session today"
HEARD = re.compile(r"\b(thank|coming|session|today)\b", re.IGNORECASE)
ROOM = "Birch room"


@pytest.fixture
def settings(settings: Settings, vosk_model_path: Path) -> Settings:
    """The live server with the real speech model (speech is captioned as it is heard)."""
    return settings.model_copy(update={"vosk_model_path": vosk_model_path})


def silent_wav(folder: Path) -> Path:
    """A quiet microphone: two seconds of silence, looped."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "quiet.wav"
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes(silence(2, RATE))
    return path


async def while_she_talks(page: Any, name: str) -> None:
    """Wait for the start of one of her utterances: "Nobody is talking", then her name, so
    that a screenshot taken now falls inside the sentence (about three seconds long)."""
    line = page.locator(".voice-active")
    await expect(line).to_have_text("Nobody is talking.", timeout=20_000)
    await expect(line).to_contain_text(f"Talking now: {name}", timeout=20_000)


async def photograph_while_she_talks(page: Any, art: Artifacts, name: str) -> None:
    """A screenshot taken while she is talking."""
    await while_she_talks(page, name)
    await art.screenshot(page, "01-room-with-voice")
    # The screenshot fell inside her sentence: she is still talking.
    await expect(page.locator(".voice-active")).to_contain_text(f"Talking now: {name}", timeout=100)


async def test_a_breakout_room_where_people_speak_and_listen(
    live_server: Any, plain_db: Any, chromium: Any, speech: Speech, tmp_path: Path
) -> None:
    art = Artifacts(tmp_path, "voice-room")
    cast = await make_cast(plain_db)
    amara, ben = cast.in_birch[0], cast.in_birch[1]
    async with live_server.client(cast.host) as host:
        opened = await host.post(cast.live_url + "/breakouts/open", data={"minutes": "20"})
        assert opened.status_code < 400, opened.text

    (tmp_path / "amara").mkdir()
    talking = microphone_wav(speech, tmp_path / "amara", SPOKEN)
    async with (
        speaker_browser(chromium, talking) as amaras,
        speaker_browser(chromium, silent_wav(tmp_path / "ben")) as bens,
    ):
        speaker = await signed_in_page(amaras, live_server, amara)
        listener = await signed_in_page(bens, live_server, ben)
        await listener.set_viewport_size(VIEWPORT)
        art.watch(speaker, listener)
        try:
            await open_pages(cast.live_url, [(speaker, ROOM), (listener, ROOM)])
            await join_audio(listener, ROOM)
            await turn_on_microphone(listener, f"{ROOM} hears you")
            await expect(listener.get_by_role("button", name="Mute my microphone")).to_be_visible()
            await expect(listener.locator("#voice-volume")).to_be_visible()

            await turn_on_microphone(speaker, f"{ROOM} hears you")
            # Ben hears Amara's words, and only hers (his own quiet microphone sends none).
            await start_recording(listener)
            await hears_the_words(listener, SPOKEN)
            assert {source for source, _, _ in await packet_log(listener)} == {amara.id}
            # He reads her captions, with her name and pronouns.
            final = listener.locator(".caption-log .caption.final")
            await expect(final.filter(has_text=HEARD).first).to_be_visible(timeout=20_000)
            await expect(final.first).to_contain_text("Amara Okafor (she/her)")

            # The breakout's timer at the top; the captions, the sound and the microphone
            # with its state below it, in the README's viewport.
            await listener.locator(".timer").evaluate(
                "h => window.scrollTo(0, h.getBoundingClientRect().top + window.scrollY - 16)"
            )
            await expect(listener.locator(".mic-state")).to_be_in_viewport(ratio=1)
            await photograph_while_she_talks(listener, art, "Amara Okafor (she/her)")
            for page in (speaker, listener):
                assert page.js_errors == [], page.js_errors
        except Exception:
            await art.failed()
            raise
