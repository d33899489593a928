"""The application's long-lived resources, made once by the lifespan (app/factory.py) and
read by routes and dependencies as one typed object."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

import anyio
from fastapi import Depends
from starlette.requests import HTTPConnection

if TYPE_CHECKING:
    from fastapi.templating import Jinja2Templates
    from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

    from app.captions.speaker_http import HttpSpeakerStreams
    from app.config import Settings
    from app.evidence.transcription import Transcriber
    from app.live.breakout_timer import BreakoutCloser
    from app.live.chat_writer import ChatWriter
    from app.live.presence import Presence
    from app.live.speaking import Speaking
    from app.ratelimit import RateLimiter, SignInLimits
    from app.security import PasswordWorker, Signer
    from app.stage.video_posts import HttpVideoSenders
    from app.storage import LocalStorage
    from app.voice.listen import MixListeners
    from app.voice.recording import Recorders
    from captioning.engine import CaptionEngine
    from captioning.engines import EngineChooser
    from realtime.broker import Broker
    from realtime.hub import Hub
    from realtime.publish import Live
    from realtime.video import VideoRouter
    from realtime.voice import VoiceRouter

# The key the lifespan yields the state under; Starlette copies it into each request's state.
STATE_KEY = "app_state"


@dataclass(frozen=True, slots=True)
class AppState:
    settings: Settings
    signer: Signer
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    templates: Jinja2Templates
    broker: Broker
    hub: Hub
    live: Live
    presence: Presence
    speaking: Speaking
    # The tech check's sample captions: a few a minute per person.
    tech_check_limiter: RateLimiter
    breakout_closer: BreakoutCloser
    chat_writer: ChatWriter
    captions: CaptionEngine
    storage: LocalStorage
    transcriber: Transcriber
    signin_limits: SignInLimits
    passwords: PasswordWorker
    # Voice: each room's speakers routed to its listeners (realtime/voice.py).
    voice: VoiceRouter
    # Video: each tile's frames relayed to its room's viewers (realtime/video.py), and the
    # senders of people posting their frames (app/stage/video_posts.py).
    video: VideoRouter
    video_posts: HttpVideoSenders
    # Rooms' recordings in progress, and live <audio> listeners (app/voice/).
    recorders: Recorders
    mix_listeners: MixListeners
    # Speakers' microphone streams over POSTs, when WebSockets are blocked.
    speaker_streams: HttpSpeakerStreams
    # The tech check's "hear yourself" over POSTs: a few checks a minute per person.
    voice_echo_limiter: RateLimiter
    # Decks converted and rendered at once in this process (app/stage/decks.py).
    deck_renders: anyio.CapacityLimiter
    # Caption engines elsewhere (CAPTION_ENGINES; none listed: every stream is recognized
    # in this process).
    caption_engines: EngineChooser


def get_app_state(request: HTTPConnection) -> AppState:
    """The resources of the running app, for an HTTP request or a WebSocket alike."""
    state: AppState = getattr(request.state, STATE_KEY)
    return state


def find_app_state(request: HTTPConnection) -> AppState | None:
    """The same, or None outside a running lifespan (e.g. an error before startup)."""
    state: AppState | None = getattr(request.state, STATE_KEY, None)
    return state


AppStateDep = Annotated[AppState, Depends(get_app_state)]
