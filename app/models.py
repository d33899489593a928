"""The database tables: people, programmes, sessions, groups, invitations, audit."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.db import Base, UTCDateTime, utcnow


class Role(enum.StrEnum):
    HOST = "host"
    FACILITATOR = "facilitator"
    PARTICIPANT = "participant"
    IT_SUPPORT = "it_support"
    OBSERVER = "observer"

    @property
    def label(self) -> str:
        return {"it_support": "IT support"}.get(self.value, self.value.capitalize())


ROLE_VALUES = ", ".join(f"'{r.value}'" for r in Role)


class MembershipStatus(enum.StrEnum):
    # A member of the programme, with the access their role gives.
    ACTIVE = "active"
    # Added by a roster import to an account that already exists elsewhere: no access until
    # the person accepts, signed in as themselves.
    INVITED = "invited"


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str | None] = mapped_column(String(254), unique=True)
    display_name: Mapped[str] = mapped_column(String(100))
    pronouns: Mapped[str] = mapped_column(String(40), default="")
    name_pronunciation: Mapped[str] = mapped_column(String(100), default="")
    password_hash: Mapped[str | None] = mapped_column(String(200))
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    # Bumped by "sign out everywhere": every cookie issued before is refused.
    auth_epoch: Mapped[int] = mapped_column(Integer, default=0)
    captions_on: Mapped[bool] = mapped_column(Boolean, default=False)
    large_text: Mapped[bool] = mapped_column(Boolean, default=False)
    high_contrast: Mapped[bool] = mapped_column(Boolean, default=False)
    reduced_motion: Mapped[bool] = mapped_column(Boolean, default=False)
    low_bandwidth: Mapped[bool] = mapped_column(Boolean, default=False)
    screen_reader: Mapped[bool] = mapped_column(Boolean, default=False)
    # Free text the person chooses to share with their facilitator.
    access_notes: Mapped[str] = mapped_column(String(500), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    memberships: Mapped[list[Membership]] = relationship(back_populates="user")

    @property
    def name_with_pronouns(self) -> str:
        return f"{self.display_name} ({self.pronouns})" if self.pronouns else self.display_name


class Programme(Base):
    __tablename__ = "programmes"

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    timezone: Mapped[str] = mapped_column(String(64), default="Europe/London")
    group_capacity: Mapped[int] = mapped_column(Integer, default=8)
    # Hosts may record breakout rooms too (their members are told first); off by default.
    allow_breakout_recording: Mapped[bool] = mapped_column(Boolean, default=False)
    # People may turn their camera on in breakout rooms; off by default.
    allow_breakout_cameras: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    __table_args__ = (CheckConstraint("group_capacity BETWEEN 2 AND 50", name="capacity_range"),)

    sessions: Mapped[list[ProgrammeSession]] = relationship(
        back_populates="programme", order_by="ProgrammeSession.starts_at"
    )
    groups: Mapped[list[Group]] = relationship(
        back_populates="programme", order_by="Group.position"
    )
    memberships: Mapped[list[Membership]] = relationship(back_populates="programme")


class Group(Base):
    __tablename__ = "groups"

    id: Mapped[int] = mapped_column(primary_key=True)
    programme_id: Mapped[int] = mapped_column(
        ForeignKey("programmes.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(100))
    position: Mapped[int] = mapped_column(Integer, default=0)
    # None means the programme's capacity.
    capacity: Mapped[int | None] = mapped_column(Integer)

    __table_args__ = (UniqueConstraint("programme_id", "name"),)

    programme: Mapped[Programme] = relationship(back_populates="groups")
    facilitators: Mapped[list[GroupFacilitator]] = relationship(
        back_populates="group", cascade="all, delete-orphan"
    )
    members: Mapped[list[Membership]] = relationship(back_populates="group")

    def effective_capacity(self, programme: Programme) -> int:
        return self.capacity or programme.group_capacity


class Membership(Base):
    """A person's role in one programme and, for participants, their group."""

    __tablename__ = "memberships"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    programme_id: Mapped[int] = mapped_column(
        ForeignKey("programmes.id", ondelete="CASCADE"), index=True
    )
    role: Mapped[str] = mapped_column(String(20), default=Role.PARTICIPANT.value)
    group_id: Mapped[int | None] = mapped_column(
        ForeignKey("groups.id", ondelete="SET NULL"), index=True
    )
    status: Mapped[str] = mapped_column(
        String(20), default=MembershipStatus.ACTIVE.value, server_default="active"
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    __table_args__ = (
        UniqueConstraint("user_id", "programme_id"),
        CheckConstraint(f"role IN ({ROLE_VALUES})", name="role_known"),
        CheckConstraint("status IN ('active', 'invited')", name="status_known"),
    )

    @property
    def is_active(self) -> bool:
        return self.status == MembershipStatus.ACTIVE.value

    user: Mapped[User] = relationship(back_populates="memberships")
    programme: Mapped[Programme] = relationship(back_populates="memberships")
    group: Mapped[Group | None] = relationship(back_populates="members")


class GroupFacilitator(Base):
    __tablename__ = "group_facilitators"

    group_id: Mapped[int] = mapped_column(
        ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )

    group: Mapped[Group] = relationship(back_populates="facilitators")
    user: Mapped[User] = relationship()


class ProgrammeSession(Base):
    """One dated webinar of a programme."""

    __tablename__ = "sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    programme_id: Mapped[int] = mapped_column(
        ForeignKey("programmes.id", ondelete="CASCADE"), index=True
    )
    title: Mapped[str] = mapped_column(String(200))
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime())
    agenda: Mapped[str] = mapped_column(Text, default="")
    recording_url: Mapped[str] = mapped_column(String(500), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    __table_args__ = (CheckConstraint("ends_at > starts_at", name="ends_after_start"),)

    programme: Mapped[Programme] = relationship(back_populates="sessions")
    papers: Mapped[list[Paper]] = relationship(
        back_populates="session", cascade="all, delete-orphan", order_by="Paper.id"
    )


class Paper(Base):
    """A file attached to a session: pre-reading before it, a recording after it."""

    __tablename__ = "papers"

    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int] = mapped_column(
        ForeignKey("sessions.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(20), default="pre_reading")
    title: Mapped[str] = mapped_column(String(200))
    filename: Mapped[str] = mapped_column(String(200))
    content_type: Mapped[str] = mapped_column(String(100))
    size_bytes: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    storage_key: Mapped[str] = mapped_column(String(200), unique=True)
    uploaded_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    __table_args__ = (CheckConstraint("kind IN ('pre_reading', 'recording')", name="kind_known"),)

    session: Mapped[ProgrammeSession] = relationship(back_populates="papers")


class Invitation(Base):
    """A personal, expiring sign-in link for one person in one programme."""

    __tablename__ = "invitations"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    programme_id: Mapped[int] = mapped_column(
        ForeignKey("programmes.id", ondelete="CASCADE"), index=True
    )
    # The link carries a random nonce, signed; only its hash is stored.
    nonce_hash: Mapped[str] = mapped_column(String(64), unique=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Links work once: the first sign-in with it marks it used.
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    user: Mapped[User] = relationship(foreign_keys=[user_id])


class EndedSession(Base):
    """A signed-in browser session that was ended (signed out) before its cookie expires.

    Session cookies are signed and carry a random id; the id of an ended session is kept here,
    hashed, until the cookie would have expired anyway, and every cookie is checked against
    it, so a copied cookie stops working the moment its owner signs out."""

    __tablename__ = "ended_sessions"

    sid_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    ended_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # After this the cookie is expired in any case and the row can go.
    forget_after: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


class AuditEntry(Base):
    __tablename__ = "audit_entries"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    programme_id: Mapped[int | None] = mapped_column(
        ForeignKey("programmes.id", ondelete="CASCADE"), index=True
    )
    action: Mapped[str] = mapped_column(String(60))
    target: Mapped[str] = mapped_column(String(100), default="")
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
