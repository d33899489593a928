"""Live captions: the speaker's microphone WebSocket, transcripts, facilitators' controls
(turning someone's captioning off, correcting a caption) and caption display preferences.

The WebSocket is in `audio_router`, outside the CSRF dependency (it checks its Origin and
the session cookie itself, like the live WebSocket); everything else is in `router`."""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Path, Query, Request, WebSocket
from starlette.responses import RedirectResponse, Response

from app.captions import actions as captions
from app.captions.microphone import serve_speaker, speaker_follows
from app.captions.speaker_socket import AudioLimits, Sender, refusal
from app.deps import CurrentUser, ProgrammeIdPath, SessionDep, SessionIdPath
from app.live import channels
from app.live.deps import LiveDep, SeatOf
from app.live.seats import SEAT_CHANGING_EVENTS, WebSocketRefused, admit_websocket
from app.live.web import BASE, base_url, done, required_id, wants_fragment
from app.refusals import Refused
from app.sessions import safe_next
from app.templating import render
from captioning.ingest import CLOSE_POLICY, IngestError
from captioning.transcripts import FORMATS, Cue

log = logging.getLogger(__name__)

router = APIRouter(tags=["pages: live captions"])
audio_router = APIRouter(tags=["live captions: speaker audio"])

SegmentIdPath = Annotated[int, Path(ge=1, le=2**31 - 1, description="Caption segment id")]
Number = Annotated[str, Form(max_length=12)]
Choice = Annotated[str, Form(max_length=20)]


# -- the speaker's microphone --


def caption_audio_limits() -> AudioLimits:
    """The audio stream's limits (tests override this dependency to shorten them)."""
    return AudioLimits()


@audio_router.websocket(BASE + "/audio")
async def speaker_audio(
    websocket: WebSocket,
    programme_id: ProgrammeIdPath,
    session_id: SessionIdPath,
    limits: Annotated[AudioLimits, Depends(caption_audio_limits)],
) -> None:
    # Accept first, then refuse: a close during the handshake carries no reason.
    await websocket.accept()
    try:
        keeper = await admit_websocket(
            websocket,
            programme_id,
            session_id,
            stale_on=SEAT_CHANGING_EVENTS,
            recheck_every=limits.seat_check_seconds,
            follows=speaker_follows,
        )
    except WebSocketRefused as refused:
        denied = IngestError(refused.code, refused.message, close_code=CLOSE_POLICY)
        await Sender(websocket).end(refusal(denied))
        return
    try:
        await serve_speaker(websocket, seats=keeper, limits=limits)
    except asyncio.CancelledError:
        # Only the server stopping cancels a connection's handler: it did not wait for the
        # last words' captions (the stream's own cleanup has run). Ending here keeps the
        # server's shutdown from reporting a fault.
        log.warning("the server stopped before a speaker's last words were captioned")


# -- transcripts --


def _filename(session_id: int, channel: str, suffix: str) -> str:
    group_id = channels.room_group_id(channel)
    room = f"group-{group_id}" if group_id is not None else "plenary"
    return f"transcript-session-{session_id}-{room}.{suffix}"


async def _transcript(
    request: Request, seat: SeatOf, db: SessionDep, channel: str, suffix: str
) -> Response:
    room = await captions.readable_room(db, seat=seat, channel=channel)
    segments = await captions.room_finals(db, session_id=seat.session.id, channel=room)
    cues = [Cue(s.started_at, s.ended_at, s.speaker_name, s.text) for s in segments]
    media_type, write = FORMATS[suffix]
    return Response(
        write(cues).encode("utf-8"),
        media_type=media_type,
        headers={
            "Content-Disposition": (
                f'attachment; filename="{_filename(seat.session.id, room, suffix)}"'
            ),
            "Cache-Control": "no-store",
        },
    )


RoomQuery = Annotated[
    str, Query(max_length=100, description="The room's channel; your current room if empty")
]


@router.get(BASE + "/transcript.vtt")
async def transcript_vtt(
    request: Request, seat: SeatOf, db: SessionDep, channel: RoomQuery = ""
) -> Response:
    """The room's captions as WebVTT subtitles."""
    return await _transcript(request, seat, db, channel, "vtt")


@router.get(BASE + "/transcript.srt")
async def transcript_srt(
    request: Request, seat: SeatOf, db: SessionDep, channel: RoomQuery = ""
) -> Response:
    """The room's captions as SubRip (SRT) subtitles."""
    return await _transcript(request, seat, db, channel, "srt")


@router.get(BASE + "/transcript.txt")
async def transcript_txt(
    request: Request, seat: SeatOf, db: SessionDep, channel: RoomQuery = ""
) -> Response:
    """The room's captions as plain text, one caption a line."""
    return await _transcript(request, seat, db, channel, "txt")


# -- facilitators' controls --


@router.post(BASE + "/captions/mute")
async def mute_captions(
    request: Request,
    seat: SeatOf,
    db: SessionDep,
    live: LiveDep,
    user_id: Number = "",
    action: Choice = "mute",
) -> Response:
    """Turn a person's captioning off (their microphone stream ends) or on again."""
    captions.require_caption_moderator(seat)
    person_id = required_id(user_id, what="person")
    if action not in ("mute", "unmute"):
        raise Refused("Choose to turn someone's captioning off or on.")
    message = await captions.set_caption_mute(
        db, live, seat=seat, user_id=person_id, muted=action == "mute"
    )
    return done(request, seat, message)


@router.post(BASE + "/captions/{segment_id}/correct")
async def correct_caption(
    request: Request,
    seat: SeatOf,
    db: SessionDep,
    live: LiveDep,
    segment_id: SegmentIdPath,
    text: Annotated[str, Form(max_length=5000)] = "",
) -> Response:
    """Correct a final caption; the original and every edit are kept."""
    await captions.correct_segment(db, live, seat=seat, segment_id=segment_id, text=text)
    if wants_fragment(request):
        return Response("The caption has been corrected.", media_type="text/plain")
    return RedirectResponse(base_url(seat), status_code=303)


# -- display preferences --


def _preferences_page(request: Request, values: object, **ctx: object) -> Response:
    errors = ctx.get("errors") or {}
    context = {
        "title": "Caption display",
        "values": values,
        "errors": errors,
        "contrasts": captions.CONTRASTS,
        "limits": {
            "size": (captions.MIN_SIZE_PERCENT, captions.MAX_SIZE_PERCENT),
            "lines": (captions.MIN_LINES, captions.MAX_LINES),
        },
        "next": "",
        **ctx,
    }
    return render(request, "captions/preferences.html", context, status_code=400 if errors else 200)


@router.get("/profile/captions")
async def caption_preferences(
    request: Request,
    user: CurrentUser,
    db: SessionDep,
    saved: Annotated[str | None, Query(max_length=5)] = None,
    next: Annotated[str, Query(max_length=500)] = "",
) -> Response:
    values = await captions.get_preferences(db, user_id=user.id)
    return _preferences_page(
        request,
        values,
        next=safe_next(next) if next else "",
        flash_messages=["Your caption display has been saved."] if saved else [],
    )


@router.post("/profile/captions")
async def save_caption_preferences(
    request: Request,
    user: CurrentUser,
    db: SessionDep,
    size_percent: Number = "",
    lines: Number = "",
    contrast: Annotated[str, Form(max_length=40)] = "",
    next: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    try:
        await captions.save_preferences(
            db, user=user, size_percent=size_percent, lines=lines, contrast=contrast
        )
    except captions.PreferenceError as exc:
        values = {"size_percent": size_percent, "lines": lines, "contrast": contrast}
        return _preferences_page(
            request, values, errors=exc.errors, next=safe_next(next) if next else ""
        )
    if wants_fragment(request):
        return Response(status_code=204)
    return RedirectResponse(safe_next(next) if next else "/profile/captions?saved=1", 303)
