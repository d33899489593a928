"""What the caption panel shows when it is drawn: the room's earlier final captions in this
session (the scrollback) and how the person likes their captions shown."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.captions.actions import (
    CONTRASTS,
    DEFAULT_CONTRAST,
    MAX_LINES,
    MAX_SIZE_PERCENT,
    MIN_LINES,
    MIN_SIZE_PERCENT,
    final_payload,
    get_preferences,
    room_finals,
)
from app.captions.models import CaptionPreference
from app.live.channels import Seat
from app.live.events import CaptionFinalPayload

# Earlier finals drawn with the panel; live.js keeps at most 300 lines in a list.
SCROLLBACK = 200
# What the panel's controls offer, within the limits the server accepts.
SIZES = tuple(range(MIN_SIZE_PERCENT, MAX_SIZE_PERCENT + 1, 25))
LINES = tuple(range(MIN_LINES, MAX_LINES + 1))


@dataclass(frozen=True)
class CaptionLook:
    """A person's caption display, rounded to what the panel's controls offer."""

    size_percent: int
    lines: int
    contrast: str

    @classmethod
    def of(cls, pref: CaptionPreference) -> CaptionLook:
        size = min(SIZES, key=lambda s: abs(s - pref.size_percent))
        lines = min(max(pref.lines, LINES[0]), LINES[-1])
        contrast = pref.contrast if pref.contrast in CONTRASTS else DEFAULT_CONTRAST
        return cls(size_percent=size, lines=lines, contrast=contrast)


async def earlier_captions(
    db: AsyncSession, *, seat: Seat, channel: str
) -> list[CaptionFinalPayload]:
    """The room's latest final captions in this session, oldest first."""
    rows = await room_finals(db, session_id=seat.session.id, channel=channel, limit=SCROLLBACK)
    timezone = seat.ctx.programme.timezone
    return [final_payload(row, timezone=timezone) for row in rows]


async def caption_panel(db: AsyncSession, *, seat: Seat) -> dict[str, Any]:
    """The caption panel's part of a room's template context."""
    return {
        "caption_look": CaptionLook.of(await get_preferences(db, user_id=seat.user_id)),
        "earlier_captions": await earlier_captions(db, seat=seat, channel=seat.current),
        "captions_shown": seat.ctx.user.captions_on,
        "caption_sizes": SIZES,
        "caption_line_counts": LINES,
        "caption_contrasts": CONTRASTS,
    }
