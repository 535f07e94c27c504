"""The first schema: event log, message rows, projection state.

This is exactly the layout the interim ``create_all`` built before migrations existed, so
``turnlog db upgrade`` stamps such an unversioned database at this revision and goes on from it.

Revision ID: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "turnlog_events",
        sa.Column(
            "position", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=False
        ),
        sa.Column("stream_id", sa.String(200), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("turn_id", sa.String(200), nullable=False),
        sa.Column("recorded_at", sa.String(40), nullable=False),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("schema", sa.Integer, nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("payload", sa.LargeBinary, nullable=False),
        sa.UniqueConstraint("stream_id", "version", name="uq_turnlog_events_stream_version"),
    )
    op.create_table(
        "turnlog_messages",
        sa.Column("id", sa.String(200), primary_key=True),
        sa.Column("conversation_id", sa.String(200), nullable=False),
        sa.Column("turn_id", sa.String(200), nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("content", sa.Text, nullable=False),
        sa.Column("token_count", sa.Integer, nullable=True),
        sa.Column("usage", sa.Text, nullable=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("created_at", sa.String(40), nullable=False),
    )
    op.create_index("ix_turnlog_messages_conversation_id", "turnlog_messages", ["conversation_id"])
    op.create_table(
        "turnlog_projection_state",
        sa.Column("conversation_id", sa.String(200), primary_key=True),
        sa.Column("version", sa.Integer, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("turnlog_projection_state")
    op.drop_index("ix_turnlog_messages_conversation_id", table_name="turnlog_messages")
    op.drop_table("turnlog_messages")
    op.drop_table("turnlog_events")
