"""A voice note recorded in real Chromium (its fake microphone plays espeak speech), sent to
the group's evidence, and transcribed by the real Vosk model while the page shows it."""

from __future__ import annotations

import re
import wave
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import expect
from sqlalchemy import select

from app.config import Settings
from app.evidence.models import EvidenceItem
from tests.audio_fixtures import (  # noqa: F401 - the fixtures
    Speech,
    silence,
    speech_fixture,
    vosk_model_path_fixture,
)
from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS, signed_in_page
from tests.factories import make_world

pytestmark = pytest.mark.e2e

SAID = "the quick brown fox jumps over the lazy dog"


@pytest.fixture
def settings(settings: Settings, vosk_model_path: Path) -> Settings:
    return settings.model_copy(update={"vosk_model_path": vosk_model_path})


async def test_voice_note_is_recorded_sent_and_transcribed(
    live_server: Any, plain_db: Any, chromium: Any, speech: Speech, tmp_path: Path
) -> None:
    w = await make_world(plain_db)
    await plain_db.commit()
    rate = 48000
    wav = tmp_path / "microphone.wav"
    with wave.open(str(wav), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(silence(0.5, rate) + speech.pcm(SAID, rate) + silence(1.5, rate))
    browser = await chromium.browser_type.launch(
        executable_path=CHROMIUM,
        args=[
            *CHROMIUM_ARGS,
            "--use-fake-ui-for-media-stream",
            "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-audio-capture={wav}",
        ],
    )
    try:
        page = await signed_in_page(browser, live_server, w.participant_a)
        await page.context.grant_permissions(["microphone"], origin=live_server.http)
        board = f"/programmes/{w.programme.id}/groups/{w.group_a.id}/evidence"
        await page.goto(board)
        state = page.locator("[data-voice-state]")
        await page.get_by_role("button", name="Start recording").click()
        await expect(state).to_contain_text("Recording.")
        await page.wait_for_timeout(4500)  # the sentence, as the microphone plays it
        await page.get_by_role("button", name="Stop recording").click()
        await expect(state).to_contain_text("Recording stopped")
        await expect(page.locator("[data-voice-preview]")).to_be_visible()
        await page.locator("#voice-title").fill("What my trio said")
        await page.get_by_role("button", name="Send the voice note").click()
        await expect(state).to_contain_text("has been sent", timeout=20_000)

        item = await plain_db.scalar(select(EvidenceItem).where(EvidenceItem.kind == "audio"))
        assert item is not None and item.content_type in ("audio/webm", "audio/ogg")
        assert item.uploader_id == w.participant_a.id
        # The item page shows progress, then the transcript beside the player.
        await page.goto(f"{board}/{item.id}")
        await expect(page.locator("audio")).to_be_visible()
        transcript = page.locator(f"#transcript-text-{item.id}")
        await expect(transcript).to_contain_text(re.compile(r"brown|fox|lazy"), timeout=60_000)
        assert page.js_errors == []
    finally:
        await browser.close()
