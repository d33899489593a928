"""Voice: the floor the host gives and takes back, and which rooms are open mic.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07 14:15:36
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "voice_floor_grants",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("session_id", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=100), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("granted_by_id", sa.Integer(), nullable=True),
        sa.Column("granted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("taken_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("taken_by_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["granted_by_id"],
            ["users.id"],
            name=op.f("fk_voice_floor_grants_granted_by_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["sessions.id"],
            name=op.f("fk_voice_floor_grants_session_id_sessions"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["taken_by_id"],
            ["users.id"],
            name=op.f("fk_voice_floor_grants_taken_by_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_voice_floor_grants_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_voice_floor_grants")),
    )
    with op.batch_alter_table("voice_floor_grants", schema=None) as batch_op:
        batch_op.create_index(
            "ix_voice_floor_grants_session_channel",
            ["session_id", "channel", "taken_at"],
            unique=False,
        )
        batch_op.create_index(
            "ix_voice_floor_grants_session_user", ["session_id", "user_id"], unique=False
        )

    op.create_table(
        "voice_open_mics",
        sa.Column("session_id", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=100), nullable=False),
        sa.Column("open", sa.Boolean(), nullable=False),
        sa.Column("set_by_id", sa.Integer(), nullable=True),
        sa.Column("set_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["sessions.id"],
            name=op.f("fk_voice_open_mics_session_id_sessions"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["set_by_id"],
            ["users.id"],
            name=op.f("fk_voice_open_mics_set_by_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("session_id", "channel", name=op.f("pk_voice_open_mics")),
    )


def downgrade() -> None:
    op.drop_table("voice_open_mics")
    with op.batch_alter_table("voice_floor_grants", schema=None) as batch_op:
        batch_op.drop_index("ix_voice_floor_grants_session_user")
        batch_op.drop_index("ix_voice_floor_grants_session_channel")

    op.drop_table("voice_floor_grants")
