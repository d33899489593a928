"""What a page shows when it is first drawn (or redrawn after a resync): the latest
messages of a channel and the channel's event id at that moment."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from app.live import channels
from app.live.channels import Seat
from app.live.chat import message_payload, room_setting
from app.live.events import ChatMessagePayload, HelpPayload
from app.live.help_queries import open_help
from app.live.models import ChatMessage, RoomSetting
from realtime import log as event_log

SNAPSHOT_MESSAGES = 50


@dataclass
class ChannelView:
    channel: str
    last_id: int
    messages: list[ChatMessagePayload]
    removed: set[int]
    # For the help desk: the open hands and help requests instead of chat.
    help: list[HelpPayload] | None = None


async def channel_view(db: AsyncSession, *, seat: Seat, channel: str) -> ChannelView:
    # The id first, then the messages: anything newer than the id also arrives live, and
    # the page replaces an element it already has instead of showing it twice.
    last_id = await event_log.head(db, channel)
    if channel == seat.help_desk:
        items = await open_help(db, seat=seat)
        return ChannelView(channel=channel, last_id=last_id, messages=[], removed=set(), help=items)
    query = select(ChatMessage).options(selectinload(ChatMessage.author))
    if channel.startswith("u"):
        query = query.where(ChatMessage.session_id == seat.session.id)
        query = query.where(
            or_(
                ChatMessage.channel == channel,
                ChatMessage.private_to_group_id.in_(list(seat.facilitated) or [0]),
            )
        )
    else:
        query = query.where(ChatMessage.channel == channel)
    rows = (await db.scalars(query.order_by(ChatMessage.id.desc()).limit(SNAPSHOT_MESSAGES))).all()
    messages = []
    removed = set()
    for message in reversed(rows):
        private = message.private_to_group_id is not None
        messages.append(message_payload(seat, message, message.author, private=private))
        if message.removed_at is not None:
            removed.add(message.id)
    return ChannelView(channel=channel, last_id=last_id, messages=messages, removed=removed)


async def settings_of(db: AsyncSession, channel: str) -> RoomSetting:
    return await room_setting(db, channel)


def room_title(seat: Seat) -> str:
    if seat.current == channels.plenary(seat.session.id) or seat.current_group is None:
        return "Plenary"
    return f"{seat.current_group.name} room"
