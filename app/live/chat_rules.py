"""A room's chat rules for a person at this moment: muted, locked, rate limit, slow mode.

What the database says is read by one statement per message (`ROOM_RULES`, for a send on
its own) or by a few statements for a whole batch of the chat writer's (`batch_rules`):
the writer's batches are written one after the other, so statements per message, not per
batch, decided how many messages a second it could write. Either way `apply_rules` then
decides, the same way, from the same facts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Select, bindparam, func, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

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


async def rules_for(db: AsyncSession, *, seat: Seat, channel: str, now: datetime) -> Rules:
    """The rules for one message: one statement."""
    muted_until, locked, slow_seconds, recent, last_here = (
        await db.execute(
            ROOM_RULES,
            {
                "session_id": seat.session.id,
                "user_id": seat.user_id,
                "channel": channel,
                "since": rate_window_start(now),
            },
        )
    ).one()
    return Rules(muted_until, bool(locked), slow_seconds or 0, recent or 0, last_here)


async def batch_rules(
    db: AsyncSession, sends: Sequence[tuple[Seat, str]], *, now: datetime
) -> list[Rules]:
    """The rules for each (seat, channel) of a batch: three statements for the whole batch,
    and a fourth only when a room of the batch is in slow mode."""
    if not sends:
        return []
    users = {seat.user_id for seat, _ in sends}
    rooms = {channel for _, channel in sends}
    mute_keys = {(seat.session.id, seat.user_id) for seat, _ in sends}
    mutes = {
        (session_id, user_id): until
        for session_id, user_id, until in (
            await db.execute(
                select(ChatMute.session_id, ChatMute.user_id, ChatMute.until).where(
                    tuple_(ChatMute.session_id, ChatMute.user_id).in_(mute_keys)
                )
            )
        ).tuples()
    }
    settings = {
        channel: (bool(locked), slow or 0)
        for channel, locked, slow in (
            await db.execute(
                select(
                    RoomSetting.channel, RoomSetting.locked, RoomSetting.slow_mode_seconds
                ).where(RoomSetting.channel.in_(rooms))
            )
        ).tuples()
    }
    recent = dict(
        (
            await db.execute(
                select(ChatMessage.author_id, func.count())
                .where(
                    ChatMessage.author_id.in_(users),
                    ChatMessage.created_at > rate_window_start(now),
                )
                .group_by(ChatMessage.author_id)
            )
        )
        .tuples()
        .all()
    )
    slow_rooms = {channel for channel, (_, slow) in settings.items() if slow}
    last_here: dict[tuple[int | None, str], datetime | None] = {}
    if slow_rooms:
        rows = await db.execute(
            select(ChatMessage.author_id, ChatMessage.channel, func.max(ChatMessage.created_at))
            .where(ChatMessage.author_id.in_(users), ChatMessage.channel.in_(slow_rooms))
            .group_by(ChatMessage.author_id, ChatMessage.channel)
        )
        last_here = {(author, channel): last for author, channel, last in rows.tuples()}
    out = []
    for seat, channel in sends:
        locked, slow = settings.get(channel, (False, 0))
        out.append(
            Rules(
                muted_until=mutes.get((seat.session.id, seat.user_id)),
                locked=locked,
                slow_mode_seconds=slow,
                recent=recent.get(seat.user_id, 0),
                last_here=last_here.get((seat.user_id, channel)),
            )
        )
    return out
