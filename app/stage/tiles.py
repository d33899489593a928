"""Video tiles on a room's stage (StageTile): whose camera is shown there, and as what.

- The plenary: a host pins at most MAX_STAGE_TILES tiles: a presenter (a host, or a member
  named as presenter for the session) and the sign-language interpreter (a member named as
  interpreter). Only a host pins.
- A breakout room: when the programme allows breakout cameras, a member in the room may
  turn their own camera on (kind "camera"), at most MAX_ROOM_CAMERAS at once. A breakout
  room's tiles count only from the opening of the round of rooms now open: the rooms'
  channels are the same in the next round, their cameras are not.
- A host stops any tile; a facilitator a camera in a room they facilitate; anyone their own.

Each change is audited, commits, then publishes `stage.tiles` (the room's tiles, its
fragment replacing the room's list) and makes the person's connections check themselves
again (app/live/access.py), so that what they may send (SeatKeeper.video_tile) follows."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from app import audit
from app.live import channels
from app.live.access import access_changed
from app.live.channels import Seat, member_seat, open_breakout
from app.live.events import TileItem, TilesPayload
from app.models import Role, User
from app.refusals import Conflict, NotAllowed, NotFound, Refused
from app.stage import roles
from app.stage.models import StageRole, StageRoleKind, StageTile, TileKind
from app.stage.roles import has_role
from realtime.publish import Live

MAX_STAGE_TILES = 2
MAX_ROOM_CAMERAS = 4

# Ends a tile's sender on the server at once (VideoRouter.stop(room, source)).
StopSender = Callable[[str, int], None]

KIND_LABELS = {
    TileKind.PRESENTER: "Presenter",
    TileKind.INTERPRETER: "Sign-language interpreter",
    TileKind.CAMERA: "Camera",
}


@dataclass
class Tile:
    id: int
    user_id: int
    name: str
    kind: str
    channel: str


def parse_kind(value: str) -> TileKind:
    if value.strip() == TileKind.PRESENTER.value:
        return TileKind.PRESENTER
    if value.strip() == TileKind.INTERPRETER.value:
        return TileKind.INTERPRETER
    raise Refused("Choose whether to pin them as the presenter or as the interpreter.")


async def round_started(db: AsyncSession, *, session_id: int, channel: str) -> object | None:
    """Since when a room's tiles count: None for the plenary (always); for a breakout room,
    the opening of the rooms now open ("closed" when none are)."""
    if channel == channels.plenary(session_id):
        return None
    breakout = await open_breakout(db, session_id=session_id)
    return breakout.opened_at if breakout is not None else "closed"


async def tiles_in(db: AsyncSession, *, session_id: int, channel: str) -> list[Tile]:
    """The tiles a room shows now, oldest first."""
    since = await round_started(db, session_id=session_id, channel=channel)
    if since == "closed":
        return []
    query = (
        select(
            StageTile.id, StageTile.user_id, User.display_name, StageTile.kind, StageTile.channel
        )
        .join(User, User.id == StageTile.user_id)
        .where(StageTile.session_id == session_id, StageTile.channel == channel)
        .order_by(StageTile.created_at, StageTile.id)
    )
    if since is not None:
        query = query.where(StageTile.created_at >= since)
    return [Tile(*row) for row in (await db.execute(query)).tuples()]


async def tile_of(db: AsyncSession, *, session_id: int, channel: str, user_id: int) -> str | None:
    """The kind of this person's tile in this room now, if they have one."""
    for tile in await tiles_in(db, session_id=session_id, channel=channel):
        if tile.user_id == user_id:
            return tile.kind
    return None


async def tile_for_seat(db: AsyncSession, seat: Seat) -> str | None:
    """`tile_of` for a seat just worked out (its open breakout is known): one small query,
    made each time a sending connection's seat is."""
    query = select(StageTile.kind).where(
        StageTile.channel == seat.current, StageTile.user_id == seat.user_id
    )
    if seat.current != channels.plenary(seat.session.id):
        if seat.breakout is None:
            return None
        query = query.where(StageTile.created_at >= seat.breakout.opened_at)
    return await db.scalar(query.limit(1))


def payload(channel: str, tiles: list[Tile]) -> TilesPayload:
    return TilesPayload(
        channel=channel,
        tiles=[TileItem(id=t.id, user_id=t.user_id, name=t.name, kind=t.kind) for t in tiles],
    )


async def publish_tiles(db: AsyncSession, live: Live, *, seat: Seat, rooms: Iterable[str]) -> None:
    """Store each room's `stage.tiles` event with the change, and commit."""
    outbox = live.outbox(db)
    for room in rooms:
        await db.flush()
        tiles = await tiles_in(db, session_id=seat.session.id, channel=room)
        await outbox.add(room, "stage.tiles", payload(room, tiles), actor_id=seat.user_id)
    await outbox.commit()


def require_host(seat: Seat) -> None:
    if not seat.is_host:
        raise NotAllowed("Only the programme's hosts can pin video on the stage.")


async def may_be_pinned(db: AsyncSession, *, seat: Seat, person: Seat, kind: TileKind) -> None:
    name = person.ctx.user.display_name
    session_id = seat.session.id
    if kind is TileKind.PRESENTER:
        if person.is_host or await has_role(
            db, session_id=session_id, user_id=person.user_id, role=StageRoleKind.PRESENTER
        ):
            return
        raise Refused(f"{name} is not a host or a presenter of this session: name them first.")
    if not await has_role(
        db, session_id=session_id, user_id=person.user_id, role=StageRoleKind.INTERPRETER
    ):
        raise Refused(f"{name} is not named as this session's interpreter: name them first.")


async def pin(db: AsyncSession, live: Live, *, seat: Seat, user_id: int, kind: TileKind) -> str:
    """A host pins a person's video on the plenary stage."""
    require_host(seat)
    _, person = await member_seat(db, seat=seat, user_id=user_id)
    await may_be_pinned(db, seat=seat, person=person, kind=kind)
    plenary = channels.plenary(seat.session.id)
    name = person.ctx.user.display_name
    tiles = await tiles_in(db, session_id=seat.session.id, channel=plenary)
    for tile in tiles:
        if tile.user_id == user_id:
            raise Conflict(f"{name} is already on the stage: stop that tile first.")
    if len(tiles) >= MAX_STAGE_TILES:
        raise Conflict(
            f"The stage already shows {MAX_STAGE_TILES} videos, the most it shows: stop one first."
        )
    db.add(
        StageTile(
            session_id=seat.session.id,
            channel=plenary,
            user_id=user_id,
            kind=kind.value,
            pinned_by_id=seat.user_id,
        )
    )
    audit.record(
        db,
        actor=seat.ctx.user,
        action="stage.tile_pinned",
        programme_id=seat.ctx.programme.id,
        target=f"user:{user_id}",
        session_id=seat.session.id,
        channel=plenary,
        kind=kind.value,
    )
    await publish_tiles(db, live, seat=seat, rooms=[plenary])
    await access_changed(live, user_ids=[user_id], reason="video tile pinned")
    return f"{name}'s video is pinned on the stage as {KIND_LABELS[kind].lower()}."


async def stop(
    db: AsyncSession,
    live: Live,
    *,
    seat: Seat,
    tile_id: int,
    stop_sender: StopSender | None = None,
) -> str:
    """Take a tile down: a host any, a facilitator a camera in their room, anyone their own."""
    tile = await db.get(StageTile, tile_id)
    if tile is None or tile.session_id != seat.session.id:
        raise NotFound("That video is no longer on the stage.")
    own = tile.user_id == seat.user_id
    facilitates = tile.kind == TileKind.CAMERA.value and seat.may_moderate(tile.channel)
    if not (seat.is_host or own or facilitates):
        raise NotAllowed(
            "Only a host (or, in a breakout room, its facilitator) can stop this video."
        )
    person = await db.get(User, tile.user_id)
    name = person.display_name if person else "That person"
    channel, user_id = tile.channel, tile.user_id
    await db.delete(tile)
    audit.record(
        db,
        actor=seat.ctx.user,
        action="stage.tile_stopped",
        programme_id=seat.ctx.programme.id,
        target=f"user:{user_id}",
        session_id=seat.session.id,
        channel=channel,
        kind=tile.kind,
    )
    await publish_tiles(db, live, seat=seat, rooms=[channel])
    if stop_sender is not None:
        stop_sender(channel, user_id)
    await access_changed(live, user_ids=[user_id], reason="video tile stopped")
    return "Your camera is off." if own else f"{name}'s video is stopped."


def require_camera_room(seat: Seat) -> str:
    room = seat.current
    if channels.room_group_id(room) is None:
        raise Refused(
            "Cameras can be turned on in breakout rooms only; on the stage, a host pins the video."
        )
    if not seat.ctx.programme.allow_breakout_cameras:
        raise NotAllowed("This programme does not allow cameras in breakout rooms.")
    if seat.ctx.role is Role.OBSERVER:
        raise NotAllowed("Observers cannot turn a camera on.")
    return room


async def camera_on(db: AsyncSession, live: Live, *, seat: Seat) -> str:
    """Show the person's own camera to the others in their breakout room."""
    room = require_camera_room(seat)
    tiles = await tiles_in(db, session_id=seat.session.id, channel=room)
    if any(t.user_id == seat.user_id for t in tiles):
        return "Your camera is on."
    if len(tiles) >= MAX_ROOM_CAMERAS:
        raise Conflict(
            f"{len(tiles)} people already have their camera on in this room, the most a room "
            "shows. Try again when someone turns theirs off."
        )
    # A tile left from an earlier round of rooms (it no longer counts) is replaced.
    old = await db.scalar(
        select(StageTile).where(StageTile.channel == room, StageTile.user_id == seat.user_id)
    )
    if old is not None:
        await db.delete(old)
        await db.flush()
    db.add(
        StageTile(
            session_id=seat.session.id,
            channel=room,
            user_id=seat.user_id,
            kind=TileKind.CAMERA.value,
            pinned_by_id=seat.user_id,
        )
    )
    audit.record(
        db,
        actor=seat.ctx.user,
        action="stage.camera_on",
        programme_id=seat.ctx.programme.id,
        target=f"user:{seat.user_id}",
        session_id=seat.session.id,
        channel=room,
    )
    await publish_tiles(db, live, seat=seat, rooms=[room])
    await access_changed(live, user_ids=[seat.user_id], reason="camera on")
    return "Your camera is on."


async def camera_off(
    db: AsyncSession, live: Live, *, seat: Seat, stop_sender: StopSender | None = None
) -> str:
    tile_id = await db.scalar(
        select(StageTile.id).where(
            StageTile.channel == seat.current,
            StageTile.user_id == seat.user_id,
            StageTile.kind == TileKind.CAMERA.value,
        )
    )
    if tile_id is None:
        return "Your camera is off."
    return await stop(db, live, seat=seat, tile_id=tile_id, stop_sender=stop_sender)


async def remove_role(
    db: AsyncSession,
    live: Live,
    *,
    seat: Seat,
    role_id: int,
    stop_sender: StopSender | None = None,
) -> str:
    """Take a role back, and the plenary tile it allowed (announced to the room)."""
    roles.require_host(seat)
    row = await db.get(StageRole, role_id)
    if row is None or row.session_id != seat.session.id:
        raise NotFound("That person is not named for this session.")
    person = await db.get(User, row.user_id)
    name = person.display_name if person else "That person"
    label = roles.ROLE_LABELS[StageRoleKind(row.role)]
    user_id = row.user_id
    await db.delete(row)
    removed = await db.execute(
        delete(StageTile)
        .where(
            StageTile.session_id == seat.session.id,
            StageTile.user_id == user_id,
            StageTile.kind == row.role,
        )
        .returning(StageTile.channel)
    )
    rooms = sorted(set(removed.scalars().all()))
    audit.record(
        db,
        actor=seat.ctx.user,
        action="stage.role_removed",
        programme_id=seat.ctx.programme.id,
        target=f"user:{user_id}",
        session_id=seat.session.id,
        role=row.role,
        tiles_removed=len(rooms),
    )
    await publish_tiles(db, live, seat=seat, rooms=rooms)
    for room in rooms:
        if stop_sender is not None:
            stop_sender(room, user_id)
    await access_changed(live, user_ids=[user_id], reason="stage role removed")
    return f"{name} is no longer {label} for this session."
