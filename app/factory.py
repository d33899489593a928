"""The application factory and its lifespan: long-lived resources are made here."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager

import anyio
from fastapi import Depends, FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.bodylimits import BodyLimits, BodyLimitsMiddleware
from app.captions.speaker_http import HttpSpeakerStreams
from app.compression import CompressionMiddleware, StaticAssets
from app.config import Settings
from app.db import PoolSizes, make_engine, make_sessionmaker, make_writer_runner
from app.deps import verify_csrf
from app.errors import install_error_handlers
from app.evidence.cpu_budget import CpuBudget
from app.evidence.transcription import Transcriber
from app.live.breakout_timer import BreakoutCloser
from app.live.chat_writer import ChatWriter
from app.live.events import build_registry
from app.live.presence import Presence
from app.live.speaking import Speaking
from app.live.talking import Talking
from app.middleware import BodySizeLimitMiddleware, BrowserSecurityMiddleware
from app.ratelimit import RateLimiter, SignInLimits
from app.security import PasswordWorker, Signer
from app.stage.decks import sweep_workspaces
from app.stage.video_posts import HttpVideoSenders
from app.state import STATE_KEY, AppState
from app.storage import LocalStorage
from app.templating import STATIC_DIR, make_templates
from app.voice.listen import MixListeners
from app.voice.recording import Recorders
from captioning.engine import CaptionEngine
from captioning.engines import EngineChooser
from captioning.recognizer_pool import RecognizerPool
from realtime.broker import make_broker
from realtime.hub import Hub
from realtime.publish import Live
from realtime.video import VideoRouter
from realtime.voice import VoiceRouter

log = logging.getLogger(__name__)

# Recordings being written, beside the stored files (a storage key never starts with ".").
RECORDING_DIR = ".recording"
# Room for a 100 MB upload plus multipart framing.
MULTIPART_OVERHEAD = 1024 * 1024


# Longer than 60 lines because it makes every resource in the one order they start and close.
async def open_resources(settings: Settings, signer: Signer, stack: AsyncExitStack) -> AppState:
    """Make and start the app's resources in order; each one's close is put on `stack` as
    soon as it exists, so that they all close, in reverse order, even if one close fails."""
    engine = make_engine(
        settings.async_database_url,
        pool_sizes(settings),
        sqlite_busy_seconds=settings.sqlite_busy_timeout_seconds,
    )
    stack.push_async_callback(engine.dispose)
    sessionmaker = make_sessionmaker(engine)
    templates = make_templates()
    broker = make_broker(settings.redis_url)
    stack.push_async_callback(broker.close)
    hub = Hub(broker, sessionmaker)
    await hub.start()
    stack.push_async_callback(hub.stop)
    live = Live(registry=build_registry(), broker=broker, env=templates.env)
    captions = CaptionEngine(
        model_path=settings.vosk_model_path,
        recognizers=RecognizerPool(max_in_use=settings.caption_recognizers_max),
    )
    stack.callback(captions.close)
    await captions.load()
    storage = LocalStorage(settings.upload_dir)
    await anyio.to_thread.run_sync(sweep_workspaces, storage.root)
    presence, speaking, voice = await open_room_senses(hub, live, sessionmaker, stack)
    breakout_closer = BreakoutCloser(sessionmaker, live)
    breakout_closer.start()
    stack.push_async_callback(breakout_closer.stop)
    chat_writer = await open_chat_writer(settings, live, stack)
    transcriber = Transcriber(sessionmaker, captions, storage, cpu_budget=cpu_budget(settings))
    transcriber.start()
    stack.push_async_callback(transcriber.stop)
    passwords = PasswordWorker(
        threads=settings.password_check_threads, max_waiting=settings.password_check_queue
    )
    stack.callback(passwords.close)
    recorders, mix_listeners = await open_recorders(
        settings, sessionmaker, storage, live, voice, stack
    )
    caption_engines = await open_caption_engines(settings, stack)
    video = VideoRouter()
    video_posts = HttpVideoSenders(video)
    stack.callback(video_posts.close)
    return AppState(
        settings=settings,
        signer=signer,
        engine=engine,
        sessionmaker=sessionmaker,
        templates=templates,
        broker=broker,
        hub=hub,
        live=live,
        presence=presence,
        speaking=speaking,
        # The tech check's sample captions: a few a minute per person.
        tech_check_limiter=RateLimiter(6, 60.0),
        breakout_closer=breakout_closer,
        chat_writer=chat_writer,
        captions=captions,
        storage=storage,
        transcriber=transcriber,
        signin_limits=signin_limits(settings),
        passwords=passwords,
        voice=voice,
        video=video,
        video_posts=video_posts,
        recorders=recorders,
        mix_listeners=mix_listeners,
        speaker_streams=open_speaker_streams(stack),
        voice_echo_limiter=RateLimiter(60, 60.0),  # three "hear yourself" checks a minute
        caption_engines=caption_engines,
        deck_renders=anyio.CapacityLimiter(1),
    )


async def open_room_senses(
    hub: Hub, live: Live, sessionmaker: async_sessionmaker[AsyncSession], stack: AsyncExitStack
) -> tuple[Presence, Speaking, VoiceRouter]:
    """Who is in each room, whose microphone is live there, and the rooms' voice."""
    presence = Presence(broker=hub.broker, live=live, sessionmaker=sessionmaker)
    hub.presence = presence
    presence.start()
    stack.push_async_callback(presence.stop)
    speaking = Speaking(broker=hub.broker, live=live)
    speaking.start()
    stack.push_async_callback(speaking.stop)
    voice = VoiceRouter(on_active=Talking(live=live, speaking=speaking).changed)
    await voice.start()
    stack.push_async_callback(voice.stop)
    return presence, speaking, voice


async def open_recorders(
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    storage: LocalStorage,
    live: Live,
    voice: VoiceRouter,
    stack: AsyncExitStack,
) -> tuple[Recorders, MixListeners]:
    """Rooms' recorders (first storing what a crashed process left recording) and the live
    <audio> listeners, tapping the voice router's rooms. Made after the router, so that at
    shutdown recordings stop and are stored while it still runs."""
    recorders = Recorders(
        sessionmaker=sessionmaker,
        storage=storage,
        live=live,
        work_dir=settings.upload_dir / RECORDING_DIR,
        router=voice,
    )
    await recorders.recover()
    stack.push_async_callback(recorders.close)
    return recorders, MixListeners(router=voice)


async def open_caption_engines(settings: Settings, stack: AsyncExitStack) -> EngineChooser:
    """The caption engines elsewhere, checked once now and then every few seconds."""
    urls = settings.caption_engine_urls
    token = settings.caption_engine_token
    chooser = EngineChooser(
        urls,
        token=token.get_secret_value() if token is not None else None,
        check_interval=settings.caption_engine_check_seconds,
    )
    await chooser.start()
    stack.push_async_callback(chooser.stop)
    return chooser


def open_speaker_streams(stack: AsyncExitStack) -> HttpSpeakerStreams:
    """Made last, so closed first: streams still open at shutdown caption their last words
    while the database, the broker and the speech model are still there."""
    streams = HttpSpeakerStreams()
    streams.start()
    stack.push_async_callback(streams.stop)
    return streams


def pool_sizes(settings: Settings) -> PoolSizes:
    return PoolSizes(
        size=settings.db_pool_size,
        overflow=settings.db_pool_overflow,
        timeout=settings.db_pool_timeout_seconds,
    )


def cpu_budget(settings: Settings) -> CpuBudget:
    return CpuBudget(
        per_audio_second=settings.transcription_cpu_per_audio_second,
        margin_seconds=settings.transcription_cpu_margin_seconds,
    )


def signin_limits(settings: Settings) -> SignInLimits:
    return SignInLimits(
        per_account=settings.login_attempts_per_minute,
        per_address=settings.login_failures_per_address_per_minute,
        everyone=settings.login_failures_per_minute,
    )


async def open_chat_writer(settings: Settings, live: Live, stack: AsyncExitStack) -> ChatWriter:
    """The chat writer, on an engine of its own (disposed after the writer stops)."""
    runner = make_writer_runner(
        settings.async_database_url, sqlite_busy_seconds=settings.sqlite_busy_timeout_seconds
    )
    stack.push_async_callback(runner.close)
    chat_writer = ChatWriter(
        runner,
        live,
        queue_limit=settings.chat_queue_limit,
        wait_seconds=settings.chat_wait_seconds,
    )
    await chat_writer.start()
    stack.push_async_callback(chat_writer.stop)
    return chat_writer


# The collector's thresholds in a serving process: young generations as Python's default,
# a full collection only after 1,000 middle ones (default 10). With 1,000 live connections a
# full sweep takes 200 to 300 ms of the event loop, and by default one came every 4 s at 200
# chat messages a second (docs/capacity.md, "Chat at 1,000 clients"): now every few minutes.
# Objects freed by reference counting (nearly all) are freed at once either way.
GC_THRESHOLDS = (700, 10, 1000)


def make_lifespan(
    settings: Settings, signer: Signer
) -> Callable[[FastAPI], AbstractAsyncContextManager[dict[str, AppState]]]:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, AppState]]:
        async with AsyncExitStack() as stack:
            state = await open_resources(settings, signer, stack)
            # Everything made so far lives as long as the process: keep it out of the
            # garbage collector's sweeps, which otherwise pause a busy live session now
            # and then. (Not in tests, where many apps come and go in one process.)
            if settings.environment != "test":
                gc.freeze()
                gc.set_threshold(*GC_THRESHOLDS)
            yield {STATE_KEY: state}

    return lifespan


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    signer = Signer(settings.secret_key)
    app = FastAPI(
        title="Roundtable",
        version="0.1.0",
        summary="Facilitated online co-production: programmes, sessions and groups of eight.",
        lifespan=make_lifespan(settings, signer),
        docs_url="/api/docs",
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    install_error_handlers(app)
    include_routers(app)
    app.mount("/static", StaticAssets(directory=STATIC_DIR), name="static")
    # Innermost: gzip for text responses (not event streams); the limits and security
    # headers outside it apply to every response as before.
    app.add_middleware(CompressionMiddleware)
    app.add_middleware(
        BodySizeLimitMiddleware, max_bytes=settings.max_upload_mb * 1024 * 1024 + MULTIPART_OVERHEAD
    )
    # Bodies that stall or trickle are ended, and uploads per person are counted.
    app.add_middleware(
        BodyLimitsMiddleware,
        limits=BodyLimits.from_settings(settings),
        signer=signer,
        session_max_age_seconds=settings.session_max_age_days * 86400,
    )
    app.add_middleware(
        BrowserSecurityMiddleware, signer=signer, secure_cookies=settings.cookies_secure
    )
    return app


# Longer than 60 lines because it lists every feature's routers, one per line.
def include_routers(app: FastAPI) -> None:
    from app import health
    from app.api import router as api_router
    from app.captions.routes import asr, http_audio
    from app.captions.routes import pages as caption_pages
    from app.captions.routes import room as captions
    from app.evidence.routes import board as evidence
    from app.evidence.routes import items as evidence_items
    from app.evidence.routes import transcripts as evidence_transcripts
    from app.evidence.routes import uploads as evidence_uploads
    from app.live.routes import actions as live_actions
    from app.live.routes import consoles, tech_check
    from app.live.routes import room as live
    from app.live.routes import stream as live_stream
    from app.people.routes import auth, home, memberships, profile
    from app.programmes.routes import groups, programmes, roster, sessions
    from app.stage.routes import deck_files as stage_deck_files
    from app.stage.routes import decks as stage_decks
    from app.stage.routes import present as stage_present
    from app.stage.routes import tiles as stage_tiles
    from app.themes.routes import codebook as themes_codebook
    from app.themes.routes import codings as themes_codings
    from app.themes.routes import overview as themes_overview
    from app.voice.routes import floor as voice_floor
    from app.voice.routes import recording as voice_recording

    app.include_router(health.router)
    # Reading-only transports (GET and WebSocket); the WebSocket checks its Origin itself.
    app.include_router(live_stream.router)
    app.include_router(asr.ws_router)  # token-authorized WebSocket: no cookies, so no CSRF
    # The speaker's microphone WebSocket checks its Origin and cookie itself.
    app.include_router(captions.audio_router)
    # The tech check's echo WebSocket checks its Origin and cookie itself.
    app.include_router(tech_check.ws_router)
    # Uploads stream their form, so they check the CSRF token themselves as it arrives.
    app.include_router(evidence_uploads.router)
    csrf = [Depends(verify_csrf)]
    for module in (
        auth,
        home,
        memberships,
        profile,
        programmes,
        sessions,
        roster,
        groups,
        live,
        live_actions,
        voice_floor,
        consoles,
        tech_check,
        caption_pages,
        captions,
        http_audio,
        evidence,
        evidence_items,
        evidence_transcripts,
        themes_codebook,
        themes_overview,
        themes_codings,
        voice_recording,
        stage_decks,
        stage_deck_files,
        stage_present,
        stage_tiles,
    ):
        app.include_router(module.router, dependencies=csrf)
    app.include_router(asr.router, dependencies=csrf)  # the token page's forms
    app.include_router(api_router, prefix="/api/v1", dependencies=csrf)
