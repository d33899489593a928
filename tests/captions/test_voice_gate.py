"""Captions that cost nothing in silence (captioning/vad.py) and recognizers only for the
people speaking (captioning/recognizer_pool.py), with the real Vosk model and espeak-ng
speech: the same words as without the gate, no recognition in pauses, a final at the
end of each sentence at the right wall-clock time, silent microphones holding no
recognizer, and a recognizer used again giving the same text as a new one."""

from __future__ import annotations

import asyncio
import gc
import random
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import jiwer

from captioning.engine import CaptionEngine
from captioning.live import LiveCaptionStream, Utterance
from captioning.recognizer_pool import RecognizerPool
from captioning.stream import RecognizerStream
from realtime.db import utcnow
from tests.audio_fixtures import (  # noqa: F401 - the fixtures
    SENTENCES,
    Speech,
    caption_engine_fixture,
    frames,
    silence,
    speech_fixture,
    vosk_model_path_fixture,
)

RATE = 48000  # what the microphone's Opus is decoded to
FRAME = 2 * RATE // 50  # 20 ms, as Opus packets come


@dataclass
class Notebook:
    finals: list[Utterance] = field(default_factory=list)
    final_at: list[float] = field(default_factory=list)

    async def partial(self, to: str, stream_id: str, text: str) -> None:
        pass

    async def final(self, to: str, utterance: Utterance) -> None:
        self.finals.append(utterance)
        self.final_at.append(time.monotonic())


class CountingEngine(CaptionEngine):
    """The engine on the already loaded model, counting its calls into Vosk."""

    calls: int = 0
    made: int = 0

    def submit(self, fn: Any, *args: Any) -> Future[Any]:
        self.calls += 1
        return super().submit(fn, *args)

    def new_recognizer(
        self, sample_rate: float, *, words: bool, max_alternatives: int, grammar: str | None
    ) -> Any:
        self.made += 1
        return super().new_recognizer(
            sample_rate, words=words, max_alternatives=max_alternatives, grammar=grammar
        )


def own_engine(engine: CaptionEngine, pool: RecognizerPool | None = None) -> CountingEngine:
    return CountingEngine(
        model_path=engine.model_path,
        model=engine.model,
        status="ok",
        features=engine.features,
        pool=ThreadPoolExecutor(max_workers=2, thread_name_prefix="vosk-gate"),
        recognizers=pool or RecognizerPool(),
    )


def live_stream(engine: CaptionEngine, notebook: Notebook, gate: bool) -> LiveCaptionStream[str]:
    return LiveCaptionStream(
        engine=engine, sink=notebook, room="r", sample_rate=RATE, budget=None, voice_gate=gate
    )


def room_noise(seconds: float) -> bytes:
    """A quiet room through a microphone: low noise, never exactly zero."""
    rng = random.Random(12)
    count = int(seconds * RATE)
    return b"".join(rng.randint(-40, 40).to_bytes(2, "little", signed=True) for _ in range(count))


def rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


async def test_the_gate_keeps_every_word_of_continuous_speech(
    caption_engine: CaptionEngine, speech: Speech
) -> None:
    """Sentences one after another, as someone talks: the same word error rate with the
    gate as without it (the pre-roll keeps first words, the hangover never cuts one)."""
    gap = silence(0.25, RATE)
    audio = b"".join(speech.pcm(s, RATE) + gap for s in SENTENCES)
    texts = {}
    for gate in (False, True):
        notebook = Notebook()
        stream = live_stream(caption_engine, notebook, gate)
        try:
            for chunk in frames(audio, FRAME):
                await stream.feed(chunk)
            await stream.finish()
        finally:
            stream.close()
        texts[gate] = " ".join(u.text for u in notebook.finals)
    reference = " ".join(SENTENCES)
    without, with_gate = jiwer.wer(reference, texts[False]), jiwer.wer(reference, texts[True])
    print(f"\nWER without the gate {without:.3f}, with it {with_gate:.3f}")
    assert with_gate <= without + 0.03, texts


async def test_pauses_cost_nothing_and_each_sentence_ends_on_time(
    caption_engine: CaptionEngine, speech: Speech
) -> None:
    """Two sentences with a long pause, sent at the pace of speech: no call into Vosk in
    the pause, a final for each sentence within a second of its end, and each caption's
    wall-clock time where the sentence was said (the pause is not squeezed out)."""
    engine = own_engine(caption_engine)
    notebook = Notebook()
    stream = live_stream(engine, notebook, gate=True)
    first, second = speech.pcm(SENTENCES[0], RATE), speech.pcm(SENTENCES[3], RATE)
    pause = 2.5
    audio = first + silence(pause, RATE) + second + silence(1.0, RATE)
    second_at = (len(first) / 2 + pause * RATE) / RATE
    calls_in_pause = []
    began_wall, began = utcnow(), time.monotonic()
    try:
        for n, chunk in enumerate(frames(audio, FRAME)):
            at, calls = n * 0.02, engine.calls
            await stream.feed(chunk)
            if len(first) / 2 / RATE + 1.0 < at < second_at - 0.4:
                calls_in_pause.append(engine.calls - calls)
            await asyncio.sleep(max(0.0, began + at + 0.02 - time.monotonic()))
        assert engine.recognizers_in_use == 0  # the trailing silence ended the utterance
        await stream.finish()
    finally:
        stream.close()
        engine.close()

    assert len(calls_in_pause) > 50 and sum(calls_in_pause) == 0, calls_in_pause
    said = " ".join(u.text for u in notebook.finals)
    assert len(notebook.finals) == 2, said
    assert jiwer.wer(SENTENCES[0] + " " + SENTENCES[3], said) <= 0.2, said
    # Each final within a second of its sentence's end (the hangover is 0.6 s).
    first_end, second_end = len(first) / 2 / RATE, second_at + len(second) / 2 / RATE
    lags = [notebook.final_at[0] - began - first_end, notebook.final_at[1] - began - second_end]
    assert all(lag < 1.0 for lag in lags), lags
    # Times: in seconds of what was sent, and on the wall clock.
    one, two = notebook.finals
    assert one.stream_start < 0.3 and abs(two.stream_start - second_at) < 0.3, (one, two)
    assert abs(seconds_between(began_wall, two.started_at) - second_at) < 0.3
    assert abs(seconds_between(one.started_at, two.started_at) - second_at) < 0.3


def seconds_between(a: datetime, b: datetime) -> float:
    return (b - a).total_seconds()


async def test_silent_open_microphones_hold_no_recognizer(caption_engine: CaptionEngine) -> None:
    """Ten microphones open in a quiet room for five seconds: no recognizer, no call into
    Vosk, and (almost) no memory; without the gate one such stream holds a recognizer."""
    engine = own_engine(caption_engine)
    noise = room_noise(5.0)
    gc.collect()
    before = rss_mb()
    streams = [live_stream(engine, Notebook(), gate=True) for _ in range(10)]
    try:
        for chunk in frames(noise, FRAME):
            for stream in streams:
                await stream.feed(chunk)
        gc.collect()
        grown = rss_mb() - before
        assert engine.calls == 0
        assert engine.recognizers_alive == 0 and engine.recognizers_in_use == 0
        print(f"\nRSS for 10 silent open microphones: +{grown:.1f} MB")
        assert grown / len(streams) < 30
        ungated = live_stream(engine, Notebook(), gate=False)
        for chunk in frames(noise[: RATE * 2], FRAME * 5):
            await ungated.feed(chunk)
        assert engine.recognizers_alive == 1 and engine.calls > 0
        ungated.close()
    finally:
        for stream in streams:
            stream.close()
        engine.close()


async def test_a_recognizer_used_again_hears_like_a_new_one(
    caption_engine: CaptionEngine, speech: Speech
) -> None:
    """One stream's finished recognizer goes to the next speaker: the same text, and word
    times in the new speaker's own stream, as from a recognizer made for them."""
    engine = own_engine(caption_engine)
    fresh = own_engine(caption_engine, RecognizerPool(max_idle=0))
    try:
        first = RecognizerStream(engine, RATE)
        await transcribe(first, speech.pcm(SENTENCES[1], RATE))
        first.close()
        assert engine.recognizers.idle == 1
        results = {}
        for name, which in (("reused", engine), ("new", fresh)):
            stream = RecognizerStream(which, RATE)
            results[name] = [
                await transcribe(stream, speech.pcm(s, RATE)) for s in (SENTENCES[4], SENTENCES[2])
            ]
            stream.close()
        # The first stream's recognizer, used again throughout, and kept for the next.
        assert engine.made == 1 and engine.recognizers.idle == 1
        assert fresh.made == 2 and fresh.recognizers.idle == 0
    finally:
        engine.close()
        fresh.close()
    for reused, new in zip(results["reused"], results["new"], strict=True):
        assert reused["text"] == new["text"]
        times = [(w["start"], w["end"]) for w in reused["result"]]
        expected = [(w["start"], w["end"]) for w in new["result"]]
        assert len(times) == len(expected)
        for (start, end), (new_start, new_end) in zip(times, expected, strict=True):
            assert abs(start - new_start) < 0.05 and abs(end - new_end) < 0.05, (times, expected)


async def transcribe(stream: RecognizerStream, pcm: bytes) -> dict[str, Any]:
    """One utterance; Vosk's own endpoint results and its final joined."""
    words: list[dict[str, Any]] = []
    texts: list[str] = []
    answers = [await stream.accept(chunk) for chunk in frames(pcm, FRAME * 5)]
    for answer in [*answers, await stream.final()]:
        if answer.get("text"):
            texts.append(answer["text"])
            words += answer.get("result", [])
    return {"text": " ".join(texts), "result": words}


async def test_when_every_recognizer_is_busy_a_new_speaker_waits_their_turn(
    caption_engine: CaptionEngine, speech: Speech
) -> None:
    engine = own_engine(caption_engine, RecognizerPool(max_in_use=1))
    first, second = RecognizerStream(engine, RATE), RecognizerStream(engine, RATE)
    try:
        await first.accept(speech.pcm(SENTENCES[5], RATE))
        waiting = asyncio.create_task(transcribe(second, speech.pcm(SENTENCES[0], RATE)))
        await asyncio.sleep(0.3)
        assert not waiting.done() and engine.recognizers_in_use == 1
        assert (await first.final())["text"] == SENTENCES[5]
        heard = await asyncio.wait_for(waiting, 20)
    finally:
        first.close()
        second.close()
        engine.close()
    assert jiwer.wer(SENTENCES[0], heard["text"]) <= 0.2
    assert engine.recognizers.waits.count == 1
    assert engine.recognizers.waits.longest_seconds >= 0.3
