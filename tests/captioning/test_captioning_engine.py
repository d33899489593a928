"""The captioning engine with real Vosk and spoken audio: accuracy, word times, odd frames,
budgets, fairness between streams, and that recognition stays off the event loop."""

from __future__ import annotations

import asyncio
import gc
import json
import math
import os
import subprocess
import sys
import threading
import time
import zipfile
from array import array
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import jiwer
import pytest

from captioning.audio import Upsampler, samples_from_pcm
from captioning.engine import CaptionEngine, CaptionsUnavailable
from captioning.model_fetch import FetchError, unpack_model
from captioning.stream import (
    FILE_BUDGET,
    RealtimeBudget,
    RecognizerStream,
    StreamConfigError,
    StreamLimitExceeded,
)
from tests.audio_fixtures import (  # noqa: F401 - the fixtures
    SENTENCES,
    Speech,
    caption_engine_fixture,
    frames,
    silence,
    speech_fixture,
    vosk_model_path_fixture,
)

# Word error rates measured with espeak-ng's en-us voice on the small en-us model
# (0.3.45): 0.22 at 16 and 48 kHz, 0.45 at 8 kHz (telephone band, upsampled by us).
# The bounds leave room for other espeak-ng versions.
WER_BOUNDS = {16000: 0.35, 48000: 0.35, 8000: 0.6}
FRAME_SECONDS = 0.25


def utterance_texts(answers: list[dict[str, Any]]) -> str:
    return " ".join(a["text"] for a in answers if a.get("text"))


async def transcribe(stream: RecognizerStream, pcm: bytes, frame_bytes: int) -> str:
    answers = [await stream.accept(frame) for frame in frames(pcm, frame_bytes)]
    answers.append(await stream.final())
    return utterance_texts(answers)


def shared_model_engine(engine: CaptionEngine, workers: int, prefix: str = "vosk") -> CaptionEngine:
    """Another engine on the already loaded model, with its own pool."""
    return CaptionEngine(
        model_path=engine.model_path,
        model=engine.model,
        status="ok",
        features=engine.features,
        pool=ThreadPoolExecutor(max_workers=workers, thread_name_prefix=prefix),
    )


@pytest.mark.parametrize("rate", [16000, 48000, 8000])
async def test_spoken_sentences_are_transcribed_within_the_word_error_bound(
    caption_engine: CaptionEngine, speech: Speech, rate: int
) -> None:
    audio = [speech.pcm(s, rate) for s in SENTENCES]
    frame_bytes = 2 * int(rate * FRAME_SECONDS)
    streams = [RecognizerStream(caption_engine, rate) for _ in SENTENCES]
    started = time.perf_counter()
    hypotheses = await asyncio.gather(
        *(transcribe(stream, pcm, frame_bytes) for stream, pcm in zip(streams, audio, strict=True))
    )
    elapsed = time.perf_counter() - started
    for stream in streams:
        stream.close()

    wer = jiwer.wer(SENTENCES, list(hypotheses))
    seconds = sum(len(pcm) / (2 * rate) for pcm in audio)
    print(f"\n{rate} Hz: WER {wer:.3f}; {seconds:.1f} s of audio in {elapsed:.1f} s (parallel)")
    assert wer <= WER_BOUNDS[rate], list(zip(SENTENCES, hypotheses, strict=True))


async def test_real_time_factor_of_one_stream(
    caption_engine: CaptionEngine, speech: Speech
) -> None:
    """Reported, and bounded loosely: one live stream must keep up with speech."""
    pcm = b"".join(speech.pcm(s) for s in SENTENCES[:3])
    stream = RecognizerStream(caption_engine, 16000)
    started = time.perf_counter()
    text = await transcribe(stream, pcm, 2 * int(16000 * FRAME_SECONDS))
    elapsed = time.perf_counter() - started
    stream.close()
    rtf = elapsed / (len(pcm) / 32000)
    print(f"\nreal-time factor of one stream: {rtf:.2f}")
    assert "fox" in text
    assert rtf < 1.0


async def test_words_come_with_times_and_confidence(
    caption_engine: CaptionEngine, speech: Speech
) -> None:
    pcm = speech.pcm(SENTENCES[0]) + silence(1.0)
    stream = RecognizerStream(caption_engine, 16000, words=True)
    answers = [await stream.accept(f) for f in frames(pcm, 8000)]
    answers.append(await stream.final())
    stream.close()
    words = [w for a in answers for w in a.get("result", [])]
    assert [w["word"] for w in words][:4] == ["the", "quick", "brown", "fox"]
    starts = [w["start"] for w in words]
    assert starts == sorted(starts)
    assert all(0 <= w["start"] < w["end"] <= len(pcm) / 32000 for w in words)
    assert all(0 < w["conf"] <= 1 for w in words)
    assert {"partial"} in [set(a) for a in answers]  # partials between the results


async def test_without_words_results_are_text_only(
    caption_engine: CaptionEngine, speech: Speech
) -> None:
    stream = RecognizerStream(caption_engine, 16000, words=False)
    answers = [await stream.accept(speech.pcm(SENTENCES[5])), await stream.final()]
    stream.close()
    assert {"text": SENTENCES[5]} in answers
    assert all(set(a) in ({"text"}, {"partial"}) for a in answers)


async def test_alternatives_when_asked(caption_engine: CaptionEngine, speech: Speech) -> None:
    stream = RecognizerStream(caption_engine, 16000, max_alternatives=3)
    answers = [await stream.accept(speech.pcm(SENTENCES[0])), await stream.final()]
    stream.close()
    alternatives = next(a["alternatives"] for a in answers if a.get("alternatives"))
    assert 1 <= len(alternatives) <= 3
    assert alternatives[0]["text"] == SENTENCES[0]
    assert "confidence" in alternatives[0]


async def test_odd_length_frames_keep_their_last_byte_for_the_next(
    caption_engine: CaptionEngine, speech: Speech
) -> None:
    pcm = speech.pcm(SENTENCES[0])
    stream = RecognizerStream(caption_engine, 16000, words=False)
    text = await transcribe(stream, pcm, 3999)  # every frame splits a sample
    stream.close()
    assert text == SENTENCES[0]


async def test_a_big_frame_is_answered_as_vosk_answers_it_in_one_call(
    caption_engine: CaptionEngine, speech: Speech
) -> None:
    """Slicing for fairness must not change the answer."""
    pcm = speech.pcm(SENTENCES[1]) + silence(1.5) + speech.pcm(SENTENCES[4])
    stream = RecognizerStream(caption_engine, 16000)
    ours = await stream.accept(pcm)
    stream.close()

    def in_one_call() -> dict[str, Any]:
        rec = caption_engine.new_recognizer(16000, words=True, max_alternatives=0, grammar=None)
        answer = rec.Result() if rec.AcceptWaveform(pcm) else rec.PartialResult()
        parsed: dict[str, Any] = json.loads(answer)
        return parsed

    assert len(pcm) > 5 * 32000  # several slices
    assert ours == await asyncio.get_running_loop().run_in_executor(None, in_one_call)


async def test_reset_forgets_the_utterance_in_progress(
    caption_engine: CaptionEngine, speech: Speech
) -> None:
    stream = RecognizerStream(caption_engine, 16000, words=False)
    first = speech.pcm(SENTENCES[0])
    assert (await stream.accept(first[: len(first) // 2]))["partial"]
    assert await stream.reset() == {"partial": ""}
    text = await transcribe(stream, speech.pcm(SENTENCES[5]), 32000)
    stream.close()
    assert text == SENTENCES[5]


async def test_a_phrase_list_limits_what_is_heard(
    caption_engine: CaptionEngine, speech: Speech
) -> None:
    phrases = ["open the breakout rooms", "close the rooms", "[unk]"]
    stream = RecognizerStream(caption_engine, 16000, words=False, phrase_list=phrases)
    text = await transcribe(stream, speech.pcm(SENTENCES[1]), 32000)
    stream.close()
    assert "open the breakout rooms" in text
    assert set(text.split()) <= {"open", "the", "breakout", "rooms", "close", "[unk]"}


async def test_an_empty_phrase_list_means_no_phrase_list(
    caption_engine: CaptionEngine, speech: Speech
) -> None:
    """Vosk crashes the process on a grammar of "[]"; we must never hand it one."""
    stream = RecognizerStream(caption_engine, 16000, words=False, phrase_list=[])
    assert await transcribe(stream, speech.pcm(SENTENCES[5]), 32000) == SENTENCES[5]
    stream.close()


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"sample_rate": 7999}, "from 8000 to 48000"),
        ({"sample_rate": 48001}, "from 8000 to 48000"),
        ({"sample_rate": "fast"}, "must be a number"),
        ({"sample_rate": 16000.5}, "whole number"),
        ({"sample_rate": True}, "must be a number"),
        ({"sample_rate": float("nan")}, "must be a number"),
        ({"sample_rate": None}, "must be a number"),
        ({"max_alternatives": -1}, "from 0 to 20"),
        ({"max_alternatives": 21}, "from 0 to 20"),
        ({"max_alternatives": "many"}, "whole number"),
        ({"phrase_list": "open the rooms"}, "list of phrases"),
        ({"phrase_list": [1, 2]}, "list of phrases"),
        ({"phrase_list": ["x" * 201]}, "at most 200 characters"),
        ({"phrase_list": ["a"] * 1001}, "at most 1000 phrases"),
    ],
)
def test_settings_a_recognizer_cannot_take_are_refused(
    caption_engine: CaptionEngine, settings: dict[str, Any], message: str
) -> None:
    options: dict[str, Any] = {"sample_rate": 16000, **settings}
    with pytest.raises(StreamConfigError, match=message):
        RecognizerStream(caption_engine, **options)


@pytest.mark.parametrize("rate", ["16000", 16000.0, " 8000 ", 44100, "48000.0"])
def test_sample_rates_as_numbers_or_strings(caption_engine: CaptionEngine, rate: object) -> None:
    assert RecognizerStream(caption_engine, rate).sample_rate == int(float(str(rate)))


async def test_audio_much_faster_than_real_time_is_refused_after_the_burst(
    caption_engine: CaptionEngine,
) -> None:
    now = [0.0]
    budget = RealtimeBudget(max_speed=3.0, burst_seconds=0.5)
    stream = RecognizerStream(caption_engine, 16000, budget=budget, clock=lambda: now[0])
    await stream.accept(silence(0.5))  # the burst, at once
    for _ in range(6):  # then 3x real time, sustained
        now[0] += 0.1
        await stream.accept(silence(0.3))
    now[0] += 0.1
    with pytest.raises(StreamLimitExceeded, match="faster than real time"):
        await stream.accept(silence(0.5))
    stream.close()


async def test_file_streams_have_no_speed_limit_but_a_length_limit(
    caption_engine: CaptionEngine,
) -> None:
    stream = RecognizerStream(caption_engine, 16000, budget=FILE_BUDGET, clock=lambda: 0.0)
    await stream.accept(silence(12.0))  # beyond any live burst, at one instant
    stream.close()
    short = RealtimeBudget(max_speed=None, max_audio_seconds=1.0)
    stream = RecognizerStream(caption_engine, 16000, budget=short, clock=lambda: 0.0)
    await stream.accept(silence(0.9))
    with pytest.raises(StreamLimitExceeded, match="too long"):
        await stream.accept(silence(0.2))
    stream.close()


class Spy:
    """A recognizer that notes which thread calls it and how many calls overlap."""

    def __init__(self, recognizer: Any, log: list[str], overlap: list[int]) -> None:
        self._recognizer, self._log, self._overlap = recognizer, log, overlap
        self._active = 0
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._recognizer, name)

        def call(*args: Any) -> Any:
            with self._lock:
                self._active += 1
                self._overlap.append(self._active)
            self._log.append(threading.current_thread().name)
            try:
                time.sleep(0.01)  # widen the window in which overlapping calls would show
                return method(*args)
            finally:
                with self._lock:
                    self._active -= 1

        return call


async def test_recognition_runs_in_the_pool_one_call_at_a_time_per_stream(
    caption_engine: CaptionEngine, speech: Speech
) -> None:
    engine = shared_model_engine(caption_engine, workers=3, prefix="vosk-spy")
    threads: list[str] = []
    overlap: list[int] = []
    made_on: list[str] = []
    real_new = engine.new_recognizer

    def new_recognizer(*args: Any, **kwargs: Any) -> Spy:
        made_on.append(threading.current_thread().name)
        return Spy(real_new(*args, **kwargs), threads, overlap)

    engine.new_recognizer = new_recognizer  # type: ignore[method-assign]
    stream = RecognizerStream(engine, 16000)
    pcm = speech.pcm(SENTENCES[0])
    # Many callers at once, as a careless caller might: still one call at a time.
    await asyncio.gather(*(stream.accept(f) for f in frames(pcm, 48000)), stream.reset())
    await stream.final()
    stream.close()
    engine.close()

    assert made_on and all(name.startswith("vosk-spy") for name in made_on)
    assert len(threads) > 5
    assert all(name.startswith("vosk-spy") for name in threads), set(threads)
    assert max(overlap) == 1


async def test_a_flooding_stream_does_not_hold_up_another_stream(
    caption_engine: CaptionEngine, speech: Speech
) -> None:
    """One worker for two streams: a client sending a minute of audio at once must not make
    a live speaker wait for all of it."""
    engine = shared_model_engine(caption_engine, workers=1)
    flood = RecognizerStream(engine, 16000, budget=FILE_BUDGET)
    flood_task = asyncio.create_task(flood.accept(silence(60.0)))
    await asyncio.sleep(0.2)

    live = RecognizerStream(engine, 16000)
    latencies = []
    for frame in frames(speech.pcm(SENTENCES[5]), 6400):  # 0.2 s frames, about spoken pace
        started = time.perf_counter()
        await live.accept(frame)
        latencies.append(time.perf_counter() - started)
        await asyncio.sleep(0.1)
    live_text = (await live.final())["text"]

    still_flooding = not flood_task.done()
    flood_task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await flood_task
    flood.close()
    live.close()
    engine.close()

    print(f"\nlive frame latencies while flooding: max {max(latencies):.2f} s")
    assert still_flooding, "the flood ended too soon to show anything"
    assert live_text == SENTENCES[5]
    assert max(latencies) < 1.5, latencies


async def test_close_frees_the_recognizer(caption_engine: CaptionEngine, speech: Speech) -> None:
    engine = shared_model_engine(caption_engine, workers=1)
    stream = RecognizerStream(engine, 16000)
    await stream.accept(speech.pcm(SENTENCES[0])[:16000])
    assert engine.recognizers_alive == 1
    stream.close()
    stream.close()  # twice is fine
    # Freed in the worker pool, off the event loop: wait for the pool to get to it.
    await asyncio.get_running_loop().run_in_executor(engine.pool, lambda: None)
    gc.collect()
    assert engine.recognizers_alive == 0
    with pytest.raises(Exception, match="closed"):
        await stream.accept(b"\x00\x00")
    engine.close()


async def test_without_a_model_streams_are_refused_with_a_reason(tmp_path: Path) -> None:
    engine = CaptionEngine(model_path=tmp_path / "nowhere")
    await engine.load()
    assert not engine.available
    assert str(tmp_path) in engine.status  # for the operator, in /healthz
    with pytest.raises(CaptionsUnavailable, match="not installed") as refused:
        RecognizerStream(engine, 16000)
    assert str(tmp_path) not in str(refused.value)  # clients never see server paths
    engine.close()


async def test_a_corrupt_model_is_reported_not_fatal(tmp_path: Path, vosk_model_path: Path) -> None:
    broken = tmp_path / "model"
    (broken / "am").mkdir(parents=True)
    (broken / "am" / "final.mdl").write_bytes(os.urandom(4096))
    (broken / "conf").mkdir()
    for name in ("mfcc.conf", "model.conf"):
        (broken / "conf" / name).write_bytes((vosk_model_path / "conf" / name).read_bytes())
    engine = CaptionEngine(model_path=broken)
    await engine.load()
    assert not engine.available
    assert "failed to load" in engine.status
    with pytest.raises(CaptionsUnavailable, match="failed to load"):
        RecognizerStream(engine, 16000)
    engine.close()


async def test_after_shutdown_streams_say_so(caption_engine: CaptionEngine) -> None:
    engine = shared_model_engine(caption_engine, workers=1)
    stream = RecognizerStream(engine, 16000)
    engine.close()
    with pytest.raises(CaptionsUnavailable, match="shutting down"):
        await stream.accept(silence(0.1))


def test_the_engine_reads_the_model_sample_rate(caption_engine: CaptionEngine) -> None:
    assert caption_engine.features.sample_rate == 16000
    assert caption_engine.features.allows_downsample
    assert not caption_engine.features.allows_upsample  # hence our Upsampler for 8 kHz


def test_the_upsampler_keeps_a_tone_and_doubles_the_samples() -> None:
    tone = array("h", (round(10000 * math.sin(2 * math.pi * 440 * i / 8000)) for i in range(8000)))
    one_go = Upsampler(8000, 16000)
    out = samples_from_pcm(one_go.process(tone.tobytes()) + one_go.flush())
    assert len(out) == 16000
    expected = [10000 * math.sin(2 * math.pi * 440 * i / 16000) for i in range(16000)]
    assert max(abs(a - b) for a, b in zip(out[50:-50], expected[50:-50], strict=True)) < 50

    chunked = Upsampler(8000, 16000)
    pieces = [chunked.process(tone[i : i + 333].tobytes()) for i in range(0, 8000, 333)]
    assert b"".join(pieces) + chunked.flush() == out.tobytes()


def test_the_upsampler_handles_uneven_ratios() -> None:
    upsampler = Upsampler(11025, 16000)
    produced = len(upsampler.process(bytes(2 * 11025))) + len(upsampler.flush())
    assert produced == 2 * 16000


# -- scripts/fetch-model --


def run_fetch(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603
        [sys.executable, "-m", "captioning.model_fetch"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=False,
        cwd=Path(__file__).resolve().parents[2],
    )


def test_fetch_model_leaves_an_installed_model_alone(vosk_model_path: Path) -> None:
    done = run_fetch({"VOSK_MODEL_PATH": str(vosk_model_path)})
    assert done.returncode == 0
    assert f"already installed at {vosk_model_path}" in done.stdout


def test_fetch_model_says_when_maven_is_missing(tmp_path: Path) -> None:
    (tmp_path / "bin").mkdir()
    target = tmp_path / "models" / "model-en-us"
    done = run_fetch({"VOSK_MODEL_PATH": str(target), "PATH": str(tmp_path / "bin")})
    assert done.returncode == 1
    assert "Maven (mvn) is needed" in done.stderr
    assert not target.exists()


def make_aar(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as aar:
        for name, data in members.items():
            aar.writestr(name, data)
    return path


def test_unpacking_takes_only_the_model_folder(tmp_path: Path) -> None:
    aar = make_aar(
        tmp_path / "model.aar",
        {
            "AndroidManifest.xml": b"<manifest/>",
            "assets/model-en-us/am/final.mdl": b"model",
            "assets/model-en-us/conf/mfcc.conf": b"--sample-frequency=16000\n",
            "assets/other/file": b"not ours",
        },
    )
    model = unpack_model(aar, tmp_path / "out")
    assert sorted(str(p.relative_to(model)) for p in model.rglob("*") if p.is_file()) == [
        "am/final.mdl",
        "conf/mfcc.conf",
    ]


def test_unpacking_refuses_archives_without_a_model_or_with_unsafe_paths(tmp_path: Path) -> None:
    empty = make_aar(tmp_path / "empty.aar", {"classes.jar": b""})
    with pytest.raises(FetchError, match="does not contain a Vosk model"):
        unpack_model(empty, tmp_path / "a")
    evil = make_aar(tmp_path / "evil.aar", {"assets/model-en-us/../../escape": b"x"})
    with pytest.raises(FetchError, match="unsafe path"):
        unpack_model(evil, tmp_path / "b" / "c")
    assert not (tmp_path / "escape").exists()
