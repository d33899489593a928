"""The lifespan: its resources arrive as one typed AppState, and they all close even when
one of them fails to."""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy.ext.asyncio import AsyncEngine

from app.captions.speaker_http import HttpSpeakerStreams
from app.config import Settings
from app.db import LoopRunner, SessionRunner
from app.evidence.transcription import Transcriber
from app.factory import create_app
from app.live.chat_writer import ChatWriter
from app.security import PasswordWorker
from app.state import STATE_KEY, AppState, AppStateDep
from captioning.engine import CaptionEngine
from realtime.broker import InProcessBroker
from realtime.hub import Hub

# Every resource routes and dependencies read from the app's state.
RESOURCES = {
    "settings",
    "caption_engines",
    "signer",
    "engine",
    "sessionmaker",
    "templates",
    "broker",
    "hub",
    "live",
    "presence",
    "speaking",
    "video",
    "video_posts",
    "tech_check_limiter",
    "breakout_closer",
    "chat_writer",
    "captions",
    "storage",
    "transcriber",
    "signin_limits",
    "passwords",
    "voice",
    "recorders",
    "mix_listeners",
    "speaker_streams",
    "voice_echo_limiter",
    "deck_renders",
}


def spy(monkeypatch: pytest.MonkeyPatch, cls: type, name: str, calls: list[str]) -> None:
    """Record each call of `cls.name` (by `cls.name` in `calls`) and then make it."""
    original = getattr(cls, name)
    label = f"{cls.__name__}.{name}"

    if not inspect.iscoroutinefunction(original):

        def sync_wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            calls.append(label)
            return original(self, *args, **kwargs)

        monkeypatch.setattr(cls, name, sync_wrapper)
        return

    async def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(label)
        return await original(self, *args, **kwargs)

    monkeypatch.setattr(cls, name, wrapper)


async def test_a_failing_stop_still_closes_everything_else_and_is_raised(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    for cls, name in (
        (Transcriber, "stop"),
        (PasswordWorker, "close"),
        (HttpSpeakerStreams, "stop"),
        (Hub, "stop"),
        (CaptionEngine, "close"),
        (InProcessBroker, "close"),
        (AsyncEngine, "dispose"),
        (LoopRunner, "close"),
        (SessionRunner, "close"),
    ):
        spy(monkeypatch, cls, name, calls)

    async def refuse_to_stop(self: ChatWriter) -> None:
        calls.append("ChatWriter.stop")
        raise RuntimeError("the chat writer would not stop")

    monkeypatch.setattr(ChatWriter, "stop", refuse_to_stop)
    app = create_app(settings)
    manager = LifespanManager(app)
    with pytest.raises(RuntimeError, match="the chat writer would not stop"):
        async with manager:
            state = manager._state[STATE_KEY]
            assert isinstance(state, AppState)
            calls.clear()  # only the shutdown is of interest
    # Closed in reverse order of making: speakers' streams first, while what they need to
    # caption their last words is still open; those made after the chat writer before it...
    assert calls.index("HttpSpeakerStreams.stop") < calls.index("PasswordWorker.close")
    assert calls.index("PasswordWorker.close") < calls.index("Transcriber.stop")
    assert calls.index("Transcriber.stop") < calls.index("ChatWriter.stop")
    # ...and those made before it after it, despite its failure.
    after = calls[calls.index("ChatWriter.stop") + 1 :]
    assert {"Hub.stop", "CaptionEngine.close", "InProcessBroker.close"} <= set(after)
    # Both engines (the chat writer's and the app's) are disposed, the app's last. The
    # writer's is a plain engine driven on the loop on SQLite, an async one otherwise.
    writer = ["LoopRunner.close", "SessionRunner.close"]
    assert sum(after.count(name) for name in writer) == 1
    assert after.count("AsyncEngine.dispose") == 1 + after.count("SessionRunner.close")
    assert calls[-1] == "AsyncEngine.dispose"
    assert after.index("InProcessBroker.close") > after.index("Hub.stop")


async def test_routes_receive_one_typed_state_with_every_resource(settings: Settings) -> None:
    app = create_app(settings)
    seen: list[AppState] = []

    async def probe(state: AppStateDep) -> dict[str, bool]:
        seen.append(state)
        return {"ok": True}

    app.add_api_route("/_probe_state", probe, methods=["GET"])
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            answer = await client.get("/_probe_state")
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"ok": True}
        assert seen == [manager._state[STATE_KEY]]
    (state,) = seen
    assert isinstance(state, AppState)
    assert {field.name for field in dataclasses.fields(AppState)} == RESOURCES
    for name in RESOURCES:
        assert getattr(state, name) is not None, name
    assert state.settings is settings
    with pytest.raises(dataclasses.FrozenInstanceError):
        state.live = None  # type: ignore[misc]
