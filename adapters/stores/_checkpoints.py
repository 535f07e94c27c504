"""The checkpoint rows both SQL logs share (table ``turnlog_checkpoints``, migration 0005): the
statements in each driver's placeholder style and the row <-> ``Checkpoint`` conversion."""

from __future__ import annotations

from typing import Any

from turnlog.engine import Checkpoint

_COLS = "origin, size, root, timestamp, key_id, signature, frontier"
# By size, then in the order appended (id); the last: the largest size, the newest of those.
CHECKPOINTS = f"SELECT {_COLS} FROM turnlog_checkpoints ORDER BY size, id"
LAST_CHECKPOINT = f"SELECT {_COLS} FROM turnlog_checkpoints ORDER BY size DESC, id DESC LIMIT 1"
SQLITE_INSERT_CHECKPOINT = f"INSERT INTO turnlog_checkpoints ({_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?)"
PG_INSERT_CHECKPOINT = f"INSERT INTO turnlog_checkpoints ({_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7)"


def checkpoint_row(cp: Checkpoint) -> tuple[Any, ...]:
    return (cp.origin, cp.size, cp.root, cp.timestamp, cp.key_id, cp.signature, " ".join(cp.frontier))


def load_checkpoint(r: Any) -> Checkpoint:
    return Checkpoint(r[0], r[1], r[2], r[3], r[4], r[5], tuple(r[6].split()))
