"""The tech check's sound in real Chromium: a test sound with "Did you hear it?", and "hear
yourself": a fake microphone speaking an espeak-ng sentence is encoded by WebCodecs, echoed
by the server (over its WebSocket, and with WebSockets blocked over POSTs), decoded and
played; what the page plays is tapped and run through Vosk, which hears the words."""

from __future__ import annotations

import re
import struct
import wave
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import expect

from app.config import Settings
from app.live.tech_check import sample_caption
from captioning.audio import PcmAudio
from tests.audio_fixtures import (  # noqa: F401
    Speech,
    caption_engine_fixture,
    silence,
    speech_fixture,
    vosk_model_path_fixture,
)
from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS, signed_in_page
from tests.factories import make_world

pytestmark = pytest.mark.e2e

SENTENCE = "the quick brown fox jumps over the lazy dog"
WORDS = {"quick", "brown", "fox", "jumps", "lazy", "dog"}
# What the page plays, kept as 16 kHz samples for the test to read.
TAP_PLAYBACK = """
(() => {
  window.__played = [];
  const start = AudioBufferSourceNode.prototype.start;
  AudioBufferSourceNode.prototype.start = function (...args) {
    const data = this.buffer.getChannelData(0), step = this.buffer.sampleRate / 16000, out = [];
    for (let i = 0; i < data.length; i += step) out.push(Math.round(data[Math.floor(i)] * 32767));
    window.__played.push(out);
    return start.apply(this, args);
  };
})();
"""


@pytest.fixture
def settings(settings: Settings, vosk_model_path: Path) -> Settings:
    return settings.model_copy(update={"vosk_model_path": vosk_model_path})


def microphone_wav(speech: Speech, folder: Path) -> Path:
    rate = 48000
    path = folder / "microphone.wav"
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(silence(0.3, rate) + speech.pcm(SENTENCE, rate) + silence(0.3, rate))
    return path


@pytest.mark.parametrize("websockets_blocked", [False, True], ids=["websocket", "fallback"])
async def test_test_sound_and_hearing_yourself(
    live_server: Any,
    plain_db: Any,
    chromium: Any,
    speech: Speech,
    caption_engine: Any,
    tmp_path: Path,
    websockets_blocked: bool,
) -> None:
    w = await make_world(plain_db)
    browser = await chromium.browser_type.launch(
        executable_path=CHROMIUM,
        args=[
            *CHROMIUM_ARGS,
            "--use-fake-ui-for-media-stream",
            "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-audio-capture={microphone_wav(speech, tmp_path)}",
            "--autoplay-policy=no-user-gesture-required",
        ],
    )
    try:
        page = await signed_in_page(browser, live_server, w.participant_a)
        await page.context.grant_permissions(["microphone"], origin=live_server.http)
        await page.add_init_script(TAP_PLAYBACK)
        if websockets_blocked:

            async def refuse(ws: Any) -> None:
                await ws.close(code=1006, reason="blocked")

            await page.route_web_socket(re.compile(r".*"), refuse)
        await page.goto("/tech-check")

        # The test sound, then the question; "No" gives advice.
        await page.get_by_role("button", name="Play a test sound").click()
        await expect(page.locator("#tc-sound-status")).to_have_text("Did you hear the chime?")
        await page.get_by_role("button", name="No, I heard nothing").click()
        await expect(page.locator("#tc-sound-advice")).to_contain_text("Turn the volume up")
        await expect(page.get_by_role("button", name="Play a test sound")).to_be_focused()

        await page.get_by_role("button", name="Hear yourself (4 seconds)").click()
        path = (
            "Compatibility mode (no WebSocket): sound will be about half a second later"
            if websockets_blocked
            else "WebSocket"
        )
        await expect(page.locator("#tc-voice-path")).to_have_text(path, timeout=10_000)
        status = page.locator("#tc-voice-status")
        await expect(status).to_contain_text("Playing back", timeout=20_000)
        got = re.search(r"\((\d+) of (\d+) packets\)", await status.inner_text())
        assert got is not None
        back, sent = int(got[1]), int(got[2])
        assert back == sent and sent >= 150  # about 4 s of 20 ms packets, all back

        played = await page.evaluate("window.__played")
        assert len(played) == 1 and len(played[0]) >= 3.5 * 16000
        samples = [max(-32768, min(32767, int(v or 0))) for v in played[0]]  # -0 comes as 0.0
        pcm = struct.pack(f"<{len(samples)}h", *samples)
        heard = await sample_caption(caption_engine, PcmAudio(pcm, 16000))
        assert len(WORDS & set(heard.split())) >= 2, heard
        assert page.js_errors == [], page.js_errors
    finally:
        await browser.close()
