"""The stage's video: hosts name presenters and interpreters and pin their tiles, people
turn their camera on in breakout rooms, anyone's tile is stopped; and a camera's frames
sent by POST when the page's WebSocket is blocked (app/stage/video_posts.py).

Every action is a form POST (CSRF checked by the router), answered like the live page's
other actions (app/live/web.py: `done`)."""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Form, Path, Request
from starlette.requests import ClientDisconnect
from starlette.responses import Response

from app.deps import ProgrammeIdPath, SessionDep, SessionIdPath
from app.errors import NotSignedIn
from app.live.deps import LiveDep, SeatOf
from app.live.seats import seat_for_cookie
from app.live.web import BASE, done, required_id
from app.refusals import NotAllowed, Refused, TooFast, TooLarge
from app.security import SESSION_COOKIE
from app.sessions import read_claims
from app.stage import roles, tiles
from app.stage.video_posts import MAX_BODY_BYTES, RECHECK_SECONDS, HttpVideoSenders, PostedSender
from app.state import AppState, get_app_state
from realtime import post_frames
from realtime.media import KIND_VIDEO, BadMedia, unpack

router = APIRouter(tags=["pages: the stage's video"])

IdPath = Annotated[int, Path(ge=1, le=2**31 - 1)]
Choice = Annotated[str, Form(max_length=20)]
Number = Annotated[str, Form(max_length=12)]

NOT_PINNED = (
    "Your video is not on the stage here: a host pins the presenter's and the interpreter's "
    "video, and in a breakout room you turn your own camera on first."
)


def video_posts(request: Request) -> HttpVideoSenders:
    senders: HttpVideoSenders = get_app_state(request).video_posts
    return senders


def stop_sender(request: Request) -> tiles.StopSender:
    return video_posts(request).stop


@router.post(BASE + "/stage/roles")
async def name_role(
    request: Request,
    seat: SeatOf,
    db: SessionDep,
    live: LiveDep,
    user_id: Number = "",
    role: Choice = "",
) -> Response:
    roles.require_host(seat)
    person = required_id(user_id, what="person")
    message = await roles.name_role(
        db, live, seat=seat, user_id=person, role=roles.parse_role(role)
    )
    return done(request, seat, message)


@router.post(BASE + "/stage/roles/{role_id}/remove")
async def remove_role(
    request: Request, seat: SeatOf, db: SessionDep, live: LiveDep, role_id: IdPath
) -> Response:
    message = await tiles.remove_role(
        db, live, seat=seat, role_id=role_id, stop_sender=stop_sender(request)
    )
    return done(request, seat, message)


@router.post(BASE + "/stage/tiles/pin")
async def pin_tile(
    request: Request,
    seat: SeatOf,
    db: SessionDep,
    live: LiveDep,
    user_id: Number = "",
    kind: Choice = "",
) -> Response:
    tiles.require_host(seat)
    person = required_id(user_id, what="person")
    message = await tiles.pin(db, live, seat=seat, user_id=person, kind=tiles.parse_kind(kind))
    return done(request, seat, message)


@router.post(BASE + "/stage/tiles/{tile_id}/stop")
async def stop_tile(
    request: Request, seat: SeatOf, db: SessionDep, live: LiveDep, tile_id: IdPath
) -> Response:
    message = await tiles.stop(
        db, live, seat=seat, tile_id=tile_id, stop_sender=stop_sender(request)
    )
    return done(request, seat, message)


@router.post(BASE + "/stage/camera/on")
async def camera_on(request: Request, seat: SeatOf, db: SessionDep, live: LiveDep) -> Response:
    return done(request, seat, await tiles.camera_on(db, live, seat=seat))


@router.post(BASE + "/stage/camera/off")
async def camera_off(request: Request, seat: SeatOf, db: SessionDep, live: LiveDep) -> Response:
    message = await tiles.camera_off(db, live, seat=seat, stop_sender=stop_sender(request))
    return done(request, seat, message)


async def posting_sender(
    state: AppState, cookie: str | None, programme_id: int, session_id: int
) -> PostedSender:
    """The sender of the person posting, checked against their tile in their current room
    on the first post and again at least every RECHECK_SECONDS."""
    claims = read_claims(cookie, signer=state.signer, settings=state.settings)
    if claims is None:
        raise NotSignedIn()
    senders = state.video_posts
    entry = senders.get(session_id, claims.user_id)
    if entry is not None and entry.fresh(RECHECK_SECONDS):
        senders.touch(session_id, claims.user_id)
        return entry
    seat = await seat_for_cookie(state, cookie, programme_id, session_id)
    async with state.sessionmaker() as db:
        kind = await tiles.tile_of(
            db, session_id=session_id, channel=seat.current, user_id=seat.user_id
        )
    if kind is None:
        senders.end(session_id, seat.user_id)
        raise NotAllowed(NOT_PINNED, code="not_pinned")
    return senders.keep(session_id, seat.user_id, seat.current, kind)


@router.post(BASE + "/video")
async def post_video(
    request: Request, programme_id: ProgrammeIdPath, session_id: SessionIdPath
) -> Response:
    """A camera's frames when the WebSocket is blocked: packed media packets of kind 2
    (application/octet-stream); answered {"ok": true, "keyframe": bool}."""
    state = get_app_state(request)
    entry = await posting_sender(
        state, request.cookies.get(SESSION_COOKIE), programme_id, session_id
    )
    if entry.over_rate():
        raise TooFast("Too many posts of video at once: send at most 30 a second.", retry_after=1)
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/octet-stream":
        raise Refused("Send the frames as application/octet-stream.", status=415)
    try:
        body = await post_frames.read_body(request, MAX_BODY_BYTES)
        packets = unpack(body)
    except ClientDisconnect:
        # The page went away mid-post (closed, or stopped its camera): nobody to answer.
        return Response(status_code=400)
    except post_frames.BodyTooLarge as exc:
        raise TooLarge(f"Too much video at once: {exc}. Send a few frames at a time.") from exc
    except BadMedia as exc:
        raise Refused(f"The body is not a sequence of media packets: {exc}.") from exc
    if any(packet.kind != KIND_VIDEO for packet in packets):
        raise Refused("Only video packets (kind 2) can be sent here.")
    assert entry.sender is not None
    try:
        taken = sum(entry.sender.frame(packet.payload) for packet in packets)
    except BadMedia as exc:
        raise Refused(f"That is not a video frame: {exc}.") from exc
    answer = {
        "ok": True,
        "keyframe": entry.take_keyframe_request(),
        "dropped": len(packets) - taken,
    }
    return Response(
        json.dumps(answer), media_type="application/json", headers={"Cache-Control": "no-store"}
    )
