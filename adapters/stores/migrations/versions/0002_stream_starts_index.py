"""A partial index on the first event of each stream, so ``streams()`` does not scan the log.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_turnlog_events_stream_starts",
        "turnlog_events",
        ["position"],
        sqlite_where=sa.text("version = 1"),
        postgresql_where=sa.text("version = 1"),
    )


def downgrade() -> None:
    op.drop_index("ix_turnlog_events_stream_starts", table_name="turnlog_events")
