"""The conversations projection: the table ``turnlog_conversations`` (one summary per
conversation, listed newest first by last activity) and its two list indexes; the message rows'
index becomes ``(conversation_id, seq)``, so a page of rows is read in order without a sort.

The summaries are a projection of the log, so this migration does not compute them: a server
that starts over an empty index and a non-empty log fills it from the log first (or run
``turnlog rebuild``).

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "turnlog_conversations",
        sa.Column("id", sa.String(200), primary_key=True),
        sa.Column("tenant", sa.String(200), nullable=False),
        sa.Column("subject", sa.String(200), nullable=False),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("created_at", sa.String(40), nullable=False),
        sa.Column("updated_at", sa.String(40), nullable=False),
        sa.Column("turns", sa.Integer, nullable=False),
        sa.Column("last_status", sa.String(20), nullable=True),
        sa.Column("prompt_tokens", sa.BigInteger, nullable=False),
        sa.Column("completion_tokens", sa.BigInteger, nullable=False),
        sa.Column("total_tokens", sa.BigInteger, nullable=False),
        sa.Column("parent", sa.String(200), nullable=True),
        sa.Column("version", sa.Integer, nullable=False),
    )
    op.create_index(
        "ix_turnlog_conversations_subject", "turnlog_conversations", ["tenant", "subject", "updated_at", "id"]
    )
    op.create_index("ix_turnlog_conversations_tenant", "turnlog_conversations", ["tenant", "updated_at", "id"])
    op.create_index("ix_turnlog_messages_conversation_seq", "turnlog_messages", ["conversation_id", "seq"])
    op.drop_index("ix_turnlog_messages_conversation_id", table_name="turnlog_messages")


def downgrade() -> None:
    op.create_index("ix_turnlog_messages_conversation_id", "turnlog_messages", ["conversation_id"])
    op.drop_index("ix_turnlog_messages_conversation_seq", table_name="turnlog_messages")
    op.drop_index("ix_turnlog_conversations_tenant", table_name="turnlog_conversations")
    op.drop_index("ix_turnlog_conversations_subject", table_name="turnlog_conversations")
    op.drop_table("turnlog_conversations")
