"""The SQL schema every SQL store shares: the event log and its projections (the message rows,
the conversation summaries).

These table objects are what the stores and the row projection query. The database itself is
created and upgraded only by the Alembic migrations in engine/migrations (run by engine/migrate.py
and ``turnlog db upgrade``); a migration is a frozen copy of a change, so when a table changes
here, add a migration that makes the same change and bump ``migrate.HEAD_REVISION``
(tests/contract/test_migrations.py compares the migrated database with these objects).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

# position: the global order. version: 1..n, gapless per stream (the unique constraint is what
# makes optimistic concurrency hold across processes: two writers cannot both write version n).
events = Table(
    "turnlog_events",
    metadata,
    Column("position", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False),
    Column("stream_id", String(200), nullable=False),
    Column("version", Integer, nullable=False),
    Column("turn_id", String(200), nullable=False),
    Column("recorded_at", String(40), nullable=False),
    Column("type", String(64), nullable=False),
    Column("schema", Integer, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    Column("payload", LargeBinary, nullable=False),
    UniqueConstraint("stream_id", "version", name="uq_turnlog_events_stream_version"),
)

# streams() lists the first event of every stream: without this partial index that is a scan of
# the whole log (recover and rebuild call it); with it, a scan of one entry per conversation.
Index(
    "ix_turnlog_events_stream_starts",
    events.c.position,
    sqlite_where=events.c.version == 1,
    postgresql_where=events.c.version == 1,
)

# The messages projection: one user row and one assistant row per turn, rebuildable from the log.
messages = Table(
    "turnlog_messages",
    metadata,
    Column("id", String(200), primary_key=True),
    Column("conversation_id", String(200), nullable=False),
    Column("turn_id", String(200), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("role", String(20), nullable=False),
    Column("content", Text, nullable=False),
    Column("token_count", Integer, nullable=True),
    Column("usage", Text, nullable=True),
    Column("status", String(20), nullable=False),
    Column("created_at", String(40), nullable=False),
)

# A conversation's rows in seq order, and a page of them (rows_page), without a sort: the index
# of conversation_id alone (migration 0001) had every read sort the conversation's rows.
Index("ix_turnlog_messages_conversation_seq", messages.c.conversation_id, messages.c.seq)

# How far the messages projection has applied each conversation's stream.
projection_state = Table(
    "turnlog_projection_state",
    metadata,
    Column("conversation_id", String(200), primary_key=True),
    Column("version", Integer, nullable=False),
)

# Signed checkpoints of the log-wide Merkle tree (engine/_checkpoint.py): one row per checkpoint,
# never changed. ``frontier`` (the tree's right edge at ``size``, hex hashes separated by spaces)
# is not signed: it spares the next checkpoint a read of the whole log. No key is ever stored.
checkpoints = Table(
    "turnlog_checkpoints",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("size", BigInteger, nullable=False),
    Column("origin", String(200), nullable=False),
    Column("root", String(64), nullable=False),
    Column("timestamp", String(40), nullable=False),
    Column("key_id", String(64), nullable=False),
    Column("signature", String(200), nullable=False),
    Column("frontier", Text, nullable=False),
)

# last_checkpoint (every `turnlog checkpoint`, every export) reads the largest size.
Index("ix_turnlog_checkpoints_size", checkpoints.c.size)

# The conversations projection (projections/_conversations.py): one summary per conversation,
# rebuildable from the log, written with the rows (the same transaction). ``version``: the log
# version the summary reflects (a save never goes back to an older one).
conversations = Table(
    "turnlog_conversations",
    metadata,
    Column("id", String(200), primary_key=True),
    Column("tenant", String(200), nullable=False),
    Column("subject", String(200), nullable=False),
    Column("title", Text, nullable=False),
    Column("created_at", String(40), nullable=False),
    Column("updated_at", String(40), nullable=False),
    Column("turns", Integer, nullable=False),
    Column("last_status", String(20), nullable=True),
    Column("prompt_tokens", BigInteger, nullable=False),
    Column("completion_tokens", BigInteger, nullable=False),
    Column("total_tokens", BigInteger, nullable=False),
    Column("parent", String(200), nullable=True),
    Column("version", Integer, nullable=False),
)

# The lists, newest first by last activity, in keyset pages: a subject's conversations within a
# tenant, and (auditors, the CLI) the whole tenant's. Each page is one range of one index.
Index(
    "ix_turnlog_conversations_subject",
    conversations.c.tenant,
    conversations.c.subject,
    conversations.c.updated_at,
    conversations.c.id,
)
Index("ix_turnlog_conversations_tenant", conversations.c.tenant, conversations.c.updated_at, conversations.c.id)

# The usage ledger (projections/_usage.py): one row per model call (a ``UsageRecorded`` event,
# identified by its conversation and version), rebuildable from the log. Reports sum a tenant's
# (or every tenant's) rows in a time range: one range of one index.
usage = Table(
    "turnlog_usage",
    metadata,
    Column("conversation_id", String(200), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("turn_id", String(200), nullable=False),
    Column("iteration", Integer, nullable=False),
    Column("tenant", String(200), nullable=False),
    Column("subject", String(200), nullable=False),
    Column("provider", String(200), nullable=False),
    Column("model", String(200), nullable=False),
    Column("day", String(10), nullable=False),
    Column("recorded_at", String(40), nullable=False),
    Column("prompt_tokens", BigInteger, nullable=False),
    Column("completion_tokens", BigInteger, nullable=False),
    Column("total_tokens", BigInteger, nullable=False),
    Column("cached_tokens", BigInteger, nullable=False),
    Column("reasoning_tokens", BigInteger, nullable=False),
)
Index("ix_turnlog_usage_tenant_time", usage.c.tenant, usage.c.recorded_at)
Index("ix_turnlog_usage_time", usage.c.recorded_at)

# Crypto-shredding (adapters/crypto, issue 15): one data key per conversation. ``key``: the
# AES-256-GCM data key (wrapped by the master key when one is configured); NULL once erased,
# with ``erased_at`` set (the tombstone: the conversation is erased, not unencrypted). No row: a
# conversation written before encryption, readable in clear.
keys = Table(
    "turnlog_keys",
    metadata,
    Column("conversation_id", String(200), primary_key=True),
    Column("key", LargeBinary, nullable=True),
    Column("created_at", String(40), nullable=False),
    Column("erased_at", String(40), nullable=True),
)
