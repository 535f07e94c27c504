"""Signed checkpoints of the log-wide Merkle tree: the table ``turnlog_checkpoints``.

One row per checkpoint (origin, size, root, timestamp, key id, signature and the tree's
frontier at that size, which is not signed). The private key is never stored.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "turnlog_checkpoints",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("origin", sa.String(200), nullable=False),
        sa.Column("root", sa.String(64), nullable=False),
        sa.Column("timestamp", sa.String(40), nullable=False),
        sa.Column("key_id", sa.String(64), nullable=False),
        sa.Column("signature", sa.String(200), nullable=False),
        sa.Column("frontier", sa.Text, nullable=False),
    )
    op.create_index("ix_turnlog_checkpoints_size", "turnlog_checkpoints", ["size"])


def downgrade() -> None:
    op.drop_index("ix_turnlog_checkpoints_size", table_name="turnlog_checkpoints")
    op.drop_table("turnlog_checkpoints")
