"""Live transports for a session: WebSocket, Server-Sent Events and long-polling.

All three follow the same channels with the same cursors; the browser's script starts
with the WebSocket and falls back when it is blocked."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Header, HTTPException, Query, WebSocket
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import HTTPConnection
from starlette.responses import Response, StreamingResponse

from app.deps import SessionDep
from app.live.chat import refused_when_busy, send_message
from app.live.deps import HubDep, SeatOf
from app.live.seats import SEAT_CHANGING_EVENTS, SeatKeeper, keeper_for, load_seat, make_authorizer
from app.refusals import Refused
from app.security import SESSION_COOKIE, same_origin
from app.sessions import user_from_cookie
from app.state import get_app_state
from realtime.connection import Connection
from realtime.events import control
from realtime.transport import (
    Cursors,
    FrameError,
    follow_authorized,
    long_poll,
    parse_cursor_text,
    serve_websocket,
    sse_stream,
)

router = APIRouter(tags=["live transports"])

BASE = "/programmes/{programme_id}/sessions/{session_id}/live"
CursorQuery = Annotated[str, Query(max_length=2000, description="channel=id,channel=id")]


def make_frame_handler(conn: HTTPConnection, keeper: SeatKeeper):  # type: ignore[no-untyped-def]
    async def handle(frame: dict[str, Any]) -> list[str]:
        if frame["type"] != "chat.send":
            raise FrameError("unknown_type", f"unknown frame type {str(frame['type'])[:40]!r}")
        text, channel, client_id = frame.get("text"), frame.get("channel"), frame.get("client_id")
        if (
            not isinstance(text, str)
            or not isinstance(channel, str)
            or not isinstance(client_id, str)
        ):
            raise FrameError("bad_frame", "chat.send needs text, channel and client_id strings")
        try:
            with refused_when_busy():  # a busy database: "busy" with retry_after, not a close
                seat = await keeper.get()
                if seat is None:
                    return [
                        control(
                            "error",
                            code="not_allowed",
                            message="You are no longer in this session.",
                        )
                    ]
                async with get_app_state(conn).sessionmaker() as db:
                    message_id, _new = await send_message(
                        db,
                        get_app_state(conn).live,
                        writer=get_app_state(conn).chat_writer,
                        seat=seat,
                        channel=channel,
                        text=text,
                        client_id=client_id,
                        private=frame.get("private") is True,
                    )
        except Refused as exc:
            extra = {"retry_after": exc.retry_after} if exc.retry_after is not None else {}
            return [
                control(
                    "error", code=exc.code, message=exc.message, client_id=client_id[:64], **extra
                )
            ]
        return [control("ack", client_id=client_id, id=message_id)]

    return handle


@router.websocket(BASE + "/ws")
async def live_websocket(websocket: WebSocket, programme_id: int, session_id: int) -> None:
    state = get_app_state(websocket)
    if not same_origin(websocket):
        await websocket.close(code=1008, reason="cross-site connections are refused")
        return
    async with state.sessionmaker() as db:
        user = await user_from_cookie(
            db,
            signer=state.signer,
            settings=state.settings,
            cookie=websocket.cookies.get(SESSION_COOKIE),
        )
    if user is None:
        await websocket.close(code=1008, reason="sign in first")
        return
    seat = await load_seat(websocket, programme_id, session_id, user.id)
    if seat is None:
        await websocket.close(code=1008, reason="you are not part of this session")
        return
    keeper = SeatKeeper(websocket, programme_id, session_id, user.id)
    keeper.keep(seat)
    connection = keeper.connection_for(state.hub, stale_on=SEAT_CHANGING_EVENTS)
    await serve_websocket(
        websocket,
        connection,
        authorize=make_authorizer(keeper),
        handle_frame=make_frame_handler(websocket, keeper),
    )


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
        raise HTTPException(status_code=400, detail=exc.message) from exc


async def follow_or_close(
    connection: Connection, requested: Cursors, keeper: SeatKeeper
) -> list[str]:
    """Follow what the stream asks for; refused (a database too busy: 503), the connection
    is closed again rather than left following channels for nobody."""
    try:
        return await follow_authorized(connection, requested, make_authorizer(keeper))
    except BaseException:
        await connection.close()
        raise


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
) -> Response:
    requested = cursors_from(cursors, last_event_id)
    await release_database(db)
    keeper = keeper_for(request, seat)
    connection = keeper.connection_for(hub)
    backlog = await follow_or_close(connection, requested, keeper)
    return StreamingResponse(
        sse_stream(connection, backlog, max_seconds=duration),
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
) -> Response:
    requested = cursors_from(cursors, None)
    await release_database(db)
    keeper = keeper_for(request, seat)
    connection = keeper.connection_for(hub)
    backlog = await follow_or_close(connection, requested, keeper)
    messages = await long_poll(connection, backlog, wait=wait)
    cursor_map = {c: i for c, i in connection.cursors.items()}
    body = '{"events":[' + ",".join(messages) + '],"cursors":' + json.dumps(cursor_map) + "}"
    return Response(body, media_type="application/json", headers={"Cache-Control": "no-store"})
