"""Live captions as domain actions: turning someone's captioning off and on, correcting a
caption, the room's stored captions, and each person's caption display preferences.

Facilitators act on the rooms of the groups they facilitate; hosts everywhere (as for
chat moderation). Every change is audited, and the people affected are told."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app import audit
from app.captions.models import CaptionEdit, CaptionMute, CaptionPreference, CaptionSegment
from app.db import utcnow
from app.live import channels
from app.live.channels import Seat, member_seat
from app.live.events import CaptionFinalPayload, NoticePayload
from app.live.local_time import clock
from app.models import Group, Role, User
from app.numbers import is_digits
from app.refusals import NotAllowed, NotFound, Refused
from captioning.engine import CaptionEngine
from realtime.publish import Live

MAX_CORRECTION_CHARS = 1000
MIN_SIZE_PERCENT, MAX_SIZE_PERCENT, DEFAULT_SIZE_PERCENT = 100, 300, 150
MIN_LINES, MAX_LINES, DEFAULT_LINES = 1, 10, 3
CONTRASTS = {
    "light-on-dark": "Light text on a dark background",
    "dark-on-light": "Dark text on a light background",
    "yellow-on-black": "Yellow text on black",
}
DEFAULT_CONTRAST = "light-on-dark"

MUTED_NOTICE = (
    "A facilitator has turned off live captions of your microphone for this session. "
    "You can still take part in the chat."
)
UNMUTED_NOTICE = (
    "Live captions of your microphone are allowed again; turn your microphone on to use them."
)


def public_status(engine: CaptionEngine) -> str:
    """Either "ok" or why captions are unavailable, for pages (never a server path)."""
    return "ok" if engine.available else engine.public_reason


# -- what caption events carry --


def caption_list_id(channel: str) -> str:
    """The id of the room panel's list of captions (`<ol class="caption-log">`)."""
    return f"captions-{channel}"


def final_payload(segment: CaptionSegment, *, timezone: str) -> CaptionFinalPayload:
    return CaptionFinalPayload(
        id=segment.id,
        stream=segment.stream_id,
        speaker=segment.speaker_name,
        text=segment.text,
        start=segment.started_at,
        end=segment.ended_at,
        time_label=clock(segment.started_at, timezone),
        edited=segment.edited_at is not None,
    )


def final_data(segment: CaptionSegment) -> dict[str, Any]:
    """`d` of a caption.final event: word times for the client, and where it goes."""
    return {
        "stream": segment.stream_id,
        "speaker_id": segment.speaker_id,
        "segment": segment.id,
        "words": [
            [w["word"], round(float(w["start"]), 2), round(float(w["end"]), 2)]
            for w in segment.words
        ],
        "into": caption_list_id(segment.channel),
        "drop": f"cp-{segment.stream_id}",
    }


# -- muting someone's captioning --


def require_caption_moderator(seat: Seat) -> None:
    if not (seat.is_host or seat.ctx.role is Role.FACILITATOR):
        raise NotAllowed("Only facilitators and hosts can turn someone's captioning off or on.")


async def is_muted(db: AsyncSession, *, session_id: int, user_id: int) -> bool:
    return await db.get(CaptionMute, (session_id, user_id)) is not None


async def set_caption_mute(
    db: AsyncSession, live: Live, *, seat: Seat, user_id: int, muted: bool
) -> str:
    """Turn a person's captioning off (their microphone stream ends at once, and new ones
    are refused) or on again. Returns a line for the person acting."""
    require_caption_moderator(seat)
    if user_id == seat.user_id:
        raise Refused("To stop your own captions, turn your microphone off.")
    person, where = await member_seat(db, seat=seat, user_id=user_id)
    if not seat.may_moderate(where.current):
        raise NotAllowed("You can only turn off captioning for people in rooms you facilitate.")
    if where.is_host and not seat.is_host:
        raise NotAllowed("Only a host can turn off a host's captioning.")
    existing = await db.get(CaptionMute, (seat.session.id, user_id))
    name = person.display_name
    if muted == (existing is not None):
        return f"{name}'s captioning is already {'off' if muted else 'on'}."
    if muted:
        db.add(CaptionMute(session_id=seat.session.id, user_id=user_id, muted_by_id=seat.user_id))
    else:
        await db.delete(existing)
    audit.record(
        db,
        actor=seat.ctx.user,
        action="captions.mute" if muted else "captions.unmute",
        programme_id=seat.ctx.programme.id,
        target=f"user:{user_id}",
        session_id=seat.session.id,
        channel=where.current,
    )
    outbox = live.outbox(db)
    # On the person's own channel: their page shows the notice, and their microphone
    # stream (which follows the same channel) ends when it sees caption.muted.
    await outbox.add(
        channels.personal(user_id),
        "caption.muted" if muted else "caption.unmuted",
        NoticePayload(text=MUTED_NOTICE if muted else UNMUTED_NOTICE),
        actor_id=seat.user_id,
    )
    await outbox.commit()
    return f"{name}'s captioning is {'off' if muted else 'on again'}."


# -- corrections --


def clean_caption(text: str) -> str:
    """A caption is one line: control characters dropped, runs of space made one."""
    kept = "".join(c if c.isprintable() else " " for c in text)
    return re.sub(r"\s+", " ", kept).strip()


async def correct_segment(
    db: AsyncSession, live: Live, *, seat: Seat, segment_id: int, text: str
) -> CaptionSegment:
    """Replace a final caption's text, keeping what was recognized and every earlier
    version; everyone in the room sees the corrected line in place of the old one."""
    segment = await db.get(CaptionSegment, segment_id)
    if segment is None or segment.session_id != seat.session.id:
        raise NotFound("We could not find that caption.")
    if not seat.may_moderate(segment.channel):
        raise NotAllowed("Only this room's facilitators and the hosts can correct its captions.")
    new_text = clean_caption(text)
    if not new_text:
        raise Refused("Type the corrected caption.")
    if len(new_text) > MAX_CORRECTION_CHARS:
        raise Refused(
            f"A caption can be at most {MAX_CORRECTION_CHARS:,} characters; "
            f"this one has {len(new_text):,}."
        )
    if new_text == segment.text:
        return segment
    now = utcnow()
    db.add(
        CaptionEdit(
            segment_id=segment.id,
            editor_id=seat.user_id,
            old_text=segment.text,
            new_text=new_text,
            at=now,
        )
    )
    segment.text = new_text
    segment.edited_at = now
    segment.edited_by_id = seat.user_id
    audit.record(
        db,
        actor=seat.ctx.user,
        action="captions.correct",
        programme_id=seat.ctx.programme.id,
        target=f"caption:{segment.id}",
        session_id=seat.session.id,
        channel=segment.channel,
    )
    outbox = live.outbox(db)
    await outbox.add(
        segment.channel,
        "caption.corrected",
        final_payload(segment, timezone=seat.ctx.programme.timezone),
        actor_id=seat.user_id,
        target=f"cs-{segment.id}",
        data={"segment": segment.id, "into": caption_list_id(segment.channel)},
    )
    await outbox.commit()
    return segment


# -- the room's stored captions --


async def room_finals(
    db: AsyncSession, *, session_id: int, channel: str, limit: int | None = None
) -> list[CaptionSegment]:
    """A room's final captions in a session, oldest first (the latest `limit` of them)."""
    query = select(CaptionSegment).where(
        CaptionSegment.session_id == session_id, CaptionSegment.channel == channel
    )
    if limit is None:
        rows = await db.scalars(query.order_by(CaptionSegment.started_at, CaptionSegment.id))
        return list(rows.all())
    rows = await db.scalars(
        query.order_by(CaptionSegment.started_at.desc(), CaptionSegment.id.desc()).limit(limit)
    )
    return list(reversed(rows.all()))


async def readable_room(db: AsyncSession, *, seat: Seat, channel: str) -> str:
    """The room whose captions the person asks for (their current room when `channel` is
    empty), if they may read it: those who may follow it now, and, after the rooms have
    closed, the group's members and facilitators and the hosts."""
    channel = channel.strip() or seat.current
    match = channels.CHANNEL_PATTERN.match(channel)
    sid = seat.session.id
    if match is None or match.group(1) != str(sid) or not channels.is_room(channel):
        raise NotFound("We could not find that room in this session.")
    group_id = channels.room_group_id(channel)
    if group_id is not None:
        group = await db.get(Group, group_id)
        if group is None or group.programme_id != seat.ctx.programme.id:
            raise NotFound("We could not find that room in this session.")
        own_group = seat.ctx.membership.group_id if seat.ctx.membership else None
        allowed = (
            channel in seat.followable()
            or seat.is_host
            or group_id in seat.facilitated
            or group_id == own_group
        )
        if not allowed:
            raise NotAllowed("You cannot read that room's captions.")
    return channel


# -- display preferences --


@dataclass
class PreferenceError(Exception):
    errors: dict[str, str]


async def get_preferences(db: AsyncSession, *, user_id: int) -> CaptionPreference:
    """The person's saved preferences, or the defaults (not saved)."""
    saved = await db.get(CaptionPreference, user_id)
    if saved is not None:
        return saved
    return CaptionPreference(
        user_id=user_id,
        size_percent=DEFAULT_SIZE_PERCENT,
        lines=DEFAULT_LINES,
        contrast=DEFAULT_CONTRAST,
    )


def _whole(value: str, *, low: int, high: int) -> int | None:
    value = value.strip()
    if not is_digits(value) or not low <= int(value) <= high:
        return None
    return int(value)


async def save_preferences(
    db: AsyncSession, *, user: User, size_percent: str, lines: str, contrast: str
) -> CaptionPreference:
    errors = {}
    size = _whole(size_percent, low=MIN_SIZE_PERCENT, high=MAX_SIZE_PERCENT)
    if size is None:
        errors["size_percent"] = (
            f"Choose a text size from {MIN_SIZE_PERCENT}% to {MAX_SIZE_PERCENT}%."
        )
    line_count = _whole(lines, low=MIN_LINES, high=MAX_LINES)
    if line_count is None:
        errors["lines"] = f"Choose from {MIN_LINES} to {MAX_LINES} lines."
    if contrast not in CONTRASTS:
        errors["contrast"] = "Choose one of the colour schemes."
    if errors or size is None or line_count is None:
        raise PreferenceError(errors)
    preference = await db.get(CaptionPreference, user.id)
    if preference is None:
        preference = CaptionPreference(user_id=user.id)
        db.add(preference)
    preference.size_percent = size
    preference.lines = line_count
    preference.contrast = contrast
    audit.record(
        db,
        actor=user,
        action="captions.preferences",
        target=f"user:{user.id}",
        size_percent=size,
        lines=line_count,
        contrast=contrast,
    )
    await db.commit()
    return preference
