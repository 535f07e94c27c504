"""Crypto-shredding: the table ``turnlog_keys``, one data key per conversation (issue 15).

``key`` holds the conversation's AES-256-GCM data key (wrapped by the master key when one is
configured); erasing the conversation deletes that row (SQLite ``secure_delete``; PostgreSQL
``VACUUM FULL``) and writes a tombstone with ``key`` NULL and ``erased_at`` set. A conversation
with no row here was written before encryption and stays readable in clear.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "turnlog_keys",
        sa.Column("conversation_id", sa.String(200), primary_key=True),
        sa.Column("key", sa.LargeBinary, nullable=True),
        sa.Column("created_at", sa.String(40), nullable=False),
        sa.Column("erased_at", sa.String(40), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("turnlog_keys")
