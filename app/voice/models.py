"""Tables of the floor: who the host has given the floor to, and which rooms are open mic."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.db import Base, UTCDateTime, utcnow
from app.models import User


class FloorGrant(Base):
    """The host gave someone the floor in one room of a session: they may be heard there
    until it is taken back (`taken_at`). Kept afterwards as the session's history."""

    __tablename__ = "voice_floor_grants"

    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("sessions.id", ondelete="CASCADE"))
    # The room's channel (app/live/channels.py): the plenary, or a breakout room.
    channel: Mapped[str] = mapped_column(String(100))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    granted_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    granted_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    taken_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    taken_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))

    __table_args__ = (
        Index("ix_voice_floor_grants_session_channel", "session_id", "channel", "taken_at"),
        Index("ix_voice_floor_grants_session_user", "session_id", "user_id"),
    )

    user: Mapped[User] = relationship(foreign_keys=[user_id])


class OpenMic(Base):
    """A host's choice for one room of a session: open mic (anyone who may post there may
    be heard) or not (only hosts, facilitators and those given the floor). Without a row,
    the plenary is not open mic and breakout rooms are."""

    __tablename__ = "voice_open_mics"

    session_id: Mapped[int] = mapped_column(
        ForeignKey("sessions.id", ondelete="CASCADE"), primary_key=True
    )
    channel: Mapped[str] = mapped_column(String(100), primary_key=True)
    open: Mapped[bool] = mapped_column(Boolean)
    set_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    set_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
