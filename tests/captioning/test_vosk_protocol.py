"""The vosk-server protocol at /asr/vosk, through a real server, frame by frame: what
vosk-server clients send, the answers they get, and how bad input is refused."""

from __future__ import annotations

import asyncio
import json
import sys
import time
import wave
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import jiwer
import pytest
import websockets
from sqlalchemy import update

from app.captions.asr_models import AsrToken
from app.captions.asr_tokens import issue_token
from app.captions.routes.asr import vosk_limits
from app.config import Settings
from app.db import make_engine, make_sessionmaker, utcnow
from captioning.engine import CaptionEngine
from captioning.vosk_protocol import VoskLimits
from tests.audio_fixtures import (  # noqa: F401 - the fixtures
    SENTENCES,
    Speech,
    frames,
    silence,
    speech_fixture,
    vosk_model_path_fixture,
)
from tests.conftest import LiveServer

CLIENT = Path(__file__).resolve().parents[1] / "vosk_client_example.py"
# Sentences the small model gets right from espeak at 16 and 48 kHz, and at 8 kHz.
CLEAR = SENTENCES[0]
CLEAR_8K = SENTENCES[3]


@pytest.fixture
def settings(settings: Settings, request: pytest.FixtureRequest) -> Settings:
    """The real model only for tests that ask for it (through `vosk_server`), so the
    others start their apps without paying for loading it."""
    if "vosk_model_path" not in request.fixturenames:
        return settings
    model = request.getfixturevalue("vosk_model_path")
    return settings.model_copy(update={"vosk_model_path": model})


async def new_token(settings: Settings, *, days: int = 30) -> tuple[str, int]:
    engine = make_engine(settings.async_database_url)
    try:
        async with make_sessionmaker(engine)() as db:
            issued = await issue_token(db, label="test client", days=days, created_by=None)
            return issued.secret, issued.token.id
    finally:
        await engine.dispose()


class VoskServer:
    def __init__(self, live: LiveServer, token: str, settings: Settings) -> None:
        self.live, self.token, self.settings = live, token, settings

    @property
    def url(self) -> str:
        return f"{self.live.ws}/asr/vosk?token={self.token}"

    @property
    def engine(self) -> CaptionEngine:
        engine: CaptionEngine = self.live.app_state.captions
        return engine

    def limit(self, limits: VoskLimits) -> None:
        self.live.server.config.app.dependency_overrides[vosk_limits] = lambda: limits

    async def connect(self, url: str | None = None) -> Any:
        return await websockets.connect(url or self.url, open_timeout=10, close_timeout=5)


@pytest.fixture
async def vosk_server(
    live_server: LiveServer, settings: Settings, vosk_model_path: Path
) -> AsyncIterator[VoskServer]:
    token, _ = await new_token(settings)
    server = VoskServer(live_server, token, settings)
    assert server.engine.available, server.engine.status
    yield server


async def answer(ws: Any, timeout: float = 30) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), timeout))
    return parsed


async def until_closed(ws: Any, timeout: float = 30) -> tuple[int | None, str, list[Any]]:
    """What the server still sent, then its close code and reason."""
    messages = []
    try:
        async with asyncio.timeout(timeout):
            async for message in ws:
                messages.append(json.loads(message))
    except websockets.ConnectionClosed:
        pass
    return ws.close_code, ws.close_reason, messages


async def send_all(ws: Any, pcm: bytes, frame_bytes: int = 8000) -> list[dict[str, Any]]:
    """Frames one by one, each with its answer, as vosk-server clients do."""
    answers = []
    for frame in frames(pcm, frame_bytes):
        await ws.send(frame)
        answers.append(await answer(ws))
    return answers


def texts(answers: list[dict[str, Any]]) -> str:
    return " ".join(a["text"] for a in answers if a.get("text"))


async def test_a_vosk_server_client_transcribes_a_wav_unchanged(
    vosk_server: VoskServer, speech: Speech, tmp_path: Path
) -> None:
    wav = tmp_path / "two sentences.wav"
    pcm = speech.pcm(SENTENCES[0]) + silence(1.0) + speech.pcm(SENTENCES[4])
    with wave.open(str(wav), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes(pcm)
    client = await asyncio.create_subprocess_exec(
        sys.executable,
        str(CLIENT),
        str(wav),
        vosk_server.url,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(client.communicate(), 60)
    assert client.returncode == 0, stderr.decode()

    decoder, printed, text = json.JSONDecoder(), [], stdout.decode().strip()
    while text:  # Vosk writes its JSON over several lines
        message, end = decoder.raw_decode(text)
        printed.append(message)
        text = text[end:].strip()
    assert len(printed) == len(frames(pcm, 8000)) + 1  # one answer per frame, then the final
    assert texts(printed) == f"{SENTENCES[0]} {SENTENCES[4]}"


async def test_frame_by_frame_with_the_rate_as_a_string(
    vosk_server: VoskServer, speech: Speech
) -> None:
    ws = await vosk_server.connect()
    await ws.send(json.dumps({"config": {"sample_rate": "16000", "colour": "ignored"}}))
    pcm = speech.pcm(CLEAR) + silence(1.0)
    answers = await send_all(ws, pcm, 6400)
    assert len(answers) == len(frames(pcm, 6400))
    assert all(set(a) in ({"partial"}, {"result", "text"}) for a in answers), answers
    assert any(a.get("partial") for a in answers)  # partials while speaking
    await ws.send('{"eof":1}')
    final = await answer(ws)
    assert "text" in final
    code, _reason, rest = await until_closed(ws)
    assert (code, rest) == (1000, [])
    assert texts([*answers, final]) == CLEAR
    words = [w for a in [*answers, final] for w in a.get("result", [])]
    assert [w["word"] for w in words] == CLEAR.split()  # words are on by default
    assert all({"start", "end", "conf"} <= set(w) for w in words)


async def test_eof_in_any_json_spelling(vosk_server: VoskServer, speech: Speech) -> None:
    pcm = speech.pcm(CLEAR)
    for eof in ('{"eof" : 1}', '{"eof":1}', '{"eof": true}', '{ "eof" :\n 1 }'):
        ws = await vosk_server.connect()
        await ws.send(json.dumps({"config": {"sample_rate": 16000}}))
        answers = await send_all(ws, pcm, 32000)
        await ws.send(eof)
        answers.append(await answer(ws))
        code, _reason, _rest = await until_closed(ws)
        assert code == 1000, eof
        assert texts(answers) == CLEAR, eof


async def test_reset_drops_what_was_said(vosk_server: VoskServer, speech: Speech) -> None:
    ws = await vosk_server.connect()
    first = speech.pcm(SENTENCES[1])
    partials = await send_all(ws, first[: len(first) // 2])
    assert partials[-1]["partial"]
    await ws.send('{"reset": 1}')
    assert await answer(ws) == {"partial": ""}
    answers = await send_all(ws, speech.pcm(CLEAR))
    await ws.send('{"eof" : 1}')
    answers.append(await answer(ws))
    assert texts(answers) == CLEAR


@pytest.mark.parametrize(("rate", "sentence"), [(48000, CLEAR), (8000, CLEAR_8K)])
async def test_other_sample_rates(
    vosk_server: VoskServer, speech: Speech, rate: int, sentence: str
) -> None:
    ws = await vosk_server.connect()
    await ws.send(json.dumps({"config": {"sample_rate": rate, "words": 0}}))
    answers = await send_all(ws, speech.pcm(sentence, rate), 2 * rate // 4)
    await ws.send('{"eof" : 1}')
    answers.append(await answer(ws))
    assert all("result" not in a for a in answers)  # words off
    assert jiwer.wer(sentence, texts(answers)) <= 0.2, texts(answers)


async def test_audio_before_any_config_is_taken_as_16_khz(
    vosk_server: VoskServer, speech: Speech
) -> None:
    ws = await vosk_server.connect()
    answers = await send_all(ws, speech.pcm(CLEAR))
    await ws.send('{"eof" : 1}')
    answers.append(await answer(ws))
    assert texts(answers) == CLEAR


async def test_alternatives_and_phrase_lists(vosk_server: VoskServer, speech: Speech) -> None:
    ws = await vosk_server.connect()
    await ws.send('{"config": {"max_alternatives": 3, "sample_rate": 16000.0}}')
    await send_all(ws, speech.pcm(CLEAR), 32000)
    await ws.send('{"eof" : 1}')
    final = await answer(ws)
    assert final["alternatives"][0]["text"] == CLEAR

    # An empty phrase list crashes Vosk itself; here it means "no phrase list".
    ws = await vosk_server.connect()
    await ws.send('{"config": {"phrase_list": [], "words": false}}')
    answers = await send_all(ws, speech.pcm(CLEAR), 32000)
    await ws.send('{"eof" : 1}')
    answers.append(await answer(ws))
    assert texts(answers) == CLEAR


async def test_odd_length_frames_are_carried_over(vosk_server: VoskServer, speech: Speech) -> None:
    ws = await vosk_server.connect()
    answers = await send_all(ws, speech.pcm(CLEAR), 7999)
    await ws.send('{"eof" : 1}')
    answers.append(await answer(ws))
    assert texts(answers) == CLEAR


BAD_INPUT = [
    ('{"config": {"sample_rate": 100}}', 1003, "from 8000 to 48000"),
    ('{"config": {"sample_rate": 96000}}', 1003, "from 8000 to 48000"),
    ('{"config": {"sample_rate": "fast"}}', 1003, "must be a number"),
    ('{"config": {"sample_rate": null}}', 1003, "must be a number"),
    ('{"config": "16000"}', 1003, "config must be an object"),
    ('{"config": {"max_alternatives": 500}}', 1003, "from 0 to 20"),
    ('{"config": {"words": "maybe"}}', 1003, "true or false"),
    ('{"config": {"phrase_list": "one two"}}', 1003, "list of phrases"),
    ('{"config": {"model": "/srv/other-model"}}', 1008, "the server chooses the model"),
    ("hello", 1003, "text frames must be JSON"),
    ("[" * 50_000 + "]" * 50_000, 1003, "text frames must be JSON"),
    ('{"eof": 0}', 1003, "unknown message"),
    ('{"start": 1}', 1003, "unknown message"),
    (b"\x00" * (1024 * 1024 + 1), 1009, "frame too big"),
    ("x" * (300 * 1024), 1009, "text frame too big"),
]


async def test_bad_input_is_refused_with_a_code_and_a_reason(vosk_server: VoskServer) -> None:
    for frame, code, reason in BAD_INPUT:
        ws = await vosk_server.connect()
        await ws.send(frame)
        closed_code, closed_reason, messages = await until_closed(ws)
        label = repr(frame[:60])
        assert closed_code == code, label
        assert reason in closed_reason, (label, closed_reason)
        assert messages == [{"error": messages[0]["error"]}] and reason in messages[0]["error"]
    assert vosk_server.engine.recognizers_alive == 0


async def test_idle_and_endless_streams_are_closed(vosk_server: VoskServer) -> None:
    vosk_server.limit(VoskLimits(idle_seconds=0.5))
    ws = await vosk_server.connect()
    await ws.send(silence(0.2))
    await answer(ws)
    code, reason, _ = await until_closed(ws, timeout=10)
    assert (code, reason) == (1001, "idle: no audio for 0.5 seconds")

    vosk_server.limit(VoskLimits(idle_seconds=5, max_stream_seconds=1.5))
    ws = await vosk_server.connect()
    started = time.monotonic()
    try:
        while time.monotonic() - started < 10:
            await ws.send(silence(0.1))
            await answer(ws)
            await asyncio.sleep(0.1)
    except websockets.ConnectionClosed:
        pass
    code, reason, _ = await until_closed(ws)
    assert code == 1008
    assert reason.startswith("stream too long")
    assert time.monotonic() - started < 5


async def test_a_client_that_vanishes_mid_utterance_frees_its_recognizer(
    vosk_server: VoskServer, speech: Speech
) -> None:
    ws = await vosk_server.connect()
    await send_all(ws, speech.pcm(SENTENCES[1])[:32000])
    assert vosk_server.engine.recognizers_alive == 1
    ws.transport.abort()  # no close frame: the network went away
    for _ in range(100):
        if vosk_server.engine.recognizers_alive == 0:
            break
        await asyncio.sleep(0.05)
    assert vosk_server.engine.recognizers_alive == 0


async def test_flooding_clients_do_not_hold_up_a_live_one(
    vosk_server: VoskServer, speech: Speech
) -> None:
    """Two clients streaming files as fast as they can (as many as the test machine has
    cores, or more) next to one speaking in real time."""
    recording = b"".join(speech.pcm(s) for s in SENTENCES)  # about 20 s
    flood_frames = frames(recording, 512 * 1024)
    stop = asyncio.Event()

    async def flood() -> int:
        ws = await vosk_server.connect()
        sent = 0
        while not stop.is_set():
            await ws.send(flood_frames[sent % len(flood_frames)])
            await answer(ws, timeout=60)
            sent += 1
        await ws.close()
        return sent

    flooding = [asyncio.create_task(flood()) for _ in range(2)]
    await asyncio.sleep(0.3)
    ws = await vosk_server.connect()
    latencies, answers = [], []
    for frame in frames(speech.pcm(CLEAR), 6400):
        started = time.perf_counter()
        await ws.send(frame)
        answers.append(await answer(ws))
        latencies.append(time.perf_counter() - started)
        await asyncio.sleep(0.1)
    await ws.send('{"eof" : 1}')
    answers.append(await answer(ws))
    stop.set()
    sent = await asyncio.gather(*flooding)
    print(f"\nlive answers while two clients flood: max {max(latencies):.2f} s; floods {sent}")
    assert texts(answers) == CLEAR
    assert max(latencies) < 1.5, latencies
    assert min(sent) >= 1  # the floods made progress too


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ("", "a token is required"),
        ("?token=", "a token is required"),
        ("?token=rtasr_not-a-real-token", "this token is not valid"),
        ("?token=" + "x" * 500, "this token is not valid"),
    ],
)
async def test_streams_without_a_valid_token_are_refused(
    live_server: LiveServer, query: str, reason: str
) -> None:
    ws = await websockets.connect(f"{live_server.ws}/asr/vosk{query}", open_timeout=10)
    code, closed_reason, messages = await until_closed(ws)
    assert code == 1008
    assert closed_reason.startswith(reason)
    assert messages == [{"error": closed_reason}]


async def test_expired_and_revoked_tokens_are_refused(
    live_server: LiveServer, settings: Settings
) -> None:
    expired, expired_id = await new_token(settings)
    revoked, revoked_id = await new_token(settings)
    engine = make_engine(settings.async_database_url)
    async with make_sessionmaker(engine)() as db:
        await db.execute(
            update(AsrToken).where(AsrToken.id == expired_id).values(expires_at=utcnow())
        )
        await db.execute(
            update(AsrToken).where(AsrToken.id == revoked_id).values(revoked_at=utcnow())
        )
        await db.commit()
    await engine.dispose()
    for token, reason in (
        (expired, "this token has expired"),
        (revoked, "this token has been revoked"),
    ):
        ws = await websockets.connect(f"{live_server.ws}/asr/vosk?token={token}", open_timeout=10)
        assert await until_closed(ws) == (1008, reason, [{"error": reason}])


async def test_without_a_model_the_endpoint_says_captions_are_unavailable(
    live_server: LiveServer, settings: Settings
) -> None:
    token, _ = await new_token(settings)
    ws = await websockets.connect(f"{live_server.ws}/asr/vosk?token={token}", open_timeout=10)
    reason = "captions unavailable: the speech model is not installed"
    assert await until_closed(ws) == (1011, reason, [{"error": reason}])
    async with live_server.client() as http:
        health = (await http.get("/healthz")).json()
    assert health["captions"].startswith("captions unavailable: no Vosk model at")
