"""The recorder: taps a room's mix and writes it, as Ogg/Opus, to a file of its own until the
recording stops; then stores the file (app/storage.py) and attaches it to the session as a
recording paper. Who may start and stop a recording is app/voice/recording_actions.py.

A recording stops when a host stops it, when its breakout room closes, when the session is
long over, at MAX_RECORDING_SECONDS, or when the server shuts down; whatever was recorded
is kept in every case. The file is written page by page as it goes (a page every 100 ms)
and locked while its recorder runs, so after a crash the next start finds the unlocked file
of a recording left running and stores what it holds (`recover`)."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import BinaryIO, Protocol
from zoneinfo import ZoneInfo

import anyio
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import audit
from app.db import utcnow
from app.live import channels
from app.live.channels import open_breakout
from app.models import Paper, Programme, ProgrammeSession, User
from app.programmes.papers import PaperKind
from app.storage import Storage, StoredFile
from app.voice.ogg_stream import (
    FRAME_BYTES,
    FRAME_MS,
    FrameBuffer,
    FrameError,
    OggOpusWriter,
    ogg_duration_ms,
)
from app.voice.recording_models import VoiceRecording
from realtime.publish import Live

log = logging.getLogger(__name__)

MAX_RECORDING_SECONDS = 6 * 3600
# A recording still running this long after its session's scheduled end is stopped.
SESSION_OVER_GRACE = timedelta(hours=1)
# How often the recorder encodes what the tap gave it, and checks whether it must stop.
DRAIN_SECONDS = 0.2
CHECK_SECONDS = 2.0
# Frames held for the encoder: a minute, so a slow disk never loses audio.
BUFFER_FRAMES = 3000
# A running recording with no file this long after it started was lost (its process died
# before it could write anything).
LOST_AFTER = timedelta(minutes=1)
CONTENT_TYPE = "audio/ogg"
FRAME_SECONDS = FRAME_MS / 1000
SILENCE = bytes(FRAME_BYTES)
# Frames the recording may trail the clock by (in flight in the mixer or the buffer) before
# the gap counts as ticks the mixer skipped.
CLOCK_SLACK_FRAMES = 10


class Tap(Protocol):
    def close(self) -> None: ...


class MixSource(Protocol):
    """The voice router (realtime/voice.py): `on_frame` gets the room's mix every 20 ms."""

    def tap(self, room: str, on_frame: Callable[[bytes], None]) -> Tap: ...


def recording_payload(channel: str, *, on: bool, room_name: str, stopped: bool = False) -> dict:
    """The `voice.recording` event's payload (and the indicator drawn with the page)."""
    if on:
        text = f"{room_name} is being recorded: its sound and its captions are kept."
    elif stopped:
        text = "Recording stopped."
    else:
        text = ""
    return {"channel": channel, "on": on, "text": text}


@dataclass(frozen=True)
class Stop:
    reason: str
    actor: User | None
    at: datetime


@dataclass(eq=False)
class Run:
    """One recording in progress in this process."""

    recording_id: int
    channel: str
    path: Path
    file: BinaryIO
    writer: OggOpusWriter
    buffer: FrameBuffer
    tap: Tap | None = None
    task: asyncio.Task[None] | None = None
    finishing: bool = False
    bad_frames: int = 0
    # When the tap began (the recording's 0 s), on the monotonic clock and the wall clock.
    began: float = 0.0
    began_at: datetime | None = None
    padded_frames: int = 0

    def encode_pending(self) -> None:
        """Encode what the tap has given (in a worker thread; one at a time), and keep the
        recording in step with the clock: if the mixer skipped ticks (a loop held up), the
        gap is filled with silence, so that captions, timed by the clock, stay in place."""
        for pcm in self.buffer.take():
            try:
                self.writer.write(pcm)
            except FrameError:
                self.bad_frames += 1
        behind = int((time.monotonic() - self.began) / FRAME_SECONDS) - self.writer.frames
        if behind > CLOCK_SLACK_FRAMES:
            for _ in range(behind - 1):
                self.writer.write(SILENCE)
            self.padded_frames += behind - 1

    def seal(self) -> None:
        """Encode the rest, end the Ogg stream and close the file (which unlocks it)."""
        try:
            self.encode_pending()
            self.writer.close()
            self.file.flush()
            os.fsync(self.file.fileno())
        finally:
            self.file.close()


def open_locked(path: Path) -> BinaryIO:
    """A new file, unbuffered (each Ogg page reaches the disk's cache as it is made), and
    locked while this process writes it."""
    file = path.open("xb", buffering=0)
    fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    return file


def is_locked(path: Path) -> bool:
    """Whether a recorder (in any process on this machine) is still writing `path`."""
    with path.open("rb") as file:
        try:
            fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(file.fileno(), fcntl.LOCK_UN)
    return False


class Recorders:
    """This process's recordings in progress, by room channel; made once in the lifespan."""

    def __init__(
        self,
        *,
        sessionmaker: async_sessionmaker[AsyncSession],
        storage: Storage,
        live: Live,
        work_dir: Path,
        router: MixSource | None = None,
        check_seconds: float = CHECK_SECONDS,
        max_seconds: float = MAX_RECORDING_SECONDS,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.storage = storage
        self.live = live
        self.work_dir = work_dir
        self.router = router
        self.check_seconds = check_seconds
        self.max_seconds = max_seconds
        self.runs: dict[str, Run] = {}

    @property
    def available(self) -> bool:
        return self.router is not None

    def running(self, channel: str) -> Run | None:
        return self.runs.get(channel)

    async def begin(self, recording_id: int, channel: str) -> Run:
        """Start recording (the row is committed and the room told): open the file, tap the
        room's mix, and watch until it must stop."""
        assert self.router is not None, "check `available` first"
        await anyio.Path(self.work_dir).mkdir(parents=True, exist_ok=True)
        path = self.work_dir / f"{recording_id}.ogg"
        file = await anyio.to_thread.run_sync(open_locked, path)
        try:
            writer = await anyio.to_thread.run_sync(OggOpusWriter, file)
        except BaseException:
            file.close()
            raise
        run = Run(recording_id, channel, path, file, writer, FrameBuffer(BUFFER_FRAMES))
        self.runs[channel] = run
        try:
            run.began, run.began_at = time.monotonic(), utcnow()
            run.tap = self.router.tap(channel, run.buffer.push)
        except BaseException:
            await self.finish(run, reason="could not start")
            raise
        run.task = asyncio.create_task(self._watch(run), name=f"recording {recording_id}")
        return run

    async def _watch(self, run: Run) -> None:
        next_check = time.monotonic() + self.check_seconds
        while True:
            await asyncio.sleep(DRAIN_SECONDS)
            await anyio.to_thread.run_sync(run.encode_pending)
            if time.monotonic() < next_check:
                continue
            next_check = time.monotonic() + self.check_seconds
            try:
                reason = await self._reason_to_stop(run)
            except Exception:
                log.warning("could not check recording %s; still recording", run.recording_id)
                continue
            if reason:
                await self.finish(run, reason=reason)
                return

    async def _reason_to_stop(self, run: Run) -> str:
        if run.writer.duration_ms >= self.max_seconds * 1000:
            return "time limit"
        async with self.sessionmaker() as db:
            row = await db.get(VoiceRecording, run.recording_id)
            if row is None:
                return "session deleted"
            if row.stopped_at is not None:
                return row.stop_reason or "stopped"
            in_breakout = channels.room_group_id(row.channel) is not None
            if in_breakout and await open_breakout(db, session_id=row.session_id) is None:
                return "breakout closed"
            session = await db.get(ProgrammeSession, row.session_id)
            if session is not None and utcnow() > session.ends_at + SESSION_OVER_GRACE:
                return "session over"
        return ""

    async def finish(self, run: Run, *, reason: str, actor: User | None = None) -> Paper | None:
        """Stop recording and keep what was recorded (shielded: a stop that has begun
        completes even if whoever asked goes away)."""
        if run.finishing:
            return None
        run.finishing = True
        with anyio.CancelScope(shield=True):
            self.runs.pop(run.channel, None)
            if run.tap is not None:
                run.tap.close()
            stopped_at = utcnow()
            if run.task is not None and run.task is not asyncio.current_task():
                run.task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await run.task
            await anyio.to_thread.run_sync(run.seal)
            if run.bad_frames or run.padded_frames:
                log.warning(
                    "recording %s: %d bad frames, %d frames of silence where the mix lagged",
                    run.recording_id,
                    run.bad_frames,
                    run.padded_frames,
                )
            return await self.keep(
                run.recording_id,
                run.path,
                run.writer.duration_ms,
                reason=reason,
                actor=actor,
                stopped_at=stopped_at,
            )
        return None  # not reached: the shielded block returns

    async def keep(
        self,
        recording_id: int,
        path: Path,
        duration_ms: int,
        *,
        reason: str,
        actor: User | None,
        stopped_at: datetime | None = None,
    ) -> Paper | None:
        """Store a finished file and attach it to its session as a recording paper."""
        stored = await self.storage.adopt(path)
        stop = Stop(reason, actor, stopped_at or utcnow())
        try:
            async with self.sessionmaker() as db:
                return await self._attach(db, recording_id, stored, duration_ms, stop)
        except Exception:
            # The file is in storage: say where, so that it can be attached by hand.
            log.exception("recording %s is stored as %s but not attached", recording_id, stored.key)
            raise

    async def _attach(
        self,
        db: AsyncSession,
        recording_id: int,
        stored: StoredFile,
        duration_ms: int,
        stop: Stop,
    ) -> Paper | None:
        row = await db.get(VoiceRecording, recording_id)
        session = await db.get(ProgrammeSession, row.session_id) if row else None
        if row is None or session is None:
            # The session was deleted meanwhile, and its recordings with it.
            await self.storage.delete(stored.key)
            return None
        programme = await db.get(Programme, session.programme_id)
        zone = ZoneInfo(programme.timezone if programme else "UTC")
        started = row.started_at.astimezone(zone)
        room = "plenary" if row.group_id is None else f"group-{row.group_id}"
        paper = Paper(
            session_id=session.id,
            kind=PaperKind.RECORDING.value,
            title=f"{row.room_name}, recorded {started:%d %b %Y %H:%M}",
            filename=f"recording-{session.id}-{room}-{started:%Y%m%d-%H%M}.ogg",
            content_type=CONTENT_TYPE,
            size_bytes=stored.size,
            sha256=stored.sha256,
            storage_key=stored.key,
            uploaded_by_id=row.started_by_id,
        )
        db.add(paper)
        await db.flush()
        # Stopped from another process: that process recorded the stop; this one stores.
        action = "recording.stored" if row.stopped_at is not None else "recording.stop"
        if row.stopped_at is None:
            row.stopped_at = stop.at
            row.stopped_by_id = stop.actor.id if stop.actor else None
            row.stop_reason = stop.reason
        row.duration_ms = duration_ms
        row.paper_id = paper.id
        audit.record(
            db,
            actor=stop.actor,
            action=action,
            programme_id=session.programme_id,
            target=f"recording:{row.id}",
            session_id=session.id,
            channel=row.channel,
            reason=row.stop_reason,
            duration_ms=duration_ms,
            paper_id=paper.id,
        )
        outbox = self.live.outbox(db)
        payload = recording_payload(row.channel, on=False, room_name=row.room_name, stopped=True)
        await outbox.add(row.channel, "voice.recording", payload)
        await outbox.commit()
        return paper

    async def close(self) -> None:
        """At shutdown: every recording stops, and what it recorded is stored."""
        for run in list(self.runs.values()):
            try:
                await self.finish(run, reason="server shutdown")
            except Exception:
                log.exception("could not keep recording %s at shutdown", run.recording_id)

    async def recover(self) -> None:
        """At startup: store the files of recordings left running by a process that died
        (their files are unlocked), and close the rows of those that never got a file."""
        async with self.sessionmaker() as db:
            rows = list(
                (
                    await db.scalars(
                        select(VoiceRecording).where(VoiceRecording.stopped_at.is_(None))
                    )
                ).all()
            )
        for row in rows:
            path = self.work_dir / f"{row.id}.ogg"
            try:
                if path.exists():
                    if not await anyio.to_thread.run_sync(is_locked, path):
                        duration = await anyio.to_thread.run_sync(ogg_duration_ms, path)
                        reason = "server restarted"
                        await self.keep(row.id, path, duration, reason=reason, actor=None)
                elif row.started_at < utcnow() - LOST_AFTER:
                    await self._mark_lost(row.id)
            except Exception:
                log.exception("could not recover recording %s", row.id)

    async def _mark_lost(self, recording_id: int) -> None:
        async with self.sessionmaker() as db:
            row = await db.get(VoiceRecording, recording_id)
            if row is None or row.stopped_at is not None:
                return
            row.stopped_at, row.stop_reason = utcnow(), "lost"
            outbox = self.live.outbox(db)
            payload = recording_payload(row.channel, on=False, room_name=row.room_name)
            await outbox.add(row.channel, "voice.recording", payload)
            await outbox.commit()
