"""PostgreSQL: the append as one server-side function, so the log's lock is held for the insert
and the commit only, not for round trips to the client.

Every append takes the log's advisory lock (appends commit in position order: the sequence-gap
fix). Done from the client, the lock was held across three round trips (head, insert, commit)
and concurrent writers queued behind the slowest event loop; in this function it is held for
the server-side work. A VOLATILE plpgsql function takes a new snapshot for every statement, so
the head and max(position) read after the lock see every append committed before it.
Returns the first position, or -(actual version) - 1 when the stream's head is not the one the
caller sealed against (nothing written: ConcurrencyError). SQLite: nothing to do.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

FUNCTION = """
CREATE OR REPLACE FUNCTION turnlog_append(
    p_lock bigint, p_channel text, p_stream text, p_expected integer, p_head_hash text, p_recorded_at text,
    p_versions integer[], p_turns text[], p_types text[], p_schemas integer[], p_prev text[], p_hashes text[],
    p_payloads bytea[]
) RETURNS bigint LANGUAGE plpgsql VOLATILE AS $fn$
DECLARE
    head_version integer;
    head_hash text;
    first_position bigint;
BEGIN
    PERFORM pg_advisory_xact_lock(p_lock);
    SELECT version, hash INTO head_version, head_hash
        FROM turnlog_events WHERE stream_id = p_stream ORDER BY version DESC LIMIT 1;
    IF coalesce(head_version, 0) <> p_expected OR coalesce(head_hash, repeat('0', 64)) <> p_head_hash THEN
        RETURN -coalesce(head_version, 0) - 1;
    END IF;
    SELECT coalesce(max(position), 0) + 1 INTO first_position FROM turnlog_events;
    INSERT INTO turnlog_events
        (stream_id, version, position, turn_id, recorded_at, type, schema, prev_hash, hash, payload)
        SELECT p_stream, u.v, first_position + u.n - 1, u.t, p_recorded_at, u.ty, u.sc, u.ph, u.h, u.pl
        FROM unnest(p_versions, p_turns, p_types, p_schemas, p_prev, p_hashes, p_payloads)
            WITH ORDINALITY AS u(v, t, ty, sc, ph, h, pl, n);
    PERFORM pg_notify(p_channel, p_stream);
    RETURN first_position;
END
$fn$
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(FUNCTION)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "DROP FUNCTION turnlog_append(bigint, text, text, integer, text, text, integer[], text[], text[], "
            "integer[], text[], text[], bytea[])"
        )
