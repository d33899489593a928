"""The speaker's microphone when WebSockets are blocked: the same stream as the audio
WebSocket (app/captions/routes/room.py), over short POSTs (app/captions/speaker_http.py).

Both routes are behind the CSRF dependency (the X-CSRF-Token header) and refuse a
cross-site Origin. The start works out the person's seat as every live action does; a
batch is checked against the stream's owner by the signed session cookie alone (no
database query four times a second), and the stream's seat keeper checks the session and
the seat in the database as the WebSocket's does."""

from __future__ import annotations

from typing import Annotated, Any, cast

from fastapi import APIRouter, Depends, Path, Request
from starlette.responses import JSONResponse, Response
from starlette.websockets import WebSocket

from app.captions.microphone import serve_speaker, speaker_follows
from app.captions.speaker_http import START_WAIT_SECONDS, HttpSpeakerChannel, as_messages
from app.captions.speaker_socket import AudioLimits
from app.deps import ProgrammeIdPath, SessionDep, SessionIdPath
from app.live.deps import SeatOf
from app.live.seats import SEAT_CHANGING_EVENTS, SeatKeeper
from app.live.web import BASE
from app.refusals import NotAllowed
from app.security import SESSION_COOKIE, same_origin
from app.sessions import read_claims
from app.state import get_app_state
from captioning.ingest import MAX_START_BYTES
from realtime import post_frames

router = APIRouter(tags=["live captions: speaker audio without WebSockets"])

StreamPath = Annotated[
    str,
    Path(
        min_length=16,
        max_length=64,
        pattern=r"^[A-Za-z0-9_-]+$",
        description="The stream's token, from its start",
    ),
]
NO_STORE = {"Cache-Control": "no-store"}
UNKNOWN_STREAM = (
    "This microphone stream has ended (or is not yours). Turn your microphone on again "
    "to start a new one."
)
# A refused start: the status that says what its WebSocket close code says.
CLOSE_STATUS = {1003: 400, 1007: 400, 1008: 403, 1009: 413, 1011: 503, 1013: 503, 4001: 403}


def http_audio_limits() -> AudioLimits:
    """The stream's limits, as on the WebSocket (tests override this dependency)."""
    return AudioLimits()


LimitsDep = Annotated[AudioLimits, Depends(http_audio_limits)]


def refusal(message: str, status: int, **extra: Any) -> JSONResponse:
    headers = {**NO_STORE, **({"Retry-After": "5"} if status == 503 else {})}
    return JSONResponse({"detail": message, **extra}, status_code=status, headers=headers)


def refuse_cross_site(request: Request) -> None:
    if not same_origin(request):
        raise NotAllowed("Requests from another site are refused.")


def wrong_type(request: Request, wanted: str) -> JSONResponse | None:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == wanted:
        return None
    return refusal(f"Send the body as {wanted}.", 415)


@router.post(BASE + "/audio/http/start")
async def start_speaking(
    request: Request,
    programme_id: ProgrammeIdPath,
    session_id: SessionIdPath,
    seat: SeatOf,
    db: SessionDep,
    limits: LimitsDep,
) -> Response:
    """Open a microphone stream: the body is the WebSocket's start message (JSON); the
    answer is {"stream": token, "messages": [...]}, or a refusal {"detail", "closed"}."""
    refuse_cross_site(request)
    if not seat.may_post(seat.current):
        raise NotAllowed("You cannot speak in this room (observers read the captions).")
    # The stream works its seat out again with sessions of its own, for as long as it lasts.
    await db.close()
    if (refused := wrong_type(request, "application/json")) is not None:
        return refused
    try:
        text = (await post_frames.read_body(request, MAX_START_BYTES)).decode("utf-8")
    except post_frames.BodyTooLarge:
        return refusal("The start message may be at most 4 KB.", 413)
    except UnicodeDecodeError:
        return refusal("The start message must be UTF-8 JSON.", 400)
    keeper = SeatKeeper(
        request,
        programme_id,
        session_id,
        seat.user_id,
        stale_on=SEAT_CHANGING_EVENTS,
        recheck_every=limits.seat_check_seconds,
        follows=speaker_follows,
    )
    keeper.keep(seat)

    async def serve(channel: HttpSpeakerChannel) -> None:
        # serve_speaker uses only what the channel has of a WebSocket (receive, send_text,
        # close, state).
        await serve_speaker(cast(WebSocket, channel), seats=keeper, limits=limits)

    streams = get_app_state(request).speaker_streams
    stream = streams.open(request, user_id=seat.user_id, session_id=session_id, serve=serve)
    stream.channel.push([{"type": "websocket.receive", "text": text}])
    await stream.channel.started(START_WAIT_SECONDS)
    answer = streams.answer(stream)
    closed = answer["closed"]
    if closed is not None:
        status = CLOSE_STATUS.get(closed["code"], 400)
        return refusal(closed["reason"] or "The stream could not start.", status, **answer)
    return JSONResponse({"stream": stream.token, **answer}, headers=NO_STORE)


@router.post(BASE + "/audio/http/{stream}")
async def send_audio(
    request: Request,
    programme_id: ProgrammeIdPath,
    session_id: SessionIdPath,
    stream: StreamPath,
) -> Response:
    """A batch of frames (application/octet-stream: type:u8 length:u16 data, 0 a sound
    packet, 1 a JSON message); the answer is {"messages": [...], "closed": null or
    {"code", "reason"}}."""
    refuse_cross_site(request)
    state = get_app_state(request)
    claims = read_claims(
        request.cookies.get(SESSION_COOKIE), signer=state.signer, settings=state.settings
    )
    if claims is None:
        return refusal("Sign in first.", 401)
    found = state.speaker_streams.get(stream, user_id=claims.user_id, session_id=session_id)
    if found is None:
        return refusal(UNKNOWN_STREAM, 404)
    if found.busy:
        return refusal("Send the next batch once the last one has been answered.", 409)
    if (refused := wrong_type(request, "application/octet-stream")) is not None:
        return refused
    try:
        body = await post_frames.read_body(request)
        messages = as_messages(post_frames.parse(body))
    except post_frames.BodyTooLarge as exc:
        return refusal(f"Too much at once: {exc}. Send a few hundred milliseconds a time.", 413)
    except post_frames.FramingError as exc:
        return refusal(f"The body is not a sequence of frames: {exc}.", 400)
    answer = await state.speaker_streams.deliver(found, messages)
    return JSONResponse(answer, headers=NO_STORE)
