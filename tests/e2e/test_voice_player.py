"""Voice in real Chromium: a listener joins the room's audio (the page asks for media on its
live connection and plays what the server sends), the speaker mutes and unmutes with Alt+M
(announced to screen readers), and talking while muted brings the "You are muted" notice.
The host speaks in the plenary (hosts always have the floor) through a fake microphone that
plays espeak-ng speech over and over."""

from __future__ import annotations

import json
import struct
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

SENTENCE = "can everyone hear me clearly now"
NOTICE = "You are muted. Press Alt+M or the Unmute button to speak."

# Taps what the page plays: an analyser on window.RoundtableVoice.output (the final
# GainNode), keeping the loudest sample seen since the last look.
TAP = """() => {
  const v = window.RoundtableVoice;
  if (!v || !v.output) return -1;
  if (!window.tap) {
    const a = v.context.createAnalyser();
    a.fftSize = 2048;
    v.output.connect(a);
    const buf = new Float32Array(a.fftSize);
    window.tap = { peak: 0 };
    setInterval(() => {
      a.getFloatTimeDomainData(buf);
      for (const x of buf) window.tap.peak = Math.max(window.tap.peak, Math.abs(x));
    }, 20);
  }
  const peak = window.tap.peak;
  window.tap.peak = 0;
  return peak;
}"""


@pytest.fixture
def settings(settings: Settings, vosk_model_path: Path) -> Settings:
    """The live server with the real speech model (the microphone is also captioned)."""
    return settings.model_copy(update={"vosk_model_path": vosk_model_path})


def microphone_wav(speech: Speech, folder: Path) -> Path:
    """What the fake microphone plays, looped: speech with a second of silence each side."""
    rate = 48000
    path = folder / "microphone.wav"
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(silence(1, rate) + speech.pcm(SENTENCE, rate) + silence(1, rate))
    return path


def record_socket(page: Any, suffix: str, sent: list[Any], received: list[Any]) -> None:
    """Keep what the page sends and receives on its WebSockets whose URL ends so."""

    def opened(ws: Any) -> None:
        if ws.url.endswith(suffix):
            ws.on("framesent", lambda payload: sent.append(payload))
            ws.on("framereceived", lambda payload: received.append(payload))

    page.on("websocket", opened)


def hellos(frames: list[Any]) -> list[dict[str, Any]]:
    found = []
    for frame in frames:
        if isinstance(frame, str) and '"hello"' in frame:
            found.append(json.loads(frame))
    return found


async def wait_for(page: Any, check: Any, what: str, seconds: float = 15) -> None:
    for _ in range(int(seconds * 4)):
        if await check():
            return
        await page.wait_for_timeout(250)
    raise AssertionError(f"waited {seconds} s for {what}")


async def packets(page: Any) -> int:
    return int(await page.evaluate("() => window.RoundtableVoice.stats.packets"))


async def test_joining_audio_muting_with_alt_m_and_the_muted_talking_notice(
    live_server: Any, plain_db: Any, chromium: Any, speech: Speech, tmp_path: Path
) -> None:
    w = await make_world(plain_db)
    await plain_db.commit()
    url = f"/programmes/{w.programme.id}/sessions/{w.session.id}/live"
    wav = microphone_wav(speech, tmp_path)
    browser = await chromium.browser_type.launch(
        executable_path=CHROMIUM,
        args=[
            *CHROMIUM_ARGS,
            "--use-fake-ui-for-media-stream",
            "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-audio-capture={wav}",
            "--autoplay-policy=no-user-gesture-required",
        ],
    )
    try:
        hana = await signed_in_page(browser, live_server, w.host)
        await hana.context.grant_permissions(["microphone"], origin=live_server.http)
        priya = await signed_in_page(browser, live_server, w.participant_a)
        live_sent: list[Any] = []
        live_received: list[Any] = []
        record_socket(priya, "/live/ws", live_sent, live_received)
        mic_sent: list[Any] = []
        record_socket(hana, "/live/audio", mic_sent, [])
        loaded: list[str] = []
        priya.on("request", lambda r: loaded.append(r.url))
        for page in (hana, priya):
            await page.goto(url)
            await expect(page.locator("#room-title")).to_have_text("Plenary")
            await expect(page.locator("#live-status")).to_have_text("Live", timeout=12_000)

        # (a) Nothing plays, nor is downloaded, before Priya presses "Join audio".
        assert hellos(live_sent) and all(
            "audio" not in h.get("media", []) for h in hellos(live_sent)
        )
        assert not any("voice.js" in u for u in loaded), loaded
        await priya.get_by_role("button", name="Join audio").click()
        await expect(priya.get_by_role("button", name="Leave audio")).to_be_visible()
        await expect(priya.get_by_label("Volume")).to_be_visible()
        await expect(priya.locator(".voice-message")).to_have_text("You are hearing Plenary.")
        assert hellos(live_sent)[-1]["media"] == ["audio"]
        assert any("voice.js" in u for u in loaded)

        # Hana agrees to the one consent (heard and captioned) and speaks.
        consent = hana.locator(".mic-consent")
        await expect(consent).to_contain_text("everyone in Plenary hears you")
        await expect(consent).to_contain_text("kept in this session's transcript")
        await expect(consent).to_contain_text("This room is not being recorded")
        await hana.get_by_role("button", name="I agree, turn on my microphone").click()
        announce = hana.locator(".mic-announce")
        await expect(announce).to_have_text("Microphone on", timeout=10_000)
        await expect(announce).to_have_attribute("role", "status")
        await expect(hana.locator(".mic-state")).to_contain_text(
            "Plenary hears you", timeout=10_000
        )

        # The server answers with audio: binary frames arrive, are decoded and played.
        await wait_for(priya, lambda: packets(priya), "audio packets at the listener")
        assert any(isinstance(f, bytes) for f in live_received)
        await priya.evaluate(TAP)
        loudest = 0.0
        for _ in range(40):
            await priya.wait_for_timeout(250)
            loudest = max(loudest, await priya.evaluate(TAP))
            if loudest > 0.02:
                break
        assert loudest > 0.02, f"the page played nothing louder than {loudest}"
        assert await priya.evaluate("() => window.RoundtableVoice.stats.bufferedMs") <= 500

        # (b) Alt+M mutes: announced, the button says so, and the stream is paused.
        toggle = hana.get_by_role("button", name="Mute my microphone")
        await expect(toggle).to_have_attribute("aria-keyshortcuts", "Alt+M")
        await hana.keyboard.press("Alt+KeyM")
        await expect(announce).to_have_text("Microphone muted")
        await expect(hana.get_by_role("button", name="Unmute my microphone")).to_be_visible()
        await expect(hana.locator(".mic-state")).to_contain_text("Microphone muted")
        assert '{"type":"pause"}' in mic_sent

        # (c) Talking while muted: the notice says so (the fake microphone keeps talking).
        await expect(hana.locator(".mic-notice")).to_have_text(NOTICE, timeout=15_000)
        await expect(hana.locator(".mic-notice")).to_have_attribute("role", "status")
        # Muted, Hana is not heard: Priya's packets stop.
        await priya.wait_for_timeout(1000)
        before = await packets(priya)
        await priya.wait_for_timeout(2000)
        assert await packets(priya) - before <= 3

        # Alt+M again unmutes: announced, the notice goes, the stream resumes.
        await hana.keyboard.press("Alt+KeyM")
        await expect(announce).to_have_text("Microphone on")
        await expect(hana.locator(".mic-notice")).to_have_text("")
        assert mic_sent.count('{"type":"resume"}') == 1
        before = await packets(priya)
        await wait_for(priya, lambda: _more(priya, before), "audio after unmuting")

        # Leaving the audio says hello without media and stops the player.
        await priya.get_by_role("button", name="Leave audio").click()
        await expect(priya.get_by_role("button", name="Join audio")).to_be_visible()
        assert hellos(live_sent)[-1]["media"] == []
        assert await priya.evaluate("() => window.RoundtableVoice.output") is None
        for page in (hana, priya):
            assert page.js_errors == [], page.js_errors
    finally:
        await browser.close()


async def _more(page: Any, before: int) -> bool:
    return await packets(page) > before


# Opus packets of a 440 Hz tone, made by the page's own WebCodecs encoder (20 ms each).
ENCODE_TONE = """async (n) => {
  const out = [];
  const enc = new AudioEncoder({
    output: (c) => { const b = new Uint8Array(c.byteLength); c.copyTo(b); out.push(Array.from(b)); },
    error: (e) => { throw e; },
  });
  enc.configure({ codec: "opus", sampleRate: 48000, numberOfChannels: 1, bitrate: 32000 });
  for (let i = 0; i < n; i++) {
    const pcm = new Float32Array(960);
    for (let j = 0; j < 960; j++) pcm[j] = 0.5 * Math.sin(2 * Math.PI * 440 * (i * 960 + j) / 48000);
    enc.encode(new AudioData({ format: "f32", sampleRate: 48000, numberOfFrames: 960,
      numberOfChannels: 1, timestamp: i * 20000, data: pcm }));
  }
  await enc.flush();
  return out;
}"""

# Hands media messages to the player as live.js would: every `gap` ms (0: all at once).
FEED = """async ([messages, gap]) => {
  for (const m of messages) {
    window.feed(new Uint8Array(m).buffer);
    if (gap) await new Promise((r) => setTimeout(r, gap));
  }
}"""


def packet(source: int, seq: int, payload: list[int] | bytes) -> list[int]:
    """One media packet (docs/voice.md): kind 1 Opus, source, seq, ts_ms, length, payload."""
    body = bytes(payload)
    header = struct.pack(">BIHIH", 1, source, seq % 65536, seq * 20, len(body))
    return list(header + body)


async def stats(page: Any) -> dict[str, int]:
    return dict(await page.evaluate("() => ({...window.RoundtableVoice.stats})"))


async def loudest(page: Any, ms: int) -> float:
    await page.evaluate(TAP)
    await page.wait_for_timeout(ms)
    return float(await page.evaluate(TAP))


async def test_the_player_plays_catches_up_after_a_stall_and_skips_bad_packets(
    live_server: Any, plain_db: Any, chromium: Any
) -> None:
    """The player alone, fed packets made in the page: it plays them, a gap is silence, a
    burst after a stall is cut so it never plays long behind, and a malformed packet is
    dropped without stopping the sound."""
    w = await make_world(plain_db)
    await plain_db.commit()
    url = f"/programmes/{w.programme.id}/sessions/{w.session.id}/live"
    page = await signed_in_page(chromium, live_server, w.participant_a)
    await page.goto(url)
    await expect(page.locator("#live-status")).to_have_text("Live", timeout=12_000)
    await page.get_by_role("button", name="Join audio").click()
    await expect(page.get_by_role("button", name="Leave audio")).to_be_visible()
    await expect(page.locator(".voice-message")).to_have_text("You are hearing Plenary.")
    # The player's way in, as live.js calls it for each media message.
    await page.evaluate(
        """() => { const listen = window.RoundtableLive.listen;
        window.RoundtableLive.listen = (f) => { window.feed = f; listen(f); };
        document.querySelector(".voice-join").click(); document.querySelector(".voice-join").click(); }"""
    )
    await expect(page.get_by_role("button", name="Leave audio")).to_be_visible()
    await page.wait_for_function("() => window.feed && window.RoundtableVoice.output")
    tone = await page.evaluate(ENCODE_TONE, 100)
    assert len(tone) >= 90

    # Paced like a live speaker: heard, with little buffered.
    await page.evaluate(TAP)
    await page.evaluate(FEED, [[packet(7, i, p) for i, p in enumerate(tone[:50])], 20])
    assert await page.evaluate(TAP) > 0.1  # the loudest while it was fed
    first = await stats(page)
    assert first["packets"] == 50 and first["bufferedMs"] <= 200, first
    # Then nothing: a gap is silence, not a wait.
    await page.wait_for_timeout(300)
    assert await loudest(page, 300) < 0.01
    assert (await stats(page))["bufferedMs"] == 0

    # A stall, then a second of sound at once: most is dropped, and within 0.3 s it is over.
    await page.evaluate(FEED, [[packet(7, 50 + i, p) for i, p in enumerate(tone[50:100])], 0])
    await page.wait_for_timeout(300)
    after = await stats(page)
    assert after["dropped"] - first["dropped"] >= 30, after
    # Over within 0.3 s, give or take a render quantum on a loaded machine.
    assert after["bufferedMs"] <= 20, after
    for _ in range(10):
        if (await stats(page))["bufferedMs"] == 0:
            break
        await page.wait_for_timeout(50)
    assert (await stats(page))["bufferedMs"] == 0
    assert await loudest(page, 200) < 0.01

    # A packet whose length runs past the end of its message is dropped, and the sound goes on.
    broken = packet(7, 100, tone[0])[:-5]
    before = await stats(page)
    await page.evaluate(FEED, [[broken], 0])
    assert (await stats(page))["dropped"] == before["dropped"] + 1
    replay = [packet(9, i, p) for i, p in enumerate(tone[:25])]
    await page.evaluate(TAP)
    await page.evaluate(FEED, [replay, 20])
    assert await page.evaluate(TAP) > 0.1  # the loudest while it was fed
    assert (await stats(page))["packets"] == after["packets"] + 25
    assert page.js_errors == [], page.js_errors


@pytest.mark.parametrize("transport", ["sse", "poll"])
async def test_listeners_without_websockets_hear_through_the_fallback(
    live_server: Any, plain_db: Any, chromium: Any, speech: Speech, tmp_path: Path, transport: str
) -> None:
    """WebSockets blocked for the listener: Join audio connects the fallback again with
    media=audio (long-poll also with its listener id), and the base64 packets play."""
    w = await make_world(plain_db)
    await plain_db.commit()
    url = f"/programmes/{w.programme.id}/sessions/{w.session.id}/live"
    wav = microphone_wav(speech, tmp_path)
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
        hana = await signed_in_page(browser, live_server, w.host)
        await hana.context.grant_permissions(["microphone"], origin=live_server.http)
        priya = await signed_in_page(browser, live_server, w.participant_a)
        await priya.add_init_script(
            "sessionStorage.setItem('rtNoWebSocket', '1');"
            + ("delete window.EventSource;" if transport == "poll" else "")
        )
        asked: list[str] = []
        priya.on("request", lambda r: asked.append(r.url))
        for page in (hana, priya):
            await page.goto(url)
            await expect(page.locator("#room-title")).to_have_text("Plenary")
        await expect(priya.locator("#live-status")).to_have_text(
            "Live (compatibility mode)", timeout=12_000
        )
        await priya.get_by_role("button", name="Join audio").click()
        await hana.get_by_role("button", name="I agree, turn on my microphone").click()
        await expect(hana.locator(".mic-announce")).to_have_text("Microphone on", timeout=10_000)

        await wait_for(priya, lambda: packets(priya), "audio packets through the fallback")
        media = [u for u in asked if f"/live/{transport}?" in u and "media=audio" in u]
        assert media, asked
        if transport == "poll":
            ids = {u.split("listener=")[1].split("&")[0] for u in media}
            assert len(ids) == 1 and len(ids.pop()) >= 16, media
        await priya.evaluate(TAP)
        peak = 0.0
        for _ in range(40):
            await priya.wait_for_timeout(250)
            peak = max(peak, await priya.evaluate(TAP))
            if peak > 0.02:
                break
        assert peak > 0.02, f"the page played nothing louder than {peak}"
        for page in (hana, priya):
            assert page.js_errors == [], page.js_errors
    finally:
        await browser.close()
