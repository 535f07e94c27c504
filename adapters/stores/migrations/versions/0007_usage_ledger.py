"""The usage ledger: the table ``turnlog_usage`` (one row per model call: the tokens its
``UsageRecorded`` event reports, who asked, the model, the day) and its two report indexes.

The ledger is a projection of the log, so this migration does not compute it: run ``turnlog
rebuild`` (or ``turnlog usage --rebuild``) to fill it for a log written before it existed.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "turnlog_usage",
        sa.Column("conversation_id", sa.String(200), primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("turn_id", sa.String(200), nullable=False),
        sa.Column("iteration", sa.Integer, nullable=False),
        sa.Column("tenant", sa.String(200), nullable=False),
        sa.Column("subject", sa.String(200), nullable=False),
        sa.Column("provider", sa.String(200), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("day", sa.String(10), nullable=False),
        sa.Column("recorded_at", sa.String(40), nullable=False),
        sa.Column("prompt_tokens", sa.BigInteger, nullable=False),
        sa.Column("completion_tokens", sa.BigInteger, nullable=False),
        sa.Column("total_tokens", sa.BigInteger, nullable=False),
        sa.Column("cached_tokens", sa.BigInteger, nullable=False),
        sa.Column("reasoning_tokens", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_turnlog_usage_tenant_time", "turnlog_usage", ["tenant", "recorded_at"])
    op.create_index("ix_turnlog_usage_time", "turnlog_usage", ["recorded_at"])


def downgrade() -> None:
    op.drop_index("ix_turnlog_usage_time", table_name="turnlog_usage")
    op.drop_index("ix_turnlog_usage_tenant_time", table_name="turnlog_usage")
    op.drop_table("turnlog_usage")
