"""Recording a room (hosts' start and stop), playing a recording with its captions, and the
room's live sound as an Ogg/Opus stream for an `<audio>` element."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Path, Query, Request
from starlette.requests import HTTPConnection
from starlette.responses import FileResponse, Response, StreamingResponse

from app.deps import SessionDep
from app.live.deps import SeatOf
from app.live.seats import SEAT_CHANGING_EVENTS, SeatKeeper
from app.live.web import BASE, done
from app.programmes.papers import stored_path
from app.refusals import Conflict, NotFound
from app.state import get_app_state
from app.voice import recording_actions
from app.voice.listen import MAX_STREAM_SECONDS, mix_follows, mix_stream
from app.voice.recording import Recorders
from app.voice.recording_captions import VTT_MEDIA_TYPE, recording_cues, visible_recording, webvtt
from realtime.live_connection import LiveConnection

router = APIRouter(tags=["pages: voice recording"])

ChannelForm = Annotated[str, Form(max_length=100)]
RecordingIdPath = Annotated[int, Path(ge=1, le=2**31 - 1, description="Recording id")]


def recorders_of(request: HTTPConnection) -> Recorders:
    recorders: Recorders = get_app_state(request).recorders
    return recorders


@router.post(BASE + "/recording/start")
async def start_recording(
    request: Request, seat: SeatOf, db: SessionDep, channel: ChannelForm = ""
) -> Response:
    """Record a room (the plenary; a breakout room where the programme allows it). The room
    is told first; hosts only."""
    message = await recording_actions.start_recording(
        db, recorders_of(request), seat=seat, channel=channel
    )
    return done(request, seat, message)


@router.post(BASE + "/recording/stop")
async def stop_recording(
    request: Request, seat: SeatOf, db: SessionDep, channel: ChannelForm = ""
) -> Response:
    """Stop a room's recording; it is stored and attached to the session. Hosts only."""
    message = await recording_actions.stop_recording(
        db, recorders_of(request), seat=seat, channel=channel
    )
    return done(request, seat, message)


@router.get(BASE + "/recordings/{recording_id}/audio.ogg")
async def recording_audio(
    request: Request, seat: SeatOf, db: SessionDep, recording_id: RecordingIdPath
) -> Response:
    """A stored recording's sound, to play in the page (ranges supported, for seeking)."""
    _recording, paper = await visible_recording(db, seat=seat, recording_id=recording_id)
    path = stored_path(get_app_state(request).storage, paper)
    if path is None:
        raise NotFound("We could not find that recording's file.")
    return FileResponse(
        path,
        media_type="audio/ogg",
        headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "private, no-store"},
    )


@router.get(BASE + "/recordings/{recording_id}/captions.vtt")
async def recording_captions(
    seat: SeatOf, db: SessionDep, recording_id: RecordingIdPath
) -> Response:
    """A recording's captions as WebVTT, timed from the recording's start."""
    recording, _paper = await visible_recording(db, seat=seat, recording_id=recording_id)
    cues = await recording_cues(db, recording)
    return Response(
        webvtt(cues).encode("utf-8"),
        media_type=VTT_MEDIA_TYPE,
        headers={"Cache-Control": "private, no-store"},
    )


@router.get(BASE + "/voice.ogg")
async def live_voice(
    request: Request,
    seat: SeatOf,
    db: SessionDep,
    duration: Annotated[
        float,
        Query(ge=0, le=MAX_STREAM_SECONDS, description="Seconds before the server ends the stream"),
    ] = MAX_STREAM_SECONDS,
) -> Response:
    """The person's current room, live, as Ogg/Opus (for browsers without WebCodecs; about
    a second behind). Ends when they move room or leave; the page then opens a new one."""
    state = get_app_state(request)
    listeners = state.mix_listeners
    if not listeners.available:
        raise Conflict("Listening is not available on this server: its audio is not running.")
    keeper = SeatKeeper(
        request,
        seat.ctx.programme.id,
        seat.session.id,
        seat.user_id,
        stale_on=SEAT_CHANGING_EVENTS,
        follows=mix_follows(seat.current),
    )
    keeper.keep(seat)
    # A stream lasts up to an hour: its request's database connection goes back now.
    await db.close()
    live = LiveConnection(state.hub, keeper, transport="audio")
    await live.open(dict(mix_follows(seat.current)(None, seat, {})))
    return StreamingResponse(
        mix_stream(listeners, live, seat=seat, max_seconds=duration),
        media_type="audio/ogg",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
