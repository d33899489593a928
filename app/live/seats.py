"""Where a person is in a live session, kept for a connection: their seat, worked out
again when something may have moved them or ended their access."""

from __future__ import annotations

import contextlib
import hmac
import time
from collections.abc import Callable, Iterator, Mapping

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import HTTPConnection
from starlette.websockets import WebSocket

from app.access import load_programme_context, session_in_programme
from app.db import is_overloaded
from app.errors import NotSignedIn
from app.live import channels
from app.live.access import refollow
from app.live.channels import CHANNEL_PATTERN, Seat, seat_for
from app.models import ProgrammeSession, User
from app.refusals import Refused
from app.security import SESSION_COOKIE, same_origin
from app.sessions import read_claims, session_user, user_from_cookie
from app.stage.tiles import tile_for_seat
from app.state import AppState, get_app_state
from realtime.connection import Busy
from realtime.live_connection import AccessEnded, Cursors, LiveConnection

# Events after which a connection's seat is worked out again: rooms opened or closed,
# the person moved, a room's video tiles changed (whose camera it shows: video_tile).
SEAT_CHANGING_EVENTS = ("breakout.opened", "breakout.closed", "room.changed", "stage.tiles")


# Changes of access reach connections at once (app/live/access.py); this is the longest a
# connection goes unchecked if such a message is lost (a broker reconnect), or a session
# cookie expires while it is open.
SEAT_MAX_AGE_SECONDS = 120.0


SIGNED_OUT = "signed out: sign in again"


NOT_IN_SESSION = "you are no longer part of this session"

# What a connection follows once its person's seat has changed (before, after, what it
# follows now with its cursors); raises AccessEnded when it may follow nothing.
Follows = Callable[[Seat | None, Seat, Mapping[str, int]], Cursors]


class SeatKeeper:
    """One connection's view of where the person is and what they may do: the app's
    `Access` for its LiveConnection (realtime/live_connection.py).

    Working the seat out takes several queries, so it is kept, and worked out again when
    the connection has seen an event that can move the person (`stale_on`), when it is
    asked to check itself (`recheck`), and at least every SEAT_MAX_AGE_SECONDS. Each time,
    the session cookie the connection was opened with is checked first: signing out ends
    the connection too."""

    def __init__(
        self,
        conn: HTTPConnection,
        programme_id: int,
        session_id: int,
        user_id: int,
        *,
        stale_on: tuple[str, ...] = (),
        recheck_every: float = SEAT_MAX_AGE_SECONDS,
        follows: Follows = refollow,
        video: bool = False,
    ) -> None:
        self.conn = conn
        self.key = (programme_id, session_id, user_id)
        # The cookie this connection was opened with (the browser may have another by now).
        self.cookie = conn.cookies.get(SESSION_COOKIE)
        self.seat: Seat | None = None
        self.loaded_at = 0.0
        # Why the seat is None, for the client.
        self.ended = NOT_IN_SESSION
        self.member = str(user_id)
        # Rechecks arrive on the person's own channel, whatever the connection follows.
        self.signals: str | None = channels.personal(user_id)
        self.stale_on = stale_on
        self.recheck_every: float | None = recheck_every
        self.follows = follows
        # Set while the seat is being worked out again: the kept one may be out of date.
        self.reloading = False
        # Whether the connection may send video: then the kind of the person's video tile
        # in their current room is loaded with the seat.
        self.video = video
        self.tile: str | None = None

    @property
    def user_id(self) -> int:
        return self.key[2]

    def keep(self, seat: Seat, tile: str | None = None) -> None:
        self.seat, self.tile, self.loaded_at = seat, tile, time.monotonic()

    async def get(self, *, stale: bool = False) -> Seat | None:
        """The seat, worked out again if `stale` (the connection saw an event that may
        have moved the person) or old."""
        if self.seat is None or stale or time.monotonic() - self.loaded_at > SEAT_MAX_AGE_SECONDS:
            await self.reload()
        return self.seat

    async def reload(self) -> Seat | None:
        seat, ended, tile = None, NOT_IN_SESSION, None
        self.reloading = True
        try:
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
                    if seat is not None and self.video:
                        tile = await tile_for_seat(db, seat)
        finally:
            self.reloading = False
        self.seat, self.ended, self.loaded_at = seat, ended, time.monotonic()
        self.tile = tile
        return seat

    def current(self, *, stale: bool) -> Seat | None:
        """The kept seat if it can be trusted as it is: not being worked out again, no
        event seen since that may have moved the person (`stale`, the connection's), and
        not older than SEAT_MAX_AGE_SECONDS; else None."""
        if self.seat is None or self.reloading or stale:
            return None
        if time.monotonic() - self.loaded_at > SEAT_MAX_AGE_SECONDS:
            return None
        return self.seat

    async def authorize(self, cursors: Cursors, *, stale: bool) -> tuple[Cursors, list[str]]:
        """Each requested channel checked against the person's current seat."""
        seat = await self.get(stale=stale)
        followable = seat.followable() if seat else set()
        allowed: Cursors = {}
        refusals = []
        for channel, cursor in cursors.items():
            if CHANNEL_PATTERN.match(channel) and channel in followable:
                allowed[channel] = cursor
            else:
                refusals.append(f"You cannot follow {channel[:100]}.")
        return allowed, refusals

    def audible(self, channels: set[str]) -> set[str]:
        """Voice: the person hears the room they are in now (if the connection follows
        it), and no other: not the plenary while in a breakout, not a room they watch."""
        seat = self.seat
        if seat is None or seat.current not in channels:
            return set()
        return {seat.current}

    def video_tile(self, channels: set[str]) -> tuple[str, str] | None:
        """Video: the tile this person may send as (room, kind): theirs in the room they
        are in now, when the connection follows it; None while the seat is being worked
        out again (after a `stage.tiles` event, the connection rechecks first)."""
        seat = self.seat
        if seat is None or self.tile is None or self.reloading or seat.current not in channels:
            return None
        return seat.current, self.tile

    async def recheck(self, cursors: Mapping[str, int]) -> Cursors:
        """What the connection follows now that the person's access may have changed;
        AccessEnded when they are signed out or no longer in the session."""
        before = self.seat
        try:
            after = await self.reload()
        except Exception as exc:
            if is_overloaded(exc):
                raise Busy() from exc
            raise
        if after is None:
            raise AccessEnded(self.ended)
        return self.follows(before, after, cursors)


async def seat_in(db: AsyncSession, user: User, programme_id: int, session_id: int) -> Seat | None:
    try:
        ctx = await load_programme_context(db, user, programme_id)
    except Refused:
        return None
    session = await db.get(ProgrammeSession, session_id)
    if session is None or session.programme_id != programme_id:
        return None
    return await seat_for(db, ctx=ctx, session=session)


async def load_seat(
    conn: HTTPConnection, programme_id: int, session_id: int, user_id: int, *, video: bool
) -> tuple[Seat, str | None] | None:
    """The person's seat, and (`video`) the kind of their video tile there."""
    async with get_app_state(conn).sessionmaker() as db:
        user = await db.get(User, user_id)
        if user is None:
            return None
        seat = await seat_in(db, user, programme_id, session_id)
        if seat is None:
            return None
        return seat, await tile_for_seat(db, seat) if video else None


def keeper_for(request: HTTPConnection, seat: Seat) -> SeatKeeper:
    """A keeper holding the seat this request has just worked out."""
    keeper = SeatKeeper(request, seat.ctx.programme.id, seat.session.id, seat.user_id)
    keeper.keep(seat)
    return keeper


class WebSocketRefused(Exception):
    """Why a WebSocket may not open: a short code and the reason for the client."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


async def admit_websocket(
    websocket: WebSocket,
    programme_id: int,
    session_id: int,
    *,
    stale_on: tuple[str, ...] = (),
    recheck_every: float = SEAT_MAX_AGE_SECONDS,
    follows: Follows = refollow,
    video: bool = False,
) -> SeatKeeper:
    """A keeper of the seat of the signed-in person opening this WebSocket, checked as a
    page is (the WebSockets are outside the CSRF dependency: they check their Origin and
    the session cookie here), and of their video tile for a connection that may send
    video (`video`); raises WebSocketRefused."""
    if not same_origin(websocket):
        raise WebSocketRefused("cross_site", "cross-site connections are refused")
    state = get_app_state(websocket)
    async with state.sessionmaker() as db:
        user = await user_from_cookie(
            db,
            signer=state.signer,
            settings=state.settings,
            cookie=websocket.cookies.get(SESSION_COOKIE),
        )
    if user is None:
        raise WebSocketRefused("sign_in", "sign in first")
    loaded = await load_seat(websocket, programme_id, session_id, user.id, video=video)
    if loaded is None:
        raise WebSocketRefused("not_allowed", "you are not part of this session")
    seat, tile = loaded
    keeper = SeatKeeper(
        websocket,
        programme_id,
        session_id,
        user.id,
        stale_on=stale_on,
        recheck_every=recheck_every,
        follows=follows,
        video=video,
    )
    keeper.keep(seat, tile)
    return keeper


class HeldSeats:
    """The seats kept by this process's open live WebSockets, so that a person's chat post
    need not work out again what their connection already keeps up to date.

    A connection's seat is worked out again whenever what the person may do has changed
    (a move, a new role, a breakout opened or closed, signing out: the recheck sent by
    app/live/access.py and the events of SEAT_CHANGING_EVENTS), and at least every
    SEAT_MAX_AGE_SECONDS; from the moment such a signal reaches this process until the new
    seat is known, the connection's seat is not used and a post works its own out from the
    database, as it does when the person has no connection here (another process, a
    fallback transport). A post uses a connection's seat only when it carries the very
    session cookie the connection was opened with (compared in constant time). Mutes,
    locks, the rate limit and slow mode are not part of a seat: the chat writer reads them
    from the database for every message."""

    def __init__(self) -> None:
        self._held: dict[tuple[int, int, int], dict[SeatKeeper, LiveConnection]] = {}

    @contextlib.contextmanager
    def holding(self, keeper: SeatKeeper, live: LiveConnection) -> Iterator[None]:
        """Offer this connection's seat to its person's posts while the block runs."""
        self._held.setdefault(keeper.key, {})[keeper] = live
        try:
            yield
        finally:
            held = self._held.get(keeper.key)
            if held is not None:
                held.pop(keeper, None)
                if not held:
                    del self._held[keeper.key]

    def find(self, cookie: str, programme_id: int, session_id: int, user_id: int) -> Seat | None:
        """A seat an open connection of this person keeps, opened with this cookie and
        trustworthy now; None when there is none (the caller works the seat out itself)."""
        held = self._held.get((programme_id, session_id, user_id))
        if not held:
            return None
        for keeper, live in held.items():
            if keeper.cookie is None or not hmac.compare_digest(
                keeper.cookie.encode(), cookie.encode()
            ):
                continue
            seat = keeper.current(stale=live.stale)
            if seat is not None:
                return seat
        return None


async def seat_for_post(conn: HTTPConnection, programme_id: int, session_id: int) -> Seat:
    """The seat of the signed-in person posting: the one their open connection in this
    process keeps (HeldSeats), else worked out from the database as for any page
    (NotSignedIn, NotFound for a programme or session they are not part of)."""
    return await seat_for_cookie(
        get_app_state(conn), conn.cookies.get(SESSION_COOKIE), programme_id, session_id
    )


async def seat_for_cookie(
    state: AppState, cookie: str | None, programme_id: int, session_id: int
) -> Seat:
    """`seat_for_post` for a session cookie: its signature and age are checked every time,
    whoever asks (a post, a chat frame on the WebSocket the cookie opened)."""
    claims = read_claims(cookie, signer=state.signer, settings=state.settings)
    if cookie is not None and claims is not None:
        held = state.chat_writer.seats.find(cookie, programme_id, session_id, claims.user_id)
        if held is not None:
            return held
    async with state.sessionmaker() as db:
        user = await session_user(db, claims) if claims is not None else None
        if user is None:
            raise NotSignedIn()
        ctx = await load_programme_context(db, user, programme_id)
        session = await session_in_programme(db, ctx, session_id)
        return await seat_for(db, ctx=ctx, session=session)
