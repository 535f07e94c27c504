"""SQLite's pools skip the rollback on every return (a thread hop), so a use that is cancelled or
fails inside a transaction must still not hand the next user a connection holding the write lock:
the engines' reset hook rolls it back (``adapters/stores/_engines.py``)."""

from __future__ import annotations

import asyncio
import logging
import threading
from pathlib import Path

import pytest
from turnlog.adapters.stores import SqliteEventLog
from turnlog.adapters.stores._engines import driver
from turnlog.engine import NewEvent, TextDelta

AT = "2026-01-01T00:00:00.000000Z"


async def test_a_failed_use_inside_a_transaction_is_rolled_back_on_return(tmp_path: Path) -> None:
    async with await SqliteEventLog.open(tmp_path / "t.db") as log:
        with pytest.raises(RuntimeError):
            async with driver(log.writer) as db:
                await db.execute("BEGIN IMMEDIATE")
                await db.execute("CREATE TABLE scratch (x)")
                raise RuntimeError("the use fails mid-transaction")
        # The one writer connection is usable at once (no "within a transaction", no lock held),
        # and what the failed use did is gone.
        recs = await log.append("s", [NewEvent(TextDelta(1, "a"), "t1")], 0, recorded_at=AT)
        assert [r.version for r in recs] == [1]
        async with driver(log.reader) as db:
            found = await db.execute_fetchall("SELECT name FROM sqlite_master WHERE name = 'scratch'")
        assert list(found) == []


async def test_a_use_cancelled_inside_a_transaction_does_not_keep_the_write_lock(tmp_path: Path) -> None:
    async with await SqliteEventLog.open(tmp_path / "t.db") as log:
        entered = asyncio.Event()

        async def hold() -> None:
            async with driver(log.writer) as db:
                await db.execute("BEGIN IMMEDIATE")
                entered.set()
                await asyncio.sleep(60)

        task = asyncio.create_task(hold())
        await entered.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # Another process's writer would wait on the lock: this one's next append must not.
        recs = await asyncio.wait_for(
            log.append("s", [NewEvent(TextDelta(1, "a"), "t1")], 0, recorded_at=AT), timeout=5
        )
        assert recs[0].version == 1


async def test_a_clean_use_returns_its_connection_without_a_transaction(tmp_path: Path) -> None:
    async with await SqliteEventLog.open(tmp_path / "t.db") as log:
        for _ in range(3):  # the pool of one writer hands the same connection back each time
            async with driver(log.writer) as db:
                assert not db.in_transaction
                await db.execute("BEGIN IMMEDIATE")
                await db.commit()


async def test_connections_beyond_the_pool_are_closed_on_return_without_an_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # More readers at once than the pool keeps (pool_size 4 + max_overflow 4): the pool closes
    # the extra ones as they come back. Closing an aiosqlite connection is I/O; done where it may
    # not be, it logged an error on every return and left the connection's thread running (a
    # server under load blocked writing those errors to a full stderr pipe).
    async with await SqliteEventLog.open(tmp_path / "t.db") as log:
        await log.append("s", [NewEvent(TextDelta(1, "a"), "t1")], 0, recorded_at=AT)
        threads_before = threading.active_count()
        for _ in range(3):
            assert await asyncio.gather(*(_read_together(log, asyncio.Barrier(8)) for _ in range(1))) == [[1] * 8]
            assert log.reader.pool.overflow() <= 0
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
        # The overflow connections' threads ended: only the pool's kept readers' (4) are new.
        kept = threads_before + log.reader.pool.size()
        for _ in range(100):
            if threading.active_count() <= kept:
                break
            await asyncio.sleep(0.02)
        assert threading.active_count() <= kept


async def _read_together(log: SqliteEventLog, together: asyncio.Barrier) -> list[int]:
    """Eight reads, each holding its connection until all eight hold one."""

    async def read() -> int:
        async with driver(log.reader) as db:
            await together.wait()
            return len(await db.execute_fetchall("SELECT version FROM turnlog_events"))

    return await asyncio.gather(*(read() for _ in range(together.parties)))
