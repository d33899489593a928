"""A room's chat rules for a person at this moment: muted, locked, rate limit, slow mode.

What the database says is read by one statement per message (`ROOM_RULES`, for a send on
its own) or by one statement for a whole batch of the chat writer's (`batch_facts`):
the writer's batches are written one after the other, so statements per message, not per
batch, decided how many messages a second it could write; and on SQLite each statement
is several hops to the database's thread and back. Either way `apply_rules` then
decides, the same way, from the same facts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    BindParameter,
    CompoundSelect,
    Integer,
    Select,
    bindparam,
    cast,
    func,
    literal_column,
    null,
    select,
    tuple_,
    type_coerce,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from app.db import UTCDateTime
from app.live.channels import Seat
from app.live.models import ChatMessage, ChatMute, RoomSetting
from app.refusals import NotAllowed, TooFast

RATE_LIMIT_COUNT = 5
RATE_LIMIT_SECONDS = 5


def time_label(seat: Seat, when: datetime) -> str:
    return when.astimezone(ZoneInfo(seat.ctx.programme.timezone)).strftime("%H:%M")


@dataclass(frozen=True)
class Rules:
    """What the database says about one person sending to one room now."""

    muted_until: datetime | None = None
    locked: bool = False
    slow_mode_seconds: int = 0
    # Their messages (anywhere) within the rate limit's window, and their last one here.
    recent: int = 0
    last_here: datetime | None = None


def rate_window_start(now: datetime) -> datetime:
    return now - timedelta(seconds=RATE_LIMIT_SECONDS)


def apply_rules(seat: Seat, channel: str, rules: Rules, *, also_sent: int, now: datetime) -> None:
    """Refuse the message if the rules forbid it now; `also_sent` counts the person's
    messages not yet stored (earlier in the same batch)."""
    if rules.muted_until is not None and rules.muted_until > now:
        until = time_label(seat, rules.muted_until)
        raise NotAllowed(f"A facilitator has paused your chat until {until}.", code="muted")
    moderator = seat.may_moderate(channel)
    if rules.locked and not moderator:
        raise NotAllowed("The facilitator has locked this room's chat for now.", code="locked")
    if rules.recent + also_sent >= RATE_LIMIT_COUNT:
        raise TooFast(
            f"You are sending messages very quickly. Please wait a few seconds "
            f"(at most {RATE_LIMIT_COUNT} messages in {RATE_LIMIT_SECONDS} seconds).",
            code="rate_limited",
            retry_after=RATE_LIMIT_SECONDS,
        )
    slow_seconds = rules.slow_mode_seconds
    if slow_seconds and not moderator and rules.last_here is not None:
        waited = (now - rules.last_here).total_seconds()
        if waited < slow_seconds:
            wait = int(slow_seconds - waited) + 1
            raise TooFast(
                f"Slow mode is on: you can send another message in {wait} seconds.",
                code="slow_mode",
                retry_after=wait,
            )


def _room_rules() -> Select[Any]:
    mine = ChatMessage.author_id == bindparam("user_id")
    here = RoomSetting.channel == bindparam("channel")
    return select(
        select(ChatMute.until)
        .where(
            ChatMute.session_id == bindparam("session_id"), ChatMute.user_id == bindparam("user_id")
        )
        .scalar_subquery(),
        select(RoomSetting.locked).where(here).scalar_subquery(),
        select(RoomSetting.slow_mode_seconds).where(here).scalar_subquery(),
        select(func.count())
        .select_from(ChatMessage)
        .where(mine, ChatMessage.created_at > bindparam("since", type_=UTCDateTime()))
        .scalar_subquery(),
        select(func.max(ChatMessage.created_at))
        .where(mine, ChatMessage.channel == bindparam("channel"))
        .scalar_subquery(),
    )


# Built once: a statement object that is reused skips SQLAlchemy's per-statement compile work.
ROOM_RULES = _room_rules()


def room_rules_params(seat: Seat, channel: str, now: datetime) -> dict[str, Any]:
    """ROOM_RULES's parameters for one message (the async and the writer's sync reads)."""
    return {
        "session_id": seat.session.id,
        "user_id": seat.user_id,
        "channel": channel,
        "since": rate_window_start(now),
    }


def rules_of(row: Any) -> Rules:
    muted_until, locked, slow_seconds, recent, last_here = row
    return Rules(muted_until, bool(locked), slow_seconds or 0, recent or 0, last_here)


async def rules_for(db: AsyncSession, *, seat: Seat, channel: str, now: datetime) -> Rules:
    """The rules for one message: one statement."""
    return rules_of((await db.execute(ROOM_RULES, room_rules_params(seat, channel, now))).one())


# Stored messages' ids by (author id, client id).
StoredIds = dict[tuple[int, str], int]


def _facts() -> CompoundSelect:
    """One statement for everything a batch needs to know, one row per fact, as (kind, a,
    b, c, d): "s" a message stored before (author, client id, id); "m" a mute (user, -,
    session, until); "r" a room's rules (slow mode seconds, channel, locked); "c" the
    person's recent messages (author, -, count); "l" their last message in a room in
    slow mode (author, channel, -, when). Parameters: `keys` (author, client id), `mutes`
    (session, user), `users`, `rooms` (lists, expanded) and `since`."""
    mine = ChatMessage.author_id.in_(bindparam("users", expanding=True))
    rooms: BindParameter[str] = bindparam("rooms", expanding=True)
    slow_rooms = select(RoomSetting.channel).where(
        RoomSetting.channel.in_(rooms), RoomSetting.slow_mode_seconds > 0
    )
    return union_all(
        select(
            literal_column("'s'").label("k"),
            ChatMessage.author_id.label("a"),
            ChatMessage.client_id.label("b"),
            ChatMessage.id.label("c"),
            type_coerce(null(), UTCDateTime()).label("d"),
        ).where(
            tuple_(ChatMessage.author_id, ChatMessage.client_id).in_(
                bindparam("keys", expanding=True)
            )
        ),
        select(
            literal_column("'m'"), ChatMute.user_id, null(), ChatMute.session_id, ChatMute.until
        ).where(
            tuple_(ChatMute.session_id, ChatMute.user_id).in_(bindparam("mutes", expanding=True))
        ),
        select(
            literal_column("'r'"),
            RoomSetting.slow_mode_seconds,
            RoomSetting.channel,
            cast(RoomSetting.locked, Integer),
            null(),
        ).where(RoomSetting.channel.in_(rooms)),
        select(literal_column("'c'"), ChatMessage.author_id, null(), func.count(), null())
        .where(mine, ChatMessage.created_at > bindparam("since", type_=UTCDateTime()))
        .group_by(ChatMessage.author_id),
        select(
            literal_column("'l'"),
            ChatMessage.author_id,
            ChatMessage.channel,
            null(),
            func.max(ChatMessage.created_at),
        )
        .where(mine, ChatMessage.channel.in_(slow_rooms))
        .group_by(ChatMessage.author_id, ChatMessage.channel),
    )


# Built once, with its lists as expanding parameters: building it for each batch cost
# SQLAlchemy a cache key (a walk of the whole statement) every time.
FACTS = _facts()


def batch_facts(
    db: Session,
    keys: set[tuple[int, str]],
    sends: Sequence[tuple[Seat, str]],
    *,
    now: datetime,
) -> tuple[StoredIds, list[Rules]]:
    """For a batch of the chat writer's, in one statement: which of its messages (by
    author and client id: `keys`) are stored already, and the rules for each of its room
    messages (`sends`: seat and channel). Synchronous: part of the writer's batch, written
    in one go (app/live/chat_batch.py)."""
    users = {seat.user_id for seat, _ in sends}
    mute_keys = {(seat.session.id, seat.user_id) for seat, _ in sends}
    rooms = {channel for _, channel in sends}
    stored: StoredIds = {}
    mutes: dict[tuple[int, int], datetime] = {}
    settings: dict[str, tuple[bool, int]] = {}
    recent: dict[int, int] = {}
    last_here: dict[tuple[int, str], datetime] = {}
    if not keys:
        return stored, []
    rows = db.connection().execute(
        FACTS,
        {
            "keys": sorted(keys),
            "mutes": sorted(mute_keys) or [(0, 0)],
            "users": sorted(users) or [0],
            "rooms": sorted(rooms) or [""],
            "since": rate_window_start(now),
        },
    )
    for kind, a, b, c, d in rows.tuples():
        if kind == "s":
            stored[(a, b)] = c
        elif kind == "m":
            mutes[(c, a)] = d
        elif kind == "r":
            settings[b] = (bool(c), a or 0)
        elif kind == "c":
            recent[a] = c
        else:
            last_here[(a, b)] = d
    rules = []
    for seat, channel in sends:
        locked, slow = settings.get(channel, (False, 0))
        rules.append(
            Rules(
                muted_until=mutes.get((seat.session.id, seat.user_id)),
                locked=locked,
                slow_mode_seconds=slow,
                recent=recent.get(seat.user_id, 0),
                last_here=last_here.get((seat.user_id, channel)) if slow else None,
            )
        )
    return stored, rules
