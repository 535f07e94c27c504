"""The shared event log: PostgreSQL, for several app servers over one database.

Why it is built this way:
- The hot path (append, read) talks to asyncpg directly through its own pool; SQLAlchemy (the
  ``engine`` attribute, asyncpg driver, same schema) serves the message rows and the migrations.
  Measured in bench/store_throughput.py: see docs/architecture.md for the figures.
- **Sequence gaps.** A position taken from a sequence is handed out at insert time but becomes
  visible at commit, so a transaction that took position 7 can commit after one that took 8,
  and a reader following ``read_all(after_position=...)`` that already saw 8 never sees 7.
  Here every append takes a transaction-scoped advisory lock (one key per log, i.e. per
  database and schema) and only then reads ``max(position)`` and inserts ``max + 1 ..``. The
  lock is released after the commit is visible, so appends commit one at a time in position
  order: positions are gapless and a follower never skips one. The cost is one lock per group
  commit, not per event (the engine batches deltas).
- **One statement under the lock.** The lock, the head re-check, the insert and the NOTIFY run
  in the server-side function ``turnlog_append`` (migration 0003) as one autocommit statement,
  so the lock is held for the server's work and the commit, never across a round trip to a
  busy client event loop (measured: 4 writers ~2.5x the appends/s of a client-side locked
  transaction). The client reads the head first, without the lock, and seals the batch
  against it; positions are not hashed, so the server picks them.
- **Optimistic concurrency.** A stale ``expected_version`` fails on the first read; a head that
  moved between that read and the lock makes ``turnlog_append`` write nothing and report the
  actual version. Either way: ``ConcurrencyError``. The unique (stream_id, version) constraint
  stays the backstop for a writer that skips the lock: its violation is ``ConcurrencyError`` too.
- **Live tail.** The append transaction sends ``NOTIFY`` (payload: ``VERSION:STREAM``) on a channel
  named after the log's schema; PostgreSQL delivers it at commit. A dedicated listener
  connection per log instance (opened by the first ``subscribe``) wakes this process's
  subscribers, so a reader on server B sees a turn that runs on server A at once. If that
  connection is lost, subscribers fall back to polling every ``poll_interval`` while it
  reconnects in the background, and are woken once it is back (they re-read the log, so
  nothing sent while it was down is missed: a notification is a hint, the log is the truth).
- Schema: ``open`` checks the Alembic revision (engine/migrate.py). An empty database is created
  only with ``create=True``; production databases are set up by ``turnlog db upgrade``.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from typing import Any

import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from turnlog.engine import (
    PAGE,
    Checkpoint,
    EventLog,
    LogError,
    NewEvent,
    Recorded,
    StoreUnavailable,
    load,
    load_rows,
)

from ._batcher import AppendBatcher
from ._checkpoints import CHECKPOINTS, LAST_CHECKPOINT, PG_INSERT_CHECKPOINT, checkpoint_row, load_checkpoint
from ._migrate import ensure_schema
from ._pg_append import PgAppender
from ._pg_listener import Listener
from ._urls import PgTarget, parse_pg_url

_COLS = "stream_id, version, position, turn_id, recorded_at, type, schema, prev_hash, hash, payload"
# A stream's read leaves out the stream id: it is the query's parameter (``load_rows(rows, stream_id)``).
_STREAM_COLS = _COLS.removeprefix("stream_id, ")
_READ = f"SELECT {_STREAM_COLS} FROM turnlog_events WHERE stream_id = $1 AND version > $2 ORDER BY version LIMIT $3"
_READ_ALL = f"SELECT {_COLS} FROM turnlog_events WHERE position > $1 ORDER BY position LIMIT $2"
_LAST = f"SELECT {_COLS} FROM turnlog_events WHERE stream_id = $1 ORDER BY version DESC LIMIT 1"
_STREAMS = "SELECT stream_id FROM turnlog_events WHERE version = 1 ORDER BY position"

#: Errors that mean "the database is not reachable right now", as opposed to a refused statement.
_UNAVAILABLE = (OSError, asyncio.TimeoutError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError)


def lock_key(schema: str | None) -> int:
    """The advisory-lock key of one log: a signed 64-bit number derived from its schema, so two
    logs in different schemas of one database never wait for each other."""
    digest = hashlib.sha256(f"turnlog.append:{schema or ''}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def channel_name(schema: str | None) -> str:
    """The NOTIFY channel of one log (channels are database-wide: the schema keeps logs apart)."""
    return f"turnlog_events.{schema}" if schema else "turnlog_events"


def _load_row(r: Any) -> Recorded:
    return load(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9])


async def _reset(conn: asyncpg.Connection) -> None:
    # asyncpg's default reset runs RESET ALL / UNLISTEN / unlock-all on every release: a round
    # trip per append. Our pooled connections never change session state, and every transaction
    # ends in COMMIT or ROLLBACK before release; roll back only if one did not (a cancellation).
    if conn.is_in_transaction():
        await conn.execute("ROLLBACK")


class PostgresEventLog(EventLog):
    """Open with ``await PostgresEventLog.open(url)``; close with ``await log.close()`` (or use
    ``async with``). ``engine`` is a SQLAlchemy AsyncEngine on the same database and schema."""

    #: The safety net when no notification arrives (the listener connection is down).
    poll_interval = 1.0

    def __init__(self, target: PgTarget, pool: asyncpg.Pool, engine: AsyncEngine) -> None:
        super().__init__()
        #: stream -> appends of this process in flight (see append)
        self._appending: dict[str, int] = {}
        self.target = target
        self.engine = engine
        self._pool = pool
        self._lock_key = lock_key(target.schema)
        self._channel = channel_name(target.schema)
        self._listener = Listener(
            target, self._channel, self._on_notification, self._wake_all, _UNAVAILABLE, self.poll_interval
        )
        self._closed = False
        self._appender = PgAppender(pool, self._lock_key, self._channel, target.where, _UNAVAILABLE)
        self._batcher = AppendBatcher(self._appender.write_group)

    @property
    def schema(self) -> str | None:
        return self.target.schema

    @property
    def where(self) -> str:
        return self.target.where

    @classmethod
    async def open(
        cls,
        url: str,
        *,
        create: bool = False,
        pool_size: int = 8,
        connect_timeout: float = 10.0,
    ) -> PostgresEventLog:
        """Connect and check the schema revision.

        ``create=True`` runs the migrations on an EMPTY database (tests, demos). Without it, and
        always for a database whose schema is older than this build, ``SchemaError`` tells the
        operator to run ``turnlog db upgrade --db URL``: several app servers must not race to
        migrate a shared database at start-up."""
        target = parse_pg_url(url)
        try:
            pool = await asyncpg.create_pool(
                target.dsn,
                min_size=1,
                max_size=pool_size,
                timeout=connect_timeout,
                server_settings=target.server_settings,
                reset=_reset,
            )
        except (*_UNAVAILABLE, asyncpg.PostgresError) as exc:
            raise StoreUnavailable(f"cannot reach the PostgreSQL log at {target.where}: {exc}") from None
        engine = create_async_engine(
            target.sqlalchemy_url,
            pool_size=4,
            max_overflow=4,
            connect_args={"server_settings": target.server_settings, "timeout": connect_timeout},
        )
        log = cls(target, pool, engine)
        try:
            await ensure_schema(engine, create=create, where=target.where)
        except BaseException:
            await log.close()
            raise
        return log

    async def close(self) -> None:
        """Release the pool, the SQLAlchemy engine and the listener. Idempotent."""
        if self._closed:
            return
        self._closed = True
        await self._batcher.drain()
        await self._listener.close()
        await self._pool.close()
        await self.engine.dispose()
        # Wake every subscriber: its next read raises LogError instead of waiting forever.
        for stream_id in list(self._waiters):
            self._notify(stream_id)

    def _check_open(self) -> None:
        if self._closed:
            raise LogError(f"the PostgreSQL log at {self.where} is closed")

    # -- writing ------------------------------------------------------------------------------

    async def append(
        self, stream_id: str, events: Sequence[NewEvent], expected_version: int, *, recorded_at: str
    ) -> list[Recorded]:
        if not events:
            return []
        self._check_open()
        # While this process appends to a stream, the listener leaves that stream's NOTIFYs to
        # the append: on success it hands its batch over (its own NOTIFY is only an echo, and may
        # arrive before the append returns); on failure it wakes the followers to read.
        self._appending[stream_id] = self._appending.get(stream_id, 0) + 1
        try:
            # Appends of several conversations that meet here go in one statement, one commit
            # (``_batcher``); the result, and when it comes (after the commit), are this one's.
            sealed = await self._batcher.append(stream_id, events, expected_version, recorded_at)
        except BaseException:
            self._notify(stream_id)
            raise
        finally:
            left = self._appending[stream_id] - 1
            if left:
                self._appending[stream_id] = left
            else:
                del self._appending[stream_id]
        self._notify(stream_id, sealed)
        return sealed

    # -- reading ------------------------------------------------------------------------------

    async def _fetch(self, sql: str, *args: Any) -> list[Any]:
        self._check_open()
        try:
            return await self._pool.fetch(sql, *args)
        except _UNAVAILABLE as exc:
            raise StoreUnavailable(f"read failed, the PostgreSQL log at {self.where}: {exc}") from None

    async def read(self, stream_id: str, after_version: int = 0, limit: int = PAGE) -> list[Recorded]:
        return load_rows(await self._fetch(_READ, stream_id, after_version, limit), stream_id)

    async def read_all(self, after_position: int = 0, limit: int = PAGE) -> list[Recorded]:
        return load_rows(await self._fetch(_READ_ALL, after_position, limit))

    async def last(self, stream_id: str) -> Recorded | None:
        rows = await self._fetch(_LAST, stream_id)
        return _load_row(rows[0]) if rows else None

    async def streams(self) -> list[str]:
        return [r[0] for r in await self._fetch(_STREAMS)]

    # -- following ----------------------------------------------------------------------------

    async def _before_follow(self) -> None:
        await self._listener.ensure()

    @property
    def listening(self) -> bool:
        """True while the LISTEN connection is up (False: subscribers poll)."""
        return self._listener.listening

    def _on_notification(self, payload: str) -> None:
        # "VERSION:STREAM" (migration 0004). A version this process's followers already have is
        # the echo of its own commit, handed over with the batch: no wake-up, no read.
        version, _, stream_id = payload.partition(":")
        if stream_id not in self._appending and int(version) > self._heads.get(stream_id, 0):
            self._notify(stream_id)

    def _wake_all(self) -> None:
        # Whatever was appended while nobody listened: every subscriber re-reads now.
        for stream_id in list(self._waiters):
            self._notify(stream_id)

    # -- checkpoints (turnlog.engine.CheckpointLog; rows in adapters/stores/_checkpoints.py) -----

    async def append_checkpoint(self, checkpoint: Checkpoint) -> None:
        self._check_open()
        try:
            await self._pool.execute(PG_INSERT_CHECKPOINT, *checkpoint_row(checkpoint))
        except _UNAVAILABLE as exc:
            raise StoreUnavailable(f"storing a checkpoint failed, the PostgreSQL log at {self.where}: {exc}") from None

    async def checkpoints(self) -> list[Checkpoint]:
        return [load_checkpoint(r) for r in await self._fetch(CHECKPOINTS)]

    async def last_checkpoint(self) -> Checkpoint | None:
        rows = await self._fetch(LAST_CHECKPOINT)
        return load_checkpoint(rows[0]) if rows else None
