"""SQLAlchemy engines on a SQLite file: the log's writer and readers, and the migrations' engine."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import event as sa_event
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
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


def make_engines(
    path: str | Path, *, busy_timeout_ms: int = 10_000, synchronous: str = "NORMAL"
) -> tuple[AsyncEngine, AsyncEngine]:
    """(writer, reader) engines on one SQLite file. The writer begins IMMEDIATE, the reader deferred."""
    if synchronous.upper() not in ("NORMAL", "FULL", "EXTRA"):
        raise ConfigError(f"synchronous must be NORMAL, FULL or EXTRA, not {synchronous!r}")
    url = sqlite_url(path)
    writer = create_async_engine(url, pool_size=1, max_overflow=0, pool_timeout=600)
    _configure(writer, begin="BEGIN IMMEDIATE", busy_timeout_ms=busy_timeout_ms, synchronous=synchronous)
    # A small pool of reader connections: opening one per page cost more than reading the page.
    # close() disposes the pool, so nothing lingers to keep the process alive at exit.
    # No rollback when a reader goes back to the pool (a thread hop for nothing): the log's reads
    # are single SELECTs that open no transaction, and a SQLAlchemy connection that began one ends
    # it itself on close. The writer keeps the rollback: its hot path begins transactions on the
    # driver connection, behind SQLAlchemy's back, and a cancelled one must not hold the lock.
    reader = create_async_engine(url, pool_size=4, max_overflow=4, pool_reset_on_return=None)
    _configure(reader, begin="BEGIN", busy_timeout_ms=busy_timeout_ms, synchronous=synchronous)
    return writer, reader
