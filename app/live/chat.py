"""Chat: sending, removing and reporting messages, with the room's rules applied."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app import audit
from app.db import RETRY_AFTER_SECONDS, is_overloaded, utcnow
from app.live import channels
from app.live.channels import Seat
from app.live.chat_rules import apply_rules, rules_for, time_label
from app.live.events import ChatMessagePayload, MessageRemovedPayload, ReportPayload
from app.live.models import ChatMessage, MessageReport, RoomSetting
from app.live.text import clean_message
from app.models import User
from app.refusals import Busy, NotAllowed, NotFound, Refused
from realtime.publish import Live

if TYPE_CHECKING:
    from app.live.chat_writer import ChatWriter

MAX_MESSAGE_CHARS = 2000


BUSY_MESSAGE = "So many messages are arriving at once that yours has not been sent yet."


def busy(message: str = BUSY_MESSAGE) -> Refused:
    """The server is too busy for this now; the page sends it again after Retry-After."""
    return Busy(message, code="busy", retry_after=RETRY_AFTER_SECONDS)


@contextlib.contextmanager
def refused_when_busy() -> Iterator[None]:
    """A database too busy to answer in time becomes a refusal the sender is told about
    (and may retry), not a failure; any other error stays one."""
    try:
        yield
    except Exception as exc:
        if is_overloaded(exc):
            raise busy() from exc
        raise


def message_payload(
    seat: Seat, message: ChatMessage, author: User | None, **extra
) -> ChatMessagePayload:  # type: ignore[no-untyped-def]
    return ChatMessagePayload(
        id=message.id,
        author=author.display_name if author else "Someone who has left",
        pronouns=author.pronouns if author else "",
        text=message.body,
        at=message.created_at,
        time_label=time_label(seat, message.created_at),
        **extra,
    )


async def room_setting(db: AsyncSession, channel: str) -> RoomSetting:
    return await db.get(RoomSetting, channel) or RoomSetting(
        channel=channel, locked=False, slow_mode_seconds=0
    )


async def check_may_send(db: AsyncSession, *, seat: Seat, channel: str, also_sent: int = 0) -> None:
    """The room's rules for this person now: muted, locked, rate limit, slow mode
    (app/live/chat_rules.py); one statement."""
    if not seat.may_post(channel):
        raise NotAllowed("You cannot send messages to that room.", code="not_allowed")
    now = utcnow()
    rules = await rules_for(db, seat=seat, channel=channel, now=now)
    apply_rules(seat, channel, rules, also_sent=also_sent, now=now)


def validate_text(text: str) -> str:
    cleaned = clean_message(text)
    if not cleaned:
        raise Refused("Type a message first.", code="empty")
    if len(cleaned) > MAX_MESSAGE_CHARS:
        raise Refused(
            f"Messages can be at most {MAX_MESSAGE_CHARS:,} characters; "
            f"this one has {len(cleaned):,}.",
            code="too_long",
        )
    return cleaned


def validate_client_id(client_id: str) -> str:
    if not 1 <= len(client_id) <= 64 or not client_id.replace("-", "").replace("_", "").isalnum():
        raise Refused("The message id is not valid; reload the page.", code="bad_client_id")
    return client_id


async def send_message(
    *,
    writer: ChatWriter,
    seat: Seat,
    channel: str,
    text: str,
    client_id: str,
    private: bool = False,
) -> tuple[int, bool]:
    """Store and publish a message (to `channel`, or privately to the facilitators of the
    person's room); returns its id and whether it is new (a retried send with the same
    client id returns the first one)."""
    # Who may post here is decided before anything about the message itself.
    if not seat.may_post(seat.current if private else channel):
        raise NotAllowed("You cannot send messages to that room.", code="not_allowed")
    body = validate_text(text)
    client_id = validate_client_id(client_id)
    return await writer.send(
        seat=seat,
        channel=channels.personal(seat.user_id) if private else channel,
        body=body,
        client_id=client_id,
        private=private,
    )


async def load_message(db: AsyncSession, *, seat: Seat, message_id: int) -> ChatMessage:
    """A message the person can see (in a channel they may follow), else not found."""
    message = await db.get(ChatMessage, message_id)
    if (
        message is None
        or message.session_id != seat.session.id
        or message.channel not in seat.followable()
    ):
        raise NotFound("We could not find that message.", code="not_found")
    return message


async def remove_message(db: AsyncSession, live: Live, *, seat: Seat, message_id: int) -> None:
    message = await load_message(db, seat=seat, message_id=message_id)
    if not seat.may_moderate(message.channel):
        raise NotAllowed("Only this room's facilitators can remove messages.")
    if message.removed_at is not None:
        return
    message.removed_at = utcnow()
    message.removed_by_id = seat.user_id
    audit.record(
        db,
        actor=seat.ctx.user,
        action="moderation.remove_message",
        programme_id=seat.ctx.programme.id,
        target=f"message:{message.id}",
        channel=message.channel,
        author_id=message.author_id,
        text=message.body[:200],
    )
    outbox = live.outbox(db)
    await outbox.add(
        message.channel,
        "chat.removed",
        MessageRemovedPayload(id=message.id),
        actor_id=seat.user_id,
        target=f"m{message.id}",
    )
    await outbox.commit()


async def report_message(
    db: AsyncSession, live: Live, *, seat: Seat, message_id: int, reason: str
) -> None:
    message = await load_message(db, seat=seat, message_id=message_id)
    reason = clean_message(reason)[:500]
    already = await db.scalar(
        select(MessageReport).where(
            MessageReport.message_id == message.id, MessageReport.reporter_id == seat.user_id
        )
    )
    if already is not None:
        return
    db.add(MessageReport(message_id=message.id, reporter_id=seat.user_id, reason=reason))
    author = await db.get(User, message.author_id) if message.author_id else None
    group_id = channels.room_group_id(message.channel)
    room_name = (
        "Plenary"
        if group_id is None
        else (seat.room_groups[group_id].name if group_id in seat.room_groups else "a room")
    )
    audit.record(
        db,
        actor=seat.ctx.user,
        action="moderation.report",
        programme_id=seat.ctx.programme.id,
        target=f"message:{message.id}",
        reason=reason,
    )
    outbox = live.outbox(db)
    await outbox.add(
        channels.staff(seat.session.id),
        "report.created",
        ReportPayload(
            message_id=message.id,
            room=room_name,
            author=author.name_with_pronouns if author else "someone",
            excerpt=message.body[:200],
            reporter=seat.ctx.user.name_with_pronouns,
            reason=reason,
        ),
        actor_id=seat.user_id,
    )
    await outbox.commit()
