"""A recording's captions: the room's final captions said while it was recording, timed
from the recording's start, as a WebVTT text track and as the transcript shown beside the
player on the session page. Built from the stored captions when asked for, so corrections
made after the session show in both.

Who may see a recording is who may read its room's captions (app/captions/actions.py:
readable_room): everyone for the plenary; a breakout room's members, facilitators and the
hosts for a breakout room."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.captions.actions import readable_room, room_finals
from app.db import utcnow
from app.live.channels import Seat
from app.models import Paper
from app.refusals import NotAllowed, NotFound
from app.voice.recording_models import VoiceRecording
from captioning.transcripts import MIN_CUE_MS, TimedCue, clock, one_line, vtt_escape

VTT_MEDIA_TYPE = "text/vtt; charset=utf-8"


async def recording_cues(db: AsyncSession, recording: VoiceRecording) -> list[TimedCue]:
    """The room's captions that overlap the recording, in ms from its start (a caption
    begun before the start begins at 0; one still going at the stop ends there)."""
    segments = await room_finals(db, session_id=recording.session_id, channel=recording.channel)
    start = recording.started_at
    stop = recording.stopped_at or utcnow()
    cues = []
    for segment in segments:
        if segment.ended_at <= start or segment.started_at >= stop:
            continue
        start_ms = max(0, round((segment.started_at - start).total_seconds() * 1000))
        end_ms = round((min(segment.ended_at, stop) - start).total_seconds() * 1000)
        cues.append(
            TimedCue(
                start_ms=start_ms,
                end_ms=max(end_ms, start_ms + MIN_CUE_MS),
                speaker=one_line(segment.speaker_name),
                text=one_line(segment.text),
            )
        )
    return cues


def webvtt(cues: list[TimedCue]) -> str:
    """WebVTT with a voice span per speaker, as captioning/transcripts.py writes a room's
    transcript (there, times count from the first caption; here, from the recording's start).
    TODO/compatibility: one call once captioning.transcripts.webvtt takes an origin."""
    blocks = ["WEBVTT"]
    for number, cue in enumerate(cues, start=1):
        voice = f"<v {vtt_escape(cue.speaker)}>" if cue.speaker else ""
        blocks.append(
            f"{number}\n{clock(cue.start_ms, '.')} --> {clock(cue.end_ms, '.')}\n"
            f"{voice}{vtt_escape(cue.text)}"
        )
    return "\n\n".join(blocks) + "\n"


def time_label(ms: int) -> str:
    """ "1:05" or "1:02:05": where a caption is in the recording, for people."""
    seconds = ms // 1000
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"


async def may_see(db: AsyncSession, *, seat: Seat, recording: VoiceRecording) -> bool:
    try:
        await readable_room(db, seat=seat, channel=recording.channel)
    except (NotFound, NotAllowed):
        return False
    return True


async def visible_recording(
    db: AsyncSession, *, seat: Seat, recording_id: int
) -> tuple[VoiceRecording, Paper]:
    """A stored recording of this session the person may see, with its paper; NotFound
    otherwise (also for a room they may not read: nobody learns it was recorded)."""
    recording = await db.get(VoiceRecording, recording_id)
    paper = await db.get(Paper, recording.paper_id) if recording and recording.paper_id else None
    if (
        recording is None
        or paper is None
        or recording.session_id != seat.session.id
        or not await may_see(db, seat=seat, recording=recording)
    ):
        raise NotFound("We could not find that recording.")
    return recording, paper


@dataclass(frozen=True)
class RecordingView:
    recording: VoiceRecording
    paper: Paper
    cues: list[TimedCue]

    @property
    def lines(self) -> list[tuple[str, TimedCue]]:
        """The transcript beside the player: each caption with where it is in the recording."""
        return [(time_label(cue.start_ms), cue) for cue in self.cues]


@dataclass(frozen=True)
class SessionRecordings:
    views: list[RecordingView]
    # Papers of recordings of rooms the person may not read: left out of the file list too.
    hidden_papers: set[int]


async def may_download(db: AsyncSession, *, seat: Seat, paper_id: int) -> bool:
    """Whether this person may have a session file: a recording of a breakout room only
    if they may read that room's captions (any other file: yes)."""
    recording = await db.scalar(select(VoiceRecording).where(VoiceRecording.paper_id == paper_id))
    return recording is None or await may_see(db, seat=seat, recording=recording)


async def session_recordings(db: AsyncSession, *, seat: Seat) -> SessionRecordings:
    """The session's stored recordings the person may see, oldest first, with captions."""
    rows = await db.scalars(
        select(VoiceRecording)
        .where(VoiceRecording.session_id == seat.session.id, VoiceRecording.paper_id.is_not(None))
        .order_by(VoiceRecording.started_at, VoiceRecording.id)
    )
    views, hidden = [], set()
    for recording in rows.all():
        paper = await db.get(Paper, recording.paper_id)
        if paper is None:
            continue
        if await may_see(db, seat=seat, recording=recording):
            views.append(RecordingView(recording, paper, await recording_cues(db, recording)))
        else:
            hidden.add(paper.id)
    return SessionRecordings(views, hidden)
