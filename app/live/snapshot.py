"""What a page shows when it is first drawn (or redrawn after a resync): the latest
messages of a channel and the channel's event id at that moment."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from app.live import channels
from app.live.channels import Seat
from app.live.chat import message_payload, room_setting, time_label
from app.live.events import ChatMessagePayload, HelpPayload
from app.live.models import ChatMessage, HelpRequest, RoomSetting
from app.models import Group, Membership, User
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


async def open_help(
    db: AsyncSession, *, seat: Seat, group_id: int | None = None
) -> list[HelpPayload]:
    """Open hands and help requests the person should see (as their help desk receives
    them, app/live/help.py): all of them for IT support and hosts, their groups' for a
    facilitator (from the groups' rooms, or from their members in the plenary); with
    `group_id`, only those for that group, as a facilitator's console shows them."""
    query = (
        select(HelpRequest)
        .options(selectinload(HelpRequest.requester))
        .where(HelpRequest.session_id == seat.session.id, HelpRequest.status != "resolved")
    )
    if not seat.is_staff:
        return []
    if not (seat.is_host or seat.ctx.role.value == "it_support"):
        facilitated = list(seat.facilitated) or [0]
        # In the plenary, a request is for the facilitators of the person's own group.
        members = select(Membership.user_id).where(
            Membership.programme_id == seat.ctx.programme.id,
            Membership.group_id.in_(facilitated),
        )
        query = query.where(
            or_(
                HelpRequest.group_id.in_(facilitated),
                and_(HelpRequest.group_id.is_(None), HelpRequest.requester_id.in_(members)),
            )
        )
    if group_id is not None:
        group_members = select(Membership.user_id).where(
            Membership.programme_id == seat.ctx.programme.id, Membership.group_id == group_id
        )
        query = query.where(
            or_(
                HelpRequest.group_id == group_id,
                and_(HelpRequest.group_id.is_(None), HelpRequest.requester_id.in_(group_members)),
            )
        )
    rows = (await db.scalars(query.order_by(HelpRequest.id))).all()
    claimer_ids = {r.claimed_by_id for r in rows if r.claimed_by_id}
    claimers = {
        u.id: u.name_with_pronouns
        for u in (await db.scalars(select(User).where(User.id.in_(claimer_ids or {0})))).all()
    }
    groups = {
        g.id: g.name
        for g in (
            await db.scalars(select(Group).where(Group.programme_id == seat.ctx.programme.id))
        ).all()
    }
    return [
        HelpPayload(
            id=r.id,
            kind=r.kind,
            who=r.requester.name_with_pronouns,
            room=groups.get(r.group_id, "Plenary") if r.group_id else "Plenary",
            note=r.note,
            status=r.status,
            at=r.created_at,
            time_label=time_label(seat, r.created_at),
            claimed_by=claimers.get(r.claimed_by_id or 0, ""),
        )
        for r in rows
    ]


async def settings_of(db: AsyncSession, channel: str) -> RoomSetting:
    return await room_setting(db, channel)


def room_title(seat: Seat) -> str:
    if seat.current == channels.plenary(seat.session.id) or seat.current_group is None:
        return "Plenary"
    return f"{seat.current_group.name} room"
