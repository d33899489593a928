"""Stored captions: final caption segments per room per session, their corrections, and
facilitators' mutes of someone's captioning."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.db import Base, UTCDateTime, utcnow
from app.models import User


class CaptionSegment(Base):
    """One final caption: what one speaker said in one room, with word times."""

    __tablename__ = "caption_segments"

    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("sessions.id", ondelete="CASCADE"))
    # The room's channel (plenary or a group's room), as in app/live/channels.py.
    channel: Mapped[str] = mapped_column(String(100))
    group_id: Mapped[int | None] = mapped_column(ForeignKey("groups.id", ondelete="SET NULL"))
    speaker_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    # The speaker's name when it was said (people may change their display name later).
    speaker_name: Mapped[str] = mapped_column(String(150))
    # Which microphone stream it came from, and where in that stream (seconds).
    stream_id: Mapped[str] = mapped_column(String(40))
    stream_start: Mapped[float] = mapped_column(Float)
    stream_end: Mapped[float] = mapped_column(Float)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ended_at: Mapped[datetime] = mapped_column(UTCDateTime())
    text: Mapped[str] = mapped_column(Text)
    # As recognized, before any correction.
    original_text: Mapped[str] = mapped_column(Text)
    # [{"word": ..., "start": s, "end": s, "conf": c}] with times in the stream.
    words: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    confidence: Mapped[float] = mapped_column(Float, default=0.0)
    edited_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    edited_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    __table_args__ = (
        Index("ix_caption_segments_session_channel_start", "session_id", "channel", "started_at"),
    )

    edits: Mapped[list[CaptionEdit]] = relationship(
        back_populates="segment", cascade="all, delete-orphan", order_by="CaptionEdit.id"
    )


class CaptionEdit(Base):
    """One correction of a caption segment, kept as history."""

    __tablename__ = "caption_edits"

    id: Mapped[int] = mapped_column(primary_key=True)
    segment_id: Mapped[int] = mapped_column(
        ForeignKey("caption_segments.id", ondelete="CASCADE"), index=True
    )
    editor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    old_text: Mapped[str] = mapped_column(Text)
    new_text: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    segment: Mapped[CaptionSegment] = relationship(back_populates="edits")
    editor: Mapped[User | None] = relationship()


class CaptionMute(Base):
    """A facilitator has turned off someone's captioning in a session (until lifted)."""

    __tablename__ = "caption_mutes"

    session_id: Mapped[int] = mapped_column(
        ForeignKey("sessions.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    muted_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class CaptionPreference(Base):
    """How a person likes their captions shown, remembered across devices."""

    __tablename__ = "caption_preferences"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    # Text size in per cent of normal (100..300), lines shown (1..10), contrast theme.
    size_percent: Mapped[int] = mapped_column(Integer, default=150)
    lines: Mapped[int] = mapped_column(Integer, default=3)
    contrast: Mapped[str] = mapped_column(String(20), default="light-on-dark")
