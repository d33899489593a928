"""A room's recording: who started and stopped it, when, and the stored file it became."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.db import Base, UTCDateTime, utcnow
from app.models import Paper


class VoiceRecording(Base):
    """One recording of one room (the plenary or a breakout room) in a session.

    Running while `stopped_at` is empty (at most one per room); once stopped, its audio is
    a recording paper of the session (`paper_id`), and its captions are the room's caption
    segments between `started_at` and `stopped_at`."""

    __tablename__ = "voice_recordings"

    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int] = mapped_column(
        ForeignKey("sessions.id", ondelete="CASCADE"), index=True
    )
    # The room's channel, as in app/live/channels.py.
    channel: Mapped[str] = mapped_column(String(100))
    group_id: Mapped[int | None] = mapped_column(ForeignKey("groups.id", ondelete="SET NULL"))
    # The room's name when it was recorded ("Plenary", "Group A").
    room_name: Mapped[str] = mapped_column(String(150))
    started_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    stopped_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    stopped_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Why it stopped: "host", "breakout closed", "server shutdown", "time limit"...
    stop_reason: Mapped[str] = mapped_column(String(40), default="")
    duration_ms: Mapped[int] = mapped_column(Integer, default=0)
    paper_id: Mapped[int | None] = mapped_column(ForeignKey("papers.id", ondelete="SET NULL"))

    __table_args__ = (
        # One running recording per room.
        Index(
            "uq_voice_recordings_running_channel",
            "channel",
            unique=True,
            sqlite_where=text("stopped_at IS NULL"),
            postgresql_where=text("stopped_at IS NULL"),
        ),
    )

    paper: Mapped[Paper | None] = relationship()
