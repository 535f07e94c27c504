"""The embedded default event log: SQLite through SQLAlchemy 2 async and aiosqlite.

Why it is built this way:
- WAL journal, so readers never block the writer and a killed process leaves a valid prefix.
- ``synchronous=FULL`` by default: every commit syncs the WAL, so what a client was shown (durable
  before visible) survives a power loss too, not only a killed process (``open``).
- Writes run in ``BEGIN IMMEDIATE`` transactions. A deferred transaction that reads and then
  upgrades to a write fails at once with "database is locked" when another connection writes;
  an immediate one takes the write lock up front and waits up to ``busy_timeout`` for it.
- One writer connection per process (pool of 1): writers in this process queue on the pool
  instead of spinning on SQLite's busy handler; other processes are serialised by the file lock.
- Positions are assigned inside the write lock as ``max(position) + 1``: commits are serial, so
  position order is commit order and a reader following positions never skips an event.
- The hot path uses plain driver SQL, up to 128 rows per INSERT (``_insert``): a few round trips
  per group commit, and one transaction (one WAL sync) for the appends of every conversation that
  meet (``_batcher``).
"""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncEngine
from turnlog.engine import (
    GENESIS_HASH,
    PAGE,
    Checkpoint,
    ConcurrencyError,
    EventLog,
    NewEvent,
    Recorded,
    StoreUnavailable,
    load,
    load_rows,
    seal,
)

from ._batcher import AppendBatcher, Pending
from ._checkpoints import CHECKPOINTS, LAST_CHECKPOINT, SQLITE_INSERT_CHECKPOINT, checkpoint_row, load_checkpoint
from ._engines import driver, make_engines
from ._migrate import ensure_schema

_COLS = "stream_id, version, position, turn_id, recorded_at, type, schema, prev_hash, hash, payload"
_INSERT = (
    "INSERT INTO turnlog_events (stream_id, version, position, turn_id, recorded_at, type, schema, prev_hash, "
    "hash, payload) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
#: The INSERT statements of the hot path, the most rows first: ``_insert`` takes as many of each
#: as fit. A few fixed shapes, so SQLite compiles each once (the driver's statement cache).
_INSERTS = tuple((n, _INSERT + ", (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)" * (n - 1)) for n in (128, 8, 1))
# One query for a group: the global max position, and each stream's head (a JSON list of stream
# ids, in order; each head O(log n) on the (stream_id, version) index).
_HEADS = (
    "SELECT (SELECT max(position) FROM turnlog_events), h.version, h.hash FROM json_each(?) AS j "
    "LEFT JOIN turnlog_events AS h ON h.stream_id = j.value "
    "AND h.version = (SELECT max(version) FROM turnlog_events WHERE stream_id = j.value) ORDER BY j.key"
)
# A stream's read leaves out the stream id: it is the query's parameter (``load_rows(rows,
# stream_id)``), and selecting it again cost ~0.1 µs a row, a tenth of the row (bench/replay_check.py).
_STREAM_COLS = _COLS.removeprefix("stream_id, ")
_READ = f"SELECT {_STREAM_COLS} FROM turnlog_events WHERE stream_id = ? AND version > ? ORDER BY version LIMIT ?"
_READ_ALL = f"SELECT {_COLS} FROM turnlog_events WHERE position > ? ORDER BY position LIMIT ?"
_LAST = f"SELECT {_COLS} FROM turnlog_events WHERE stream_id = ? ORDER BY version DESC LIMIT 1"
_STREAMS = "SELECT stream_id FROM turnlog_events WHERE version = 1 ORDER BY position"


def _row(r: Recorded) -> tuple[Any, ...]:
    return (
        r.stream_id,
        r.version,
        r.position,
        r.turn_id,
        r.recorded_at,
        r.type,
        r.schema,
        r.prev_hash,
        r.hash,
        r.payload,
    )


async def _insert(db: Any, rows: list[tuple[Any, ...]]) -> None:
    """Insert rows, many per statement (``_INSERTS``), in at most three thread hops: a quarter less
    CPU per row than one row per statement (bench/sqlite_insert.py: 2.9 -> 2.2 µs). The sqlite3
    module lets go of the GIL around each statement it steps, so the writer thread also takes the
    GIL back from the busy event loop once per 128 rows instead of after every row."""
    at = 0
    for n, sql in _INSERTS:
        count = (len(rows) - at) // n
        if not count:
            continue
        if n == 1:
            await db.executemany(sql, rows[at:])
            return
        flat = list(itertools.chain.from_iterable(rows[at : at + count * n]))
        width = 10 * n
        await db.executemany(sql, [flat[i : i + width] for i in range(0, len(flat), width)])
        at += count * n


def _load_row(r: Any) -> Recorded:
    return load(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], bytes(r[9]))


class SqliteEventLog(EventLog):
    """Open with ``await SqliteEventLog.open(path)``; close with ``await log.close()`` (or use
    ``async with``): an unclosed aiosqlite connection keeps the process from exiting."""

    poll_interval = 0.5

    def __init__(self, path: str | Path, writer: AsyncEngine, reader: AsyncEngine) -> None:
        super().__init__()
        self.path = Path(path)
        self.writer = writer
        self.reader = reader
        self._batcher = AppendBatcher(self._write_group)

    @classmethod
    async def open(
        cls, path: str | Path, *, create: bool = True, busy_timeout_ms: int = 10_000, synchronous: str = "FULL"
    ) -> SqliteEventLog:
        """Open (and, with ``create``, migrate an empty) log at ``path``. ``synchronous`` is
        SQLite's ``PRAGMA synchronous`` for every connection: ``FULL`` (the default) syncs the WAL
        at every commit, so a commit that returned, and the frame shown after it, survive a power
        loss; ``NORMAL`` survives a killed process but may lose the last commits on power loss
        (measured in bench/sqlite_sync.py: docs/architecture.md, Stores); ``EXTRA`` is FULL in WAL
        mode. ``open_store`` takes it from the ``--db`` value: ``turnlog.db?synchronous=NORMAL``."""
        writer, reader = make_engines(path, busy_timeout_ms=busy_timeout_ms, synchronous=synchronous)
        log = cls(path, writer, reader)
        try:
            await ensure_schema(writer, create=create, where=str(path))
        except sa_exc.DBAPIError as exc:
            await log.close()
            raise StoreUnavailable(f"cannot open the SQLite log {str(path)!r}: {exc.orig}") from None
        except BaseException:
            await log.close()
            raise
        return log

    async def close(self) -> None:
        await self._batcher.drain()
        await self.writer.dispose()
        await self.reader.dispose()

    async def append(
        self, stream_id: str, events: Sequence[NewEvent], expected_version: int, *, recorded_at: str
    ) -> list[Recorded]:
        if not events:
            return []
        # Appends of several conversations that meet here go in one transaction (one sync):
        # ``_batcher``. The result, and when it comes (after the commit), are this append's own.
        sealed = await self._batcher.append(stream_id, events, expected_version, recorded_at)
        self._notify(stream_id, sealed)
        return sealed

    async def _write_group(self, group: list[Pending]) -> None:
        """One transaction for a group of appends (``AppendBatcher``): every stream's head and the
        max position in one query, each item checked against its own head (a stale one gets
        ``ConcurrencyError``), the rest inserted together (``_insert``), one commit."""
        async with driver(self.writer) as db:
            # The hot path talks to the aiosqlite connection that SQLAlchemy's pool hands out:
            # a few thread hops per group (BEGIN, heads, the inserts, COMMIT) however many
            # conversations it holds; the dialect's cursor adapter makes ~4x more.
            await db.execute("BEGIN IMMEDIATE")
            try:
                heads = await db.execute_fetchall(_HEADS, (msgspec.json.encode([p.stream_id for p in group]).decode(),))
                position = (heads[0][0] if heads else 0) or 0
                rows: list[tuple[Any, ...]] = []
                done: list[tuple[Pending, list[Recorded]]] = []
                for item, (_, actual, head_hash) in zip(group, heads, strict=True):
                    if actual is None:
                        actual, head_hash = 0, GENESIS_HASH
                    sealed = item.sealed(actual, head_hash, position + 1)
                    if sealed is None:
                        continue
                    position += len(sealed)
                    rows += [_row(r) for r in sealed]
                    done.append((item, sealed))
                if rows:
                    await _insert(db, rows)
                await db.commit()
            except sqlite3.IntegrityError:
                # Unreachable while every writer takes the IMMEDIATE lock first (a writer that
                # does not: an old build, a hand-run script): each item alone says whose it is.
                await db.rollback()
                for item in group:
                    if not item.future.done():
                        try:
                            item.done(await self._append_one(db, item))
                        except Exception as exc:
                            item.done(exc)
                return
            except BaseException:
                await db.rollback()
                raise
        for item, sealed in done:
            item.done(sealed)

    async def _append_one(self, db: Any, item: Pending) -> list[Recorded]:
        """One append in its own transaction (the group's fallback)."""
        await db.execute("BEGIN IMMEDIATE")
        try:
            head = await db.execute_fetchall(_HEADS, (msgspec.json.encode([item.stream_id]).decode(),))
            max_pos, actual, head_hash = head[0]
            if actual is None:
                actual, head_hash = 0, GENESIS_HASH
            if actual != item.expected:
                raise ConcurrencyError(item.stream_id, item.expected, actual)
            sealed = seal(
                item.stream_id,
                item.events,
                head_version=actual,
                head_hash=head_hash,
                first_position=(max_pos or 0) + 1,
                recorded_at=item.recorded_at,
            )
            rows = [_row(r) for r in sealed]
            try:
                await _insert(db, rows)
            except sqlite3.IntegrityError as exc:
                raise ConcurrencyError(item.stream_id, item.expected, -1) from exc
            await db.commit()
        except BaseException:
            await db.rollback()
            raise
        return sealed

    async def _fetch(self, sql: str, params: tuple[Any, ...]) -> list[Any]:
        # ``driver``: the pooled aiosqlite connection itself (~20 µs there and back, where a
        # SQLAlchemy connection cost ~130 a page of a replay). One thread hop for the whole page
        # (the dialect's cursor adapter makes several). Reads need no transaction: a single
        # SELECT sees one consistent WAL snapshot, and the connection goes back outside one.
        async with driver(self.reader) as db:
            return await db.execute_fetchall(sql, params)  # type: ignore[no-any-return]

    async def read(self, stream_id: str, after_version: int = 0, limit: int = PAGE) -> list[Recorded]:
        return load_rows(await self._fetch(_READ, (stream_id, after_version, limit)), stream_id)

    async def read_all(self, after_position: int = 0, limit: int = PAGE) -> list[Recorded]:
        return load_rows(await self._fetch(_READ_ALL, (after_position, limit)))

    async def last(self, stream_id: str) -> Recorded | None:
        rows = await self._fetch(_LAST, (stream_id,))
        return _load_row(rows[0]) if rows else None

    async def streams(self) -> list[str]:
        return [r[0] for r in await self._fetch(_STREAMS, ())]

    # -- checkpoints (turnlog.engine.CheckpointLog; rows in adapters/stores/_checkpoints.py) -----

    async def append_checkpoint(self, checkpoint: Checkpoint) -> None:
        async with driver(self.writer) as db:
            await db.execute("BEGIN IMMEDIATE")
            try:
                await db.execute(SQLITE_INSERT_CHECKPOINT, checkpoint_row(checkpoint))
                await db.commit()
            except BaseException:
                await db.rollback()
                raise

    async def checkpoints(self) -> list[Checkpoint]:
        return [load_checkpoint(r) for r in await self._fetch(CHECKPOINTS, ())]

    async def last_checkpoint(self) -> Checkpoint | None:
        rows = await self._fetch(LAST_CHECKPOINT, ())
        return load_checkpoint(rows[0]) if rows else None
