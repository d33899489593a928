"""Decks and their slides, what each room's stage shows now, who presents or interprets in a
session, and the video tiles pinned on a room's stage."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.db import Base, UTCDateTime, utcnow


class StageRoleKind(enum.StrEnum):
    # May step through slides on the stage of the rooms they are in (hosts always may).
    PRESENTER = "presenter"
    # A sign-language interpreter: may be pinned as the interpreter's video tile.
    INTERPRETER = "interpreter"


class TileKind(enum.StrEnum):
    PRESENTER = "presenter"
    INTERPRETER = "interpreter"
    # Someone's own camera in a breakout room (when the programme allows it).
    CAMERA = "camera"


class Deck(Base):
    """A slide deck for a session: the plenary's (group_id empty) or one breakout room's.

    Rows exist only for a deck whose every slide was rendered and stored: an upload that
    fails leaves nothing behind."""

    __tablename__ = "decks"

    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int] = mapped_column(
        ForeignKey("sessions.id", ondelete="CASCADE"), index=True
    )
    # A breakout room's deck (a facilitator's prompt slides), shown only in that room.
    group_id: Mapped[int | None] = mapped_column(ForeignKey("groups.id", ondelete="CASCADE"))
    title: Mapped[str] = mapped_column(String(200))
    # The file as uploaded: its name, sniffed type ("pdf", "pptx", "odp") and storage key.
    original_name: Mapped[str] = mapped_column(String(200))
    original_type: Mapped[str] = mapped_column(String(10))
    original_key: Mapped[str] = mapped_column(String(200))
    original_size: Mapped[int] = mapped_column(Integer, default=0)
    # The deck as PDF (the original's key when it was a PDF).
    pdf_key: Mapped[str] = mapped_column(String(200))
    page_count: Mapped[int] = mapped_column(Integer)
    # Participants may download it (as the original and as PDF) once the presenter allows.
    downloadable: Mapped[bool] = mapped_column(Boolean, default=False)
    uploaded_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    slides: Mapped[list[Slide]] = relationship(
        back_populates="deck", order_by="Slide.number", cascade="all, delete-orphan"
    )


class Slide(Base):
    """One page of a deck: its images at a few widths, its text, and what presenters add."""

    __tablename__ = "slides"

    id: Mapped[int] = mapped_column(primary_key=True)
    deck_id: Mapped[int] = mapped_column(ForeignKey("decks.id", ondelete="CASCADE"), index=True)
    # 1 for the first page.
    number: Mapped[int] = mapped_column(Integer)
    # The page's proportions (the size of its widest image).
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    # {"480": {"key": storage key, "bytes": size, "height": h}, "960": ..., ...}: WebP images.
    images: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # The page's own text (for screen readers and text-only mode), and its first line.
    text: Mapped[str] = mapped_column(Text, default="")
    title: Mapped[str] = mapped_column(String(200), default="")
    # Written by presenters: a description of what the slide shows, and speaker notes.
    alt_text: Mapped[str] = mapped_column(Text, default="")
    notes: Mapped[str] = mapped_column(Text, default="")

    deck: Mapped[Deck] = relationship(back_populates="slides")

    __table_args__ = (UniqueConstraint("deck_id", "number"),)


class StageState(Base):
    """What one room's stage shows now (a row per room that has shown a deck)."""

    __tablename__ = "stage_states"

    # The room's channel (app/live/channels.py).
    channel: Mapped[str] = mapped_column(String(100), primary_key=True)
    session_id: Mapped[int] = mapped_column(
        ForeignKey("sessions.id", ondelete="CASCADE"), index=True
    )
    # Empty: the stage shows no deck.
    deck_id: Mapped[int | None] = mapped_column(ForeignKey("decks.id", ondelete="SET NULL"))
    slide_number: Mapped[int] = mapped_column(Integer, default=1)
    presenter_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class StageRole(Base):
    """A person named for one session as a presenter or as the sign-language interpreter."""

    __tablename__ = "stage_roles"

    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int] = mapped_column(
        ForeignKey("sessions.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    role: Mapped[str] = mapped_column(String(20))
    assigned_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    __table_args__ = (UniqueConstraint("session_id", "user_id", "role"),)


class StageTile(Base):
    """A video tile on a room's stage: whose camera is shown there, and as what."""

    __tablename__ = "stage_tiles"

    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int] = mapped_column(
        ForeignKey("sessions.id", ondelete="CASCADE"), index=True
    )
    channel: Mapped[str] = mapped_column(String(100))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(20))
    pinned_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    __table_args__ = (UniqueConstraint("channel", "user_id"),)
