"""Live transports for a session: WebSocket, Server-Sent Events and long-polling.

All three follow the same channels with the same cursors; the browser's script starts
with the WebSocket and falls back when it is blocked."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Header, HTTPException, Query, WebSocket
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import HTTPConnection
from starlette.responses import Response, StreamingResponse

from app.deps import SessionDep, load_programme_context, user_from_cookie
from app.live import channels
from app.live.access import refollow
from app.live.channels import CHANNEL_PATTERN, Seat, seat_for
from app.live.chat import refused_when_busy, send_message
from app.live.deps import HubDep, SeatOf
from app.models import ProgrammeSession, User
from app.refusals import Refused
from app.security import SESSION_COOKIE
from app.state import get_app_state
from realtime.connection import AccessEnded, Connection
from realtime.events import control
from realtime.hub import Hub
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


# Events after which a connection's seat is worked out again: rooms opened or closed,
# the person moved.
SEAT_CHANGING_EVENTS = ("breakout.opened", "breakout.closed", "room.changed")
# Changes of access reach connections at once (app/live/access.py); this is the longest a
# connection goes unchecked if such a message is lost (a broker reconnect), or a session
# cookie expires while it is open.
SEAT_MAX_AGE_SECONDS = 120.0
SIGNED_OUT = "signed out: sign in again"
NOT_IN_SESSION = "you are no longer part of this session"


class SeatKeeper:
    """One connection's view of where the person is and what they may do.

    Working the seat out takes several queries, so it is kept, and worked out again after
    an event that can move the person, when the connection is asked to check itself
    (`recheck`), and at least every SEAT_MAX_AGE_SECONDS. Each time, the session cookie the
    connection was opened with is checked first: signing out ends the connection too."""

    def __init__(
        self, conn: HTTPConnection, programme_id: int, session_id: int, user_id: int
    ) -> None:
        self.conn = conn
        self.key = (programme_id, session_id, user_id)
        # The cookie this connection was opened with (the browser may have another by now).
        self.cookie = conn.cookies.get(SESSION_COOKIE)
        self.seat: Seat | None = None
        self.loaded_at = 0.0
        self.connection: Connection | None = None
        # Why the seat is None, for the client.
        self.ended = NOT_IN_SESSION

    @property
    def user_id(self) -> int:
        return self.key[2]

    def keep(self, seat: Seat) -> None:
        self.seat, self.loaded_at = seat, time.monotonic()

    async def get(self) -> Seat | None:
        stale = self.connection is not None and self.connection.stale
        if self.seat is None or stale or time.monotonic() - self.loaded_at > SEAT_MAX_AGE_SECONDS:
            await self._reload()
        return self.seat

    async def _reload(self) -> None:
        if self.connection is not None:
            self.connection.stale = False
        seat, ended = None, NOT_IN_SESSION
        async with get_app_state(self.conn).sessionmaker() as db:
            user = await user_from_cookie(
                db,
                signer=get_app_state(self.conn).signer,
                settings=get_app_state(self.conn).settings,
                cookie=self.cookie,
            )
            if user is None or user.id != self.user_id:
                ended = SIGNED_OUT
            else:
                seat = await seat_in(db, user, *self.key[:2])
        self.seat, self.ended, self.loaded_at = seat, ended, time.monotonic()

    async def recheck(self, cursors: Mapping[str, int]) -> Cursors:
        """What the connection follows now that the person's access may have changed;
        AccessEnded when they are signed out or no longer in the session."""
        before = self.seat
        await self._reload()
        if self.seat is None:
            raise AccessEnded(self.ended)
        return refollow(before, self.seat, cursors)

    def connection_for(self, hub: Hub, *, stale_on: tuple[str, ...] = ()) -> Connection:
        """The connection this keeper checks: it hears rechecks on the person's own channel
        whatever it follows."""
        connection = Connection(
            hub,
            member=str(self.user_id),
            stale_on=stale_on,
            signals=channels.personal(self.user_id),
            recheck=self.recheck,
            recheck_every=SEAT_MAX_AGE_SECONDS,
        )
        self.connection = connection
        return connection


def make_authorizer(keeper: SeatKeeper):  # type: ignore[no-untyped-def]
    """Checks each requested channel against the person's current seat."""

    async def authorize(cursors: Cursors) -> tuple[Cursors, list[str]]:
        seat = await keeper.get()
        followable = seat.followable() if seat else set()
        allowed: Cursors = {}
        refusals = []
        for channel, cursor in cursors.items():
            if CHANNEL_PATTERN.match(channel) and channel in followable:
                allowed[channel] = cursor
            else:
                refusals.append(f"You cannot follow {channel[:100]}.")
        return allowed, refusals

    return authorize


async def seat_in(db: AsyncSession, user: User, programme_id: int, session_id: int) -> Seat | None:
    try:
        ctx = await load_programme_context(db, user, programme_id)
    except HTTPException:
        return None
    session = await db.get(ProgrammeSession, session_id)
    if session is None or session.programme_id != programme_id:
        return None
    return await seat_for(db, ctx=ctx, session=session)


async def load_seat(
    conn: HTTPConnection, programme_id: int, session_id: int, user_id: int
) -> Seat | None:
    async with get_app_state(conn).sessionmaker() as db:
        user = await db.get(User, user_id)
        if user is None:
            return None
        return await seat_in(db, user, programme_id, session_id)


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


def same_origin(conn: HTTPConnection) -> bool:
    """Browsers send Origin with every WebSocket; it must be this site."""
    origin = conn.headers.get("origin")
    if origin is None:
        return True  # not a browser; the session cookie still decides
    host = conn.headers.get("host", "")
    return urlsplit(origin).netloc == host


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


def keeper_for(request: HTTPConnection, seat: Seat) -> SeatKeeper:
    """A keeper holding the seat this request has just worked out."""
    keeper = SeatKeeper(request, seat.ctx.programme.id, seat.session.id, seat.user_id)
    keeper.keep(seat)
    return keeper


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
