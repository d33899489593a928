"""Live transports for a session: WebSocket, Server-Sent Events and long-polling.

All three carry one LiveConnection (realtime/live_connection.py) whose Access is the
person's SeatKeeper, so they follow the same channels with the same cursors; the browser's
script starts with the WebSocket and falls back when it is blocked. Every action is an
ordinary post (app/live/routes/), the same on every transport; chat is also taken as a
frame on the WebSocket (app/live/chat_frames.py), by the same path."""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Header, Query, WebSocket
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import HTTPConnection
from starlette.responses import Response, StreamingResponse

from app.deps import SessionDep
from app.live.channels import Seat
from app.live.chat_frames import ChatFrames
from app.live.deps import HubDep, SeatOf
from app.live.seats import SEAT_CHANGING_EVENTS, WebSocketRefused, admit_websocket, keeper_for
from app.live.web import BASE
from app.refusals import Refused
from app.state import get_app_state
from realtime.frames import FrameError
from realtime.hub import Hub
from realtime.live_connection import Cursors, LiveConnection
from realtime.transport import long_poll, parse_cursor_text, serve_websocket, sse_stream

router = APIRouter(tags=["live transports"])

CursorQuery = Annotated[str, Query(max_length=2000, description="channel=id,channel=id")]
MediaQuery = Annotated[
    str,
    Query(
        pattern=r"^$|^(audio|video|interpreter)(,(audio|video|interpreter)){0,2}$",
        description='"audio" to hear the room (docs/voice.md), "video" or "interpreter" to '
        "watch its tiles (docs/stage-tiles.md), comma-separated",
    ),
]
ListenerQuery = Annotated[
    str,
    Query(
        pattern=r"^[A-Za-z0-9_-]{16,64}$|^$",
        description="A long-polling page's own id, so audio waits between its polls",
    ),
]


@router.websocket(BASE + "/ws")
async def live_websocket(websocket: WebSocket, programme_id: int, session_id: int) -> None:
    try:
        keeper = await admit_websocket(
            websocket, programme_id, session_id, stale_on=SEAT_CHANGING_EVENTS, video=True
        )
    except WebSocketRefused as refused:
        await websocket.close(code=1008, reason=refused.message)
        return
    state = get_app_state(websocket)
    # Chat frames (the page's sends while this socket is open) take the post's path.
    chat = ChatFrames(state, keeper, programme_id, session_id)
    live = LiveConnection(
        state.hub,
        keeper,
        transport="websocket",
        voice=state.voice,
        video=state.video,
        actions=chat,
    )
    chat.live = live
    # While it is open, the person's chat posts may use the seat it keeps up to date.
    with state.chat_writer.seats.holding(keeper, live):
        await serve_websocket(websocket, live)


async def release_database(db: AsyncSession) -> None:
    """Give the request's database connection back before a stream or a long wait.

    The session would otherwise stay open (and its connection checked out of the pool)
    until the response ends: minutes for a stream, so a room of people on the fallback
    transports emptied the pool and every other request waited for a connection. The seat
    stays usable (closing expunges its objects without expiring them); the keeper works it
    out again with a session of its own."""
    await db.close()


def cursors_from(cursors: str, last_event_id: str | None) -> Cursors:
    try:
        # After a dropped stream the browser resends the last id it saw, which carries
        # every cursor; it is fresher than the URL's.
        return parse_cursor_text(last_event_id or cursors)
    except FrameError as exc:
        raise Refused(exc.message) from exc


async def open_fallback(
    request: HTTPConnection,
    seat: Seat,
    db: AsyncSession,
    hub: Hub,
    transport: str,
    *,
    media: str = "",
    listener: str = "",
) -> LiveConnection:
    """The connection of a stream or a poll, on the seat its request worked out; with
    `media=audio` it hears the person's room, with "video" or "interpreter" it watches its
    tiles (a long-poll's media waits in the inboxes of its `listener` between polls)."""
    await release_database(db)
    state = get_app_state(request)
    kinds = set(media.split(",")) if media else set()
    member = str(seat.user_id)
    inbox = state.voice.mailbox(member, listener) if "audio" in kinds and listener else None
    watching = bool(kinds & {"video", "interpreter"}) and bool(listener)
    video_inbox = state.video.mailbox(member, listener) if watching else None
    live = LiveConnection(
        hub,
        keeper_for(request, seat),
        transport=transport,
        voice=state.voice,
        inbox=inbox,
        video=state.video,
        video_inbox=video_inbox,
    )
    live.want_media(kinds)
    return live


@router.get(BASE + "/sse")
async def live_sse(
    request: HTTPConnection,
    seat: SeatOf,
    db: SessionDep,
    hub: HubDep,
    cursors: CursorQuery = "",
    last_event_id: Annotated[str | None, Header(max_length=2000)] = None,
    duration: Annotated[
        float, Query(ge=0, le=300, description="Seconds before the server ends the stream")
    ] = 300.0,
    media: MediaQuery = "",
) -> Response:
    requested = cursors_from(cursors, last_event_id)
    live = await open_fallback(request, seat, db, hub, "sse", media=media)
    backlog = await live.open(requested)
    return StreamingResponse(
        sse_stream(live, backlog, max_seconds=duration),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache, no-transform", "X-Accel-Buffering": "no"},
    )


@router.get(BASE + "/poll")
async def live_poll(
    request: HTTPConnection,
    seat: SeatOf,
    db: SessionDep,
    hub: HubDep,
    cursors: CursorQuery = "",
    wait: Annotated[float, Query(ge=0, le=30)] = 25.0,
    media: MediaQuery = "",
    listener: ListenerQuery = "",
) -> Response:
    requested = cursors_from(cursors, None)
    live = await open_fallback(request, seat, db, hub, "poll", media=media, listener=listener)
    messages = await long_poll(live, await live.open(requested), wait=wait)
    body = '{"events":[' + ",".join(messages) + '],"cursors":' + json.dumps(live.cursors) + "}"
    return Response(body, media_type="application/json", headers={"Cache-Control": "no-store"})
