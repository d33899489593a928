"""Moderation beyond removing messages (app/live/chat.py): pausing someone's chat for a
while, and a room's chat rules (locked, slow mode).

Facilitators moderate the rooms of the groups they facilitate; hosts moderate everywhere.
Every action is audited and the people affected are told."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from app import audit
from app.db import utcnow
from app.live import channels
from app.live.channels import Seat, member_seat
from app.live.chat import room_setting
from app.live.events import NoticePayload, RoomSettingsPayload
from app.live.local_time import clock
from app.live.models import ChatMute, RoomSetting
from app.models import Group, Role
from app.refusals import NotAllowed, NotFound, Refused
from realtime.publish import Live

MIN_MUTE_MINUTES, MAX_MUTE_MINUTES = 1, 120
MAX_SLOW_MODE_SECONDS = 300


def require_moderator(seat: Seat) -> None:
    if not (seat.is_host or seat.ctx.role is Role.FACILITATOR):
        raise NotAllowed("Only facilitators and hosts can moderate the chat.")


async def set_mute(
    db: AsyncSession, live: Live, *, seat: Seat, user_id: int, minutes: int | None
) -> str:
    """Pause someone's chat for `minutes` (None: let them chat again). Returns a line for
    the moderator."""
    require_moderator(seat)
    if minutes is not None and not MIN_MUTE_MINUTES <= minutes <= MAX_MUTE_MINUTES:
        raise Refused(f"Choose a pause from {MIN_MUTE_MINUTES} to {MAX_MUTE_MINUTES} minutes.")
    if user_id == seat.user_id:
        raise Refused("You cannot pause your own chat.")
    person, where = await member_seat(db, seat=seat, user_id=user_id)
    if not seat.may_moderate(where.current):
        raise NotAllowed("You can only pause the chat of people in rooms you facilitate.")
    if where.is_host and not seat.is_host:
        raise NotAllowed("Only a host can pause a host's chat.")
    mute = await db.get(ChatMute, (seat.session.id, user_id))
    timezone = seat.ctx.programme.timezone
    if minutes is None:
        if mute is not None:
            await db.delete(mute)
        notice = "Your chat is on again."
        reply = f"{person.display_name} can chat again."
        action = "moderation.unmute"
    else:
        until = utcnow() + timedelta(minutes=minutes)
        if mute is None:
            db.add(
                ChatMute(
                    session_id=seat.session.id,
                    user_id=user_id,
                    until=until,
                    muted_by_id=seat.user_id,
                )
            )
        else:
            mute.until = until
            mute.muted_by_id = seat.user_id
        notice = (
            f"A facilitator has paused your chat for {minutes} minute"
            f"{'s' if minutes != 1 else ''} (until {clock(until, timezone)}). "
            "You can still read the room and ask for help."
        )
        reply = f"{person.display_name}'s chat is paused until {clock(until, timezone)}."
        action = "moderation.mute"
    audit.record(
        db,
        actor=seat.ctx.user,
        action=action,
        programme_id=seat.ctx.programme.id,
        target=f"user:{user_id}",
        session_id=seat.session.id,
        channel=where.current,
        minutes=minutes,
    )
    outbox = live.outbox(db)
    await outbox.add(
        channels.personal(user_id), "notice", NoticePayload(text=notice), actor_id=seat.user_id
    )
    await outbox.commit()
    return reply


async def check_room(db: AsyncSession, *, seat: Seat, channel: str) -> None:
    """The channel must be this session's plenary or one of its programme's rooms."""
    if channel == channels.plenary(seat.session.id):
        return
    group_id = channels.room_group_id(channel)
    group = await db.get(Group, group_id) if group_id is not None else None
    if (
        group is None
        or group.programme_id != seat.ctx.programme.id
        or channel != channels.room(seat.session.id, group.id)
    ):
        raise NotFound("We could not find that room.")


async def set_room_rules(
    db: AsyncSession,
    live: Live,
    *,
    seat: Seat,
    channel: str,
    locked: bool,
    slow_mode_seconds: int,
) -> RoomSettingsPayload:
    require_moderator(seat)
    if not channel:
        raise Refused("Choose the room whose chat rules to change.")
    await check_room(db, seat=seat, channel=channel)
    if not seat.may_moderate(channel):
        raise NotAllowed("Only this room's facilitators and the hosts can change its chat rules.")
    if not 0 <= slow_mode_seconds <= MAX_SLOW_MODE_SECONDS:
        raise Refused(f"Slow mode can be from 0 (off) to {MAX_SLOW_MODE_SECONDS} seconds.")
    before = await room_setting(db, channel)
    was = (before.locked, before.slow_mode_seconds)
    setting = await db.get(RoomSetting, channel)
    if setting is None:
        setting = RoomSetting(channel=channel)
        db.add(setting)
    setting.locked = locked
    setting.slow_mode_seconds = slow_mode_seconds
    payload = RoomSettingsPayload(
        channel=channel, locked=locked, slow_mode_seconds=slow_mode_seconds
    )
    audit.record(
        db,
        actor=seat.ctx.user,
        action="moderation.room_settings",
        programme_id=seat.ctx.programme.id,
        target=channel,
        locked=locked,
        slow_mode_seconds=slow_mode_seconds,
    )
    outbox = live.outbox(db)
    await outbox.add(
        channel, "room.settings", payload, actor_id=seat.user_id, target=f"rs-{channel}"
    )
    lines = []
    if locked != was[0]:
        lines.append(
            "The facilitator has locked the chat for now." if locked else "The chat is open again."
        )
    if slow_mode_seconds != was[1]:
        lines.append(
            f"Slow mode is on: one message every {slow_mode_seconds} seconds."
            if slow_mode_seconds
            else "Slow mode is off."
        )
    if lines:
        await outbox.add(
            channel, "notice", NoticePayload(text=" ".join(lines)), actor_id=seat.user_id
        )
    await outbox.commit()
    return payload


def rules_summary(rules: RoomSettingsPayload) -> str:
    """A room's chat rules in a line, for the moderator who set them."""
    parts = ["Chat is locked." if rules.locked else "Chat is open."]
    if rules.slow_mode_seconds:
        parts.append(f"Slow mode: {rules.slow_mode_seconds} seconds.")
    return " ".join(parts)
