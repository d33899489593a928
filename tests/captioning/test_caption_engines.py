"""Caption engines elsewhere (captioning/engines.py, remote.py, server.py), in this process:
the chooser spreads streams fewest first and skips an engine that does not answer, or
refuses our token, until it answers again; a stream whose engine stops moves to the next
one, then to the local model, each final handed on once, with its word times in the
whole stream. (tests/captions/test_caption_engines.py kills real engine processes under
two app processes.)"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable
from typing import Any

import jiwer
import pytest
import uvicorn

from captioning.engine import CaptionEngine
from captioning.engines import EngineChooser, parse_engine_urls
from captioning.remote import RemoteRecognizerStream
from captioning.server import create_engine_app
from tests.audio_fixtures import (  # noqa: F401 - the fixtures
    SENTENCES,
    Speech,
    caption_engine_fixture,
    silence,
    speech_fixture,
    vosk_model_path_fixture,
)
from tests.procs import free_port

TOKEN = "engine-token-for-tests"
WER_BOUND = 0.35  # as tests/captions/test_live_captions.py


class EngineServer:
    """Roundtable's caption-only app, served by uvicorn in this process on a fixed port
    (so that it can stop and start again at the same address)."""

    def __init__(self, engine: CaptionEngine, port: int | None = None, token: str = TOKEN):
        self.engine, self.token = engine, token
        self.port = port or free_port()
        self.url = f"ws://127.0.0.1:{self.port}"
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> EngineServer:
        app = create_engine_app(self.engine, token=self.token)
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            ws="websockets-sansio",
            timeout_graceful_shutdown=1,
        )
        self._server = uvicorn.Server(config)
        self._task = asyncio.create_task(self._server.serve())
        for _ in range(500):
            if self._server.started:
                return self
            await asyncio.sleep(0.01)
        raise AssertionError("the engine server did not start")

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await asyncio.wait_for(self._task, 10)
            self._server = self._task = None


@pytest.fixture
async def engine_servers(caption_engine: CaptionEngine) -> AsyncIterator[list[EngineServer]]:
    servers = [await EngineServer(caption_engine).start() for _ in range(2)]
    yield servers
    for server in servers:
        await server.stop()


def test_engine_urls_are_checked_when_the_app_starts() -> None:
    assert parse_engine_urls("") == []
    assert parse_engine_urls(" ws://a:2700 , wss://b/asr/vosk ") == [
        "ws://a:2700",
        "wss://b/asr/vosk",
    ]
    with pytest.raises(ValueError, match="not a WebSocket URL"):
        parse_engine_urls("http://a:2700")
    with pytest.raises(ValueError, match="twice"):
        parse_engine_urls("ws://a:2700,ws://a:2700")


def test_the_chooser_spreads_streams_fewest_first_and_skips_dead_engines() -> None:
    chooser = EngineChooser(["ws://a", "ws://b", "ws://c"], rng=random.Random(1))
    a, b, c = chooser.engines
    for _ in range(6):
        engine = chooser.pick()
        assert engine is not None
        chooser.opened(engine)
    assert [e.streams for e in chooser.engines] == [2, 2, 2]
    chooser.released(b)
    assert chooser.pick() is b  # the one with fewest streams
    chooser.mark_dead(b, "gone")
    assert all(chooser.pick() is not b for _ in range(20))
    # Failover order: never the engine being left, then nothing (the local model).
    assert chooser.pick(exclude=[a]) is c
    assert chooser.pick(exclude=[a, c]) is None
    chooser.mark_alive(b)
    assert chooser.pick() is b


async def test_health_checks_skip_an_engine_until_it_answers_and_refuse_a_wrong_token(
    caption_engine: CaptionEngine,
) -> None:
    up = await EngineServer(caption_engine).start()
    down = EngineServer(caption_engine)  # its port has nothing listening yet
    chooser = EngineChooser([up.url, down.url], token=TOKEN, check_interval=0.2)
    try:
        await chooser.start()
        alive, dead = chooser.engines
        assert alive.healthy and not dead.healthy and "no connection" in dead.reason
        assert all(chooser.pick() is alive for _ in range(10))
        await down.start()
        async with asyncio.timeout(3):
            while not dead.healthy:
                await asyncio.sleep(0.05)
        for token in ("wrong", None):
            stranger = EngineChooser([up.url], token=token)
            await stranger.check_all()
            (refused,) = stranger.engines
            assert not refused.healthy and "refused" in refused.reason, refused.reason
            assert "CAPTION_ENGINE_TOKEN" in refused.reason
    finally:
        await chooser.stop()
        await up.stop()
        await down.stop()


async def fed(
    stream: RemoteRecognizerStream,
    audio: bytes,
    *,
    at: dict[int, Callable[[], Any]],
    frame: int = 3200,
) -> list[dict[str, Any]]:
    """The finals of `audio` fed in frames of 0.1 s; `at[offset]` runs at that point."""
    finals = []
    for start in range(0, len(audio), frame):
        for offset in [o for o in at if start <= o < start + frame]:
            await at.pop(offset)()
        answer = await stream.accept(audio[start : start + frame])
        if "text" in answer:
            finals.append(answer)
    last = await stream.final()
    return finals + ([last] if last.get("text") else [])


async def test_a_stream_moves_to_the_next_engine_then_to_the_local_model_without_repeats(
    engine_servers: list[EngineServer], caption_engine: CaptionEngine, speech: Speech
) -> None:
    by_url = {server.url: server for server in engine_servers}
    chooser = EngineChooser(list(by_url), token=TOKEN, check_interval=30)
    await chooser.start()
    stream = RemoteRecognizerStream(chooser, caption_engine, 16000)
    said = [SENTENCES[0], SENTENCES[5], SENTENCES[4]]
    pieces = [speech.pcm(sentence) + silence(1.0) for sentence in said]
    audio = b"".join(pieces)
    # Midway through the second and the third sentence, the engine in use stops.
    middle_of = [sum(map(len, pieces[:n])) + len(speech.pcm(said[n])) // 4 * 2 for n in (1, 2)]
    first_engine: list[str] = []

    async def stop_current() -> None:
        assert stream.engine is not None, "the stream is not on an engine"
        first_engine.append(stream.engine.url)
        await by_url[stream.engine.url].stop()

    try:
        finals = await fed(stream, audio, at=dict.fromkeys(middle_of, stop_current))
    finally:
        stream.close()
        await chooser.stop()
    assert stream.moves == first_engine and len(set(first_engine)) == 2
    assert stream.engine is None  # on the local model at the end
    assert len(finals) == len(said), [f["text"] for f in finals]
    ends = [0.0]
    for n, (sentence, final) in enumerate(zip(said, finals, strict=True)):
        assert jiwer.wer(sentence, final["text"]) <= WER_BOUND, final["text"]
        # Word times count seconds of the whole stream, whichever engine heard them.
        starts = [w["start"] for w in final["result"]]
        began = sum(map(len, pieces[:n])) / 32000
        assert (
            began - 0.1 <= starts[0]
            and final["result"][-1]["end"] <= began + len(pieces[n]) / 32000
        )
        assert starts == sorted(starts) and starts[0] >= ends[-1]
        ends.append(final["result"][-1]["end"])
