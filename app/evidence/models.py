"""Tables for evidence items, the programme's codebook of themes, and codings."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.db import Base, UTCDateTime, utcnow
from app.models import Group, ProgrammeSession, User


class EvidenceKind(enum.StrEnum):
    NOTE = "note"
    IMAGE = "image"
    AUDIO = "audio"
    POSTER = "poster"
    DOCUMENT = "document"
    LINK = "link"

    @property
    def label(self) -> str:
        return {
            "note": "Typed note",
            "image": "Photo or image",
            "audio": "Sound",
            "poster": "Poster",
            "document": "Document",
            "link": "Link",
        }[self.value]


class Visibility(enum.StrEnum):
    GROUP = "group"  # the group, its facilitators and the programme's hosts
    ORGANISERS = "organisers"  # only the group's facilitators and the programme's hosts

    @property
    def label(self) -> str:
        if self is Visibility.GROUP:
            return "My group and the organisers"
        return "Only the organisers (facilitators and hosts)"


class TranscriptStatus(enum.StrEnum):
    NONE = "none"  # not audio
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


def _values(kind: type[enum.StrEnum]) -> str:
    return ", ".join(f"'{v.value}'" for v in kind)


class EvidenceItem(Base):
    __tablename__ = "evidence_items"

    id: Mapped[int] = mapped_column(primary_key=True)
    programme_id: Mapped[int] = mapped_column(ForeignKey("programmes.id", ondelete="CASCADE"))
    group_id: Mapped[int] = mapped_column(ForeignKey("groups.id", ondelete="CASCADE"))
    session_id: Mapped[int | None] = mapped_column(ForeignKey("sessions.id", ondelete="SET NULL"))
    uploader_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    kind: Mapped[str] = mapped_column(String(20))
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    from_trio: Mapped[bool] = mapped_column(Boolean, default=False)
    visibility: Mapped[str] = mapped_column(String(20), default=Visibility.GROUP.value)
    # Typed notes: the Markdown as written (rendered and sanitised when shown).
    note_markdown: Mapped[str] = mapped_column(Text, default="")
    link_url: Mapped[str] = mapped_column(String(2000), default="")
    # A file, when the item has one. The name is only what we show and offer on download.
    filename: Mapped[str] = mapped_column(String(200), default="")
    content_type: Mapped[str] = mapped_column(String(100), default="")
    size_bytes: Mapped[int] = mapped_column(Integer, default=0)
    sha256: Mapped[str] = mapped_column(String(64), default="")
    storage_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    thumbnail_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    duration_seconds: Mapped[float | None] = mapped_column(Float)
    # Images: required before the item appears on the board (see `needs_alt_text`).
    alt_text: Mapped[str] = mapped_column(String(1000), default="")
    # Sound: transcribed in the background by the captioning engine.
    transcript: Mapped[str] = mapped_column(Text, default="")
    transcript_status: Mapped[str] = mapped_column(String(20), default=TranscriptStatus.NONE.value)
    transcript_progress: Mapped[float] = mapped_column(Float, default=0.0)
    transcript_error: Mapped[str] = mapped_column(String(500), default="")
    transcript_edited_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    transcript_edited_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Everything searchable in one column: title, description, note and transcript.
    search_text: Mapped[str] = mapped_column(Text, default="")
    hidden_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    hidden_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    hidden_reason: Mapped[str] = mapped_column(String(500), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    __table_args__ = (
        CheckConstraint(f"kind IN ({_values(EvidenceKind)})", name="kind_known"),
        CheckConstraint(f"visibility IN ({_values(Visibility)})", name="visibility_known"),
        CheckConstraint(
            f"transcript_status IN ({_values(TranscriptStatus)})", name="transcript_status_known"
        ),
        Index("ix_evidence_items_group_created", "group_id", "created_at"),
        Index("ix_evidence_items_programme", "programme_id"),
        Index("ix_evidence_items_group_sha256", "group_id", "sha256"),
        Index("ix_evidence_items_transcript_status", "transcript_status"),
    )

    group: Mapped[Group] = relationship()
    session: Mapped[ProgrammeSession | None] = relationship()
    uploader: Mapped[User | None] = relationship(foreign_keys=[uploader_id])

    @property
    def evidence_kind(self) -> EvidenceKind:
        return EvidenceKind(self.kind)

    @property
    def is_hidden(self) -> bool:
        return self.hidden_at is not None

    @property
    def has_file(self) -> bool:
        return self.storage_key is not None

    @property
    def needs_alt_text(self) -> bool:
        return (
            self.kind in (EvidenceKind.IMAGE, EvidenceKind.POSTER)
            and bool(self.thumbnail_key)
            and not self.alt_text.strip()
        )


class Theme(Base):
    """One code of a programme's codebook; nested at most one level deep."""

    __tablename__ = "themes"

    id: Mapped[int] = mapped_column(primary_key=True)
    programme_id: Mapped[int] = mapped_column(
        ForeignKey("programmes.id", ondelete="CASCADE"), index=True
    )
    parent_id: Mapped[int | None] = mapped_column(
        ForeignKey("themes.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(80))
    description: Mapped[str] = mapped_column(String(1000), default="")
    colour: Mapped[str] = mapped_column(String(7), default="#1d70b8")
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    parent: Mapped[Theme | None] = relationship(remote_side=[id])


class Coding(Base):
    """A theme applied to a whole item, or to an excerpt of its text or transcript."""

    __tablename__ = "codings"

    id: Mapped[int] = mapped_column(primary_key=True)
    item_id: Mapped[int] = mapped_column(
        ForeignKey("evidence_items.id", ondelete="CASCADE"), index=True
    )
    theme_id: Mapped[int] = mapped_column(ForeignKey("themes.id", ondelete="CASCADE"), index=True)
    coder_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    # None for the whole item; otherwise which text the excerpt was taken from.
    source: Mapped[str | None] = mapped_column(String(20))
    start_offset: Mapped[int | None] = mapped_column(Integer)
    end_offset: Mapped[int | None] = mapped_column(Integer)
    # The excerpt as it read when coded (the source may be edited later).
    excerpt: Mapped[str] = mapped_column(Text, default="")
    memo: Mapped[str] = mapped_column(String(2000), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    __table_args__ = (
        CheckConstraint(
            "source IS NULL OR source IN ('title', 'description', 'note', 'transcript', "
            "'alt_text')",
            name="source_known",
        ),
        CheckConstraint(
            "(source IS NULL AND start_offset IS NULL AND end_offset IS NULL) OR "
            "(source IS NOT NULL AND start_offset >= 0 AND end_offset > start_offset)",
            name="offsets_valid",
        ),
    )

    item: Mapped[EvidenceItem] = relationship()
    theme: Mapped[Theme] = relationship()
    coder: Mapped[User | None] = relationship()
