"""Where a person is in a live session, kept for a connection: their seat, worked out
again when something may have moved them or ended their access."""

from __future__ import annotations

import time
from collections.abc import Mapping

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import HTTPConnection

from app.access import load_programme_context
from app.live import channels
from app.live.access import refollow
from app.live.channels import CHANNEL_PATTERN, Seat, seat_for
from app.models import ProgrammeSession, User
from app.refusals import NotFound
from app.security import SESSION_COOKIE
from app.sessions import user_from_cookie
from app.state import get_app_state
from realtime.connection import AccessEnded, Connection
from realtime.hub import Hub
from realtime.transport import Cursors

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
    except NotFound:
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


def keeper_for(request: HTTPConnection, seat: Seat) -> SeatKeeper:
    """A keeper holding the seat this request has just worked out."""
    keeper = SeatKeeper(request, seat.ctx.programme.id, seat.session.id, seat.user_id)
    keeper.keep(seat)
    return keeper
