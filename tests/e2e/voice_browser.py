"""Voice in real Chromium, shared by the browser voice tests: a speaker's own Chromium whose
fake microphone plays an espeak-ng WAV over and over, and an "ear" in a listener's page that
records exactly what the page plays (a ScriptProcessorNode on window.RoundtableVoice.output, the
player's final GainNode) and logs the media packets its live connection hands the player
(with the room the page showed when each arrived). What was recorded is cut into utterances
and transcribed with the real Vosk model."""

from __future__ import annotations

import base64
import functools
import json
import wave
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import numpy as np
from playwright.async_api import expect

from tests.audio_fixtures import Speech, model_path, silence
from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS
from tests.voice.voice_helpers import resampled

RATE = 48000
FRAME = RATE // 50  # 20 ms

# Before "Join audio": wrap the live connection's way to the player so every media message
# is logged, packet by packet: [source, room title shown when it arrived, ms since load].
LOG_PACKETS = """() => {
  const live = window.RoundtableLive, listen = live.listen;
  const ear = window.__ear = { log: [], rec: null };
  live.listen = (f) => listen(f && ((buf) => {
    const v = new DataView(buf), title = document.getElementById("room-title");
    const room = title ? title.textContent : "", now = performance.now();
    for (let at = 0; at + 13 <= buf.byteLength; at += 13 + v.getUint16(at + 11)) {
      ear.log.push([v.getUint32(at + 1), room, now]);
    }
    f(buf);
  }));
}"""

# The recorder: a ScriptProcessorNode on the player's output (the page's Content-Security-
# Policy lets no test script load as an AudioWorklet module), keeping every block it is
# given (silence when nothing plays), with the context's clock to see whether any was lost.
CONNECT_RECORDER = """() => {
  const v = window.RoundtableVoice, ear = window.__ear;
  const node = v.context.createScriptProcessor(4096, 1, 1);
  const rec = ear.rec = { chunks: [], on: false, node: node, samples: 0, since: 0 };
  node.onaudioprocess = (e) => {
    if (!rec.on) return;
    rec.chunks.push(new Float32Array(e.inputBuffer.getChannelData(0)));
    rec.samples += e.inputBuffer.length;
  };
  v.output.connect(node);
  node.connect(v.context.destination);  // it runs only when connected; it outputs silence
}"""

# What was recorded since the last look, as base64 16-bit PCM (48 kHz mono).
TAKE = """() => {
  const rec = window.__ear.rec, chunks = rec.chunks.splice(0);
  let n = 0;
  for (const c of chunks) n += c.length;
  const out = new Int16Array(n);
  let at = 0;
  for (const c of chunks) for (let i = 0; i < c.length; i++) {
    out[at++] = Math.max(-32768, Math.min(32767, Math.round(c[i] * 32767)));
  }
  const bytes = new Uint8Array(out.buffer);
  let s = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    s += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  }
  return btoa(s);
}"""


def microphone_wav(speech: Speech, folder: Path, sentence: str, pad: float = 0.6) -> Path:
    """What a fake microphone plays, looped: the sentence with `pad` seconds of silence on
    each side, so every loop is an utterance of its own."""
    path = folder / "microphone.wav"
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes(silence(pad, RATE) + speech.pcm(sentence, RATE) + silence(pad, RATE))
    return path


@asynccontextmanager
async def speaker_browser(chromium: Any, wav: Path) -> AsyncIterator[Any]:
    """A Chromium of its own (the fake microphone is per browser process): every page in
    it that turns the microphone on hears `wav`, over and over."""
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
        yield browser
    finally:
        await browser.close()


async def join_audio(page: Any, room: str) -> None:
    """Press "Join audio" with the ear in place: packets logged, what plays recorded."""

    await page.evaluate(LOG_PACKETS)
    await page.get_by_role("button", name="Join audio").click()
    await expect(page.get_by_role("button", name="Leave audio")).to_be_visible()
    await expect(page.locator(".voice-message")).to_have_text(f"You are hearing {room}.")
    await page.wait_for_function("() => window.RoundtableVoice.output")
    await page.evaluate(CONNECT_RECORDER)


async def start_recording(page: Any) -> None:
    await page.evaluate(
        """() => { const r = window.__ear.rec; r.chunks = []; r.on = true; r.samples = 0;
        r.since = window.RoundtableVoice.context.currentTime; }"""
    )


async def lost_seconds(page: Any) -> float:
    """How much of what played since recording started the recorder missed (a page too
    busy to take a block in time)."""
    return float(
        await page.evaluate(
            """() => { const r = window.__ear.rec;
            return window.RoundtableVoice.context.currentTime - r.since - r.samples / 48000; }"""
        )
    )


async def recorded(page: Any) -> np.ndarray:
    """What the page played since the last look (16-bit samples, 48 kHz)."""
    data = base64.b64decode(await page.evaluate(TAKE))
    return np.frombuffer(data, dtype=np.int16)


async def packet_log(page: Any) -> list[tuple[int, str, float]]:
    """Every media packet the page received: (source, room shown then, ms since load)."""
    return [tuple(p) for p in await page.evaluate("() => window.__ear.log")]  # type: ignore[misc]


async def voice_stats(page: Any) -> dict[str, int]:
    return dict(await page.evaluate("() => ({...window.RoundtableVoice.stats})"))


def rms(samples: np.ndarray) -> float:
    if not len(samples):
        return 0.0
    return float(np.sqrt(np.mean(samples.astype(np.float64) ** 2)))


def utterances(
    samples: np.ndarray, *, loud: float = 400, gap: float = 0.5, quiet_edge: float = 0.3
) -> list[tuple[int, int]]:
    """Complete utterances in a recording, as (start, end) sample indexes: stretches of
    20 ms frames louder than `loud` (RMS), pauses shorter than `gap` s belonging to the
    same stretch, with at least `quiet_edge` s of quiet recorded before and after (so
    none is cut off by the start or end of the recording) and at least 0.8 s long."""
    frames = len(samples) // FRAME
    if frames == 0:
        return []
    levels = np.sqrt(
        np.mean(samples[: frames * FRAME].astype(np.float64).reshape(frames, FRAME) ** 2, axis=1)
    )
    loud_frames = np.flatnonzero(levels > loud)
    spans: list[list[int]] = []
    for f in loud_frames:
        if spans and f - spans[-1][1] <= gap * 50:
            spans[-1][1] = int(f)
        else:
            spans.append([int(f), int(f)])
    edge = int(quiet_edge * 50)
    whole = [
        (a * FRAME, (b + 1) * FRAME)
        for a, b in spans
        if a >= edge and b + edge < frames and (b + 1 - a) >= 40
    ]
    return whole


@functools.cache
def vosk_model() -> Any:
    from vosk import Model, SetLogLevel

    SetLogLevel(-1)
    return Model(str(model_path()))


def transcribe(samples: np.ndarray) -> str:
    """The words Vosk hears in 48 kHz 16-bit audio."""
    from vosk import KaldiRecognizer

    recognizer = KaldiRecognizer(vosk_model(), 16000)
    recognizer.AcceptWaveform(resampled(samples.astype(np.int16).tobytes(), RATE, 16000))
    return str(json.loads(recognizer.FinalResult()).get("text", ""))


async def hear_an_utterance(
    page: Any, others: tuple[Any, ...] = (), seconds: float = 20
) -> tuple[np.ndarray, tuple[int, int], dict[Any, np.ndarray]]:
    """Record what `page` plays (already recording) until a whole utterance is in it, at
    most `seconds`; what `others` played meanwhile comes too. AssertionError if none."""
    heard = np.zeros(0, dtype=np.int16)
    theirs: dict[Any, np.ndarray] = {other: np.zeros(0, dtype=np.int16) for other in others}
    for _ in range(int(seconds)):
        await page.wait_for_timeout(1000)
        heard = np.concatenate([heard, await recorded(page)])
        for other in others:
            theirs[other] = np.concatenate([theirs[other], await recorded(other)])
        found = utterances(heard)
        if found:
            lost = await lost_seconds(page)
            st = await voice_stats(page)
            print(f"utterance after {len(heard) / RATE:.1f} s recorded ({lost:.2f} s lost) {st}")
            return heard, found[0], theirs
    raise AssertionError(
        f"no whole utterance in {len(heard) / RATE:.1f} s of what the page played "
        f"(RMS {rms(heard):.0f}, loudest {int(np.abs(heard).max(initial=0))})"
    )


def words_of(samples: np.ndarray, span: tuple[int, int]) -> str:
    """The transcript of one utterance, with a quarter second either side."""
    pad = RATE // 4
    return transcribe(samples[max(0, span[0] - pad) : span[1] + pad])
