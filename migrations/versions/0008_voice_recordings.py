"""Voice recordings of rooms, and whether a programme allows recording breakout rooms.

Revision ID: 0008
Revises: 0006 (re-pointed to 0007, the floor's migration, when the voice branches merge)
Create Date: 2027-01-10 12:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("programmes", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "allow_breakout_recording",
                sa.Boolean(),
                server_default=sa.false(),
                nullable=False,
            )
        )
    op.create_table(
        "voice_recordings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("session_id", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=100), nullable=False),
        sa.Column("group_id", sa.Integer(), nullable=True),
        sa.Column("room_name", sa.String(length=150), nullable=False),
        sa.Column("started_by_id", sa.Integer(), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("stopped_by_id", sa.Integer(), nullable=True),
        sa.Column("stopped_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("stop_reason", sa.String(length=40), nullable=False),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
        sa.Column("paper_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["group_id"],
            ["groups.id"],
            name=op.f("fk_voice_recordings_group_id_groups"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["paper_id"],
            ["papers.id"],
            name=op.f("fk_voice_recordings_paper_id_papers"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["sessions.id"],
            name=op.f("fk_voice_recordings_session_id_sessions"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["started_by_id"],
            ["users.id"],
            name=op.f("fk_voice_recordings_started_by_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["stopped_by_id"],
            ["users.id"],
            name=op.f("fk_voice_recordings_stopped_by_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_voice_recordings")),
    )
    with op.batch_alter_table("voice_recordings", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_voice_recordings_session_id"), ["session_id"], unique=False
        )
        batch_op.create_index(
            "uq_voice_recordings_running_channel",
            ["channel"],
            unique=True,
            sqlite_where=sa.text("stopped_at IS NULL"),
            postgresql_where=sa.text("stopped_at IS NULL"),
        )


def downgrade() -> None:
    with op.batch_alter_table("voice_recordings", schema=None) as batch_op:
        batch_op.drop_index("uq_voice_recordings_running_channel")
        batch_op.drop_index(batch_op.f("ix_voice_recordings_session_id"))
    op.drop_table("voice_recordings")
    with op.batch_alter_table("programmes", schema=None) as batch_op:
        batch_op.drop_column("allow_breakout_recording")
