"""SQLAlchemy engines on a SQLite file (the log's writer and readers, and the migrations' engine), and
``driver``: the plain driver connection the stores' hot paths use, on either store."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from sqlalchemy import event as sa_event
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.util import greenlet_spawn
from turnlog.engine import ConfigError


def sqlite_url(path: str | Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


def _configure(engine: AsyncEngine, *, begin: str, busy_timeout_ms: int, synchronous: str) -> None:
    @sa_event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Hand transaction control to the "begin" hook below (pysqlite's own BEGIN is deferred).
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        cur.execute("PRAGMA journal_mode = WAL")
        cur.execute(f"PRAGMA synchronous = {synchronous}")
        cur.close()

    @sa_event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql(begin)

    # The pool's own reset (``pool_reset_on_return``) is off: it rolled back every connection on
    # its way back to the pool, a thread hop each time, though nearly every use ends its
    # transaction itself (or opens none). This hook rolls back only a connection that comes back
    # inside a transaction (a use cancelled or failed between BEGIN and COMMIT), so none returns
    # holding the write lock.
    @sa_event.listens_for(engine.sync_engine, "reset")
    def _on_reset(dbapi_conn: Any, _record: Any, state: Any) -> None:
        if state.terminate_only or not state.asyncio_safe:
            return  # being discarded, or collected where no I/O may be done: nothing to keep clean
        try:
            busy = dbapi_conn.driver_connection.in_transaction
        except ValueError:  # aiosqlite's "no active connection": closed, nothing to roll back
            return
        if busy:
            dbapi_conn.rollback()


def make_engines(
    path: str | Path, *, busy_timeout_ms: int = 10_000, synchronous: str = "NORMAL"
) -> tuple[AsyncEngine, AsyncEngine]:
    """(writer, reader) engines on one SQLite file. The writer begins IMMEDIATE, the reader deferred."""
    if synchronous.upper() not in ("NORMAL", "FULL", "EXTRA"):
        raise ConfigError(f"synchronous must be NORMAL, FULL or EXTRA, not {synchronous!r}")
    url = sqlite_url(path)
    writer = create_async_engine(url, pool_size=1, max_overflow=0, pool_timeout=600, pool_reset_on_return=None)
    _configure(writer, begin="BEGIN IMMEDIATE", busy_timeout_ms=busy_timeout_ms, synchronous=synchronous)
    # A small pool of reader connections: opening one per page cost more than reading the page.
    # close() disposes the pool, so nothing lingers to keep the process alive at exit.
    reader = create_async_engine(url, pool_size=4, max_overflow=4, pool_reset_on_return=None)
    _configure(reader, begin="BEGIN", busy_timeout_ms=busy_timeout_ms, synchronous=synchronous)
    return writer, reader


@contextlib.asynccontextmanager
async def driver(engine: AsyncEngine) -> AsyncIterator[Any]:
    """The driver connection (aiosqlite or asyncpg) of a pooled connection of ``engine``, for plain
    SQL on the hot paths. On SQLite the pool hands it out directly (``raw_connection``): ~20 µs
    there and back, where a SQLAlchemy ``AsyncConnection`` cost ~40 and, with the pool's reset,
    ~130. It goes back inside ``greenlet_spawn``, where the pool may do I/O: the reset hook's
    rollback of a connection returned inside a transaction, and closing a connection the pool
    does not keep (one of ``max_overflow``'s), which outside it failed with an error logged per
    return and left the connection's thread running."""
    if engine.dialect.name != "sqlite":
        async with engine.connect() as conn:
            yield (await conn.get_raw_connection()).driver_connection
        return
    raw = await engine.raw_connection()
    try:
        yield raw.driver_connection
    finally:
        await greenlet_spawn(raw.close)
