"""How the SQLite log inserts a group commit's rows: one row per statement or many, in one run.

    .venv/bin/python bench/sqlite_insert.py [--events 100000] [--batch 1024] [--rounds 3]

Writes the rows of one turn (made by the engine, as ``bench/replay_check.py`` makes them) into a
fresh file, ``--batch`` rows per transaction (the engine's ``flush_events``), ``synchronous=FULL``
as the log opens it, three ways:

- ``executemany, 1 row per INSERT``: what the log did before (``_INSERT`` with ``executemany``);
- ``_insert``: what it does now (``adapters/stores/_sqlite.py``: 128, then 8, then 1 row per
  statement, each shape compiled once);
- ``1 INSERT of the whole batch``: one statement per batch, compiled for each new batch size (a
  slow model's batches differ in size): why ``_insert`` keeps a few fixed shapes.

It prints microseconds per row, wall clock and the CPU time of the writing thread, and how many
times each way let go of the GIL (statements stepped): the engine's thread can run meanwhile only
when the writer is not waiting to take the GIL back after every row.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import sqlite3
import tempfile
import time
from pathlib import Path

from replay_check import write  # the same turn as the replay bench (bench/ is on the path)
from turnlog.adapters.stores._sqlite import _INSERT, _INSERTS, _insert

COLS = "stream_id, version, position, turn_id, recorded_at, type, schema, prev_hash, hash, payload"


class SyncDb:
    """``_insert`` awaits ``db.executemany``: the sqlite3 connection, called in this thread."""

    def __init__(self, con: sqlite3.Connection) -> None:
        self.con = con
        self.statements = 0

    async def executemany(self, sql: str, params: list) -> None:
        self.statements += len(params)
        self.con.executemany(sql, params)


def fresh(path: Path, schema: str) -> sqlite3.Connection:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=FULL")
    con.execute(schema)
    return con


def run(way: str, rows: list, path: Path, schema: str, batch: int) -> tuple[float, float, int]:
    con = fresh(path, schema)
    db = SyncDb(con)
    start, cpu = time.perf_counter(), time.thread_time()
    for i in range(0, len(rows), batch):
        part = rows[i : i + batch]
        con.execute("BEGIN IMMEDIATE")
        if way == "executemany":
            con.executemany(_INSERT, part)
            db.statements += len(part)
        elif way == "_insert":
            _drive(_insert(db, part))
        else:
            sql = _INSERT + ", (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)" * (len(part) - 1)
            con.execute(sql, list(itertools.chain.from_iterable(part)))
            db.statements += 1
        con.execute("COMMIT")
    seconds, cpu = time.perf_counter() - start, time.thread_time() - cpu
    assert con.execute("SELECT count(*) FROM turnlog_events").fetchone()[0] == len(rows)
    con.close()
    return seconds, cpu, db.statements


def _drive(coro) -> None:
    """Run a coroutine that never suspends (its awaits are plain calls) to its end."""
    try:
        coro.send(None)
    except StopIteration:
        return
    raise RuntimeError("_insert suspended")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--batch", type=int, default=1024)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "src.db"
        asyncio.run(write(src, args.events))
        con = sqlite3.connect(src)
        rows = con.execute(f"SELECT {COLS} FROM turnlog_events ORDER BY position").fetchall()
        schema = con.execute("SELECT sql FROM sqlite_master WHERE name = 'turnlog_events'").fetchone()[0]
        con.close()
        path = Path(tmp) / "bench.db"
        ways = ("executemany", "_insert", "one statement")
        best = {w: (float("inf"), float("inf"), 0) for w in ways}
        for i in range(args.rounds):
            for way in ways if i % 2 == 0 else reversed(ways):
                seconds, cpu, statements = run(way, rows, path, schema, args.batch)
                old = best[way]
                best[way] = (min(old[0], seconds), min(old[1], cpu), statements)
    n = len(rows)
    print(
        f"sqlite_insert: {n:,} rows, {args.batch} per transaction, synchronous=FULL, best of {args.rounds} "
        f"(sqlite {sqlite3.sqlite_version}, {os.cpu_count()} cores); shapes of _insert: {[k for k, _ in _INSERTS]}"
    )
    print("| way | µs/row wall | µs/row CPU | statements stepped (GIL let go) |")
    print("|---|---|---|---|")
    labels = {
        "executemany": "executemany, 1 row per INSERT (before)",
        "_insert": "_insert: 128, 8, 1 rows per INSERT (now)",
        "one statement": "1 INSERT of the whole batch",
    }
    for way in ways:
        seconds, cpu, statements = best[way]
        print(f"| {labels[way]} | {seconds / n * 1e6:.2f} | {cpu / n * 1e6:.2f} | {statements:,} |")


if __name__ == "__main__":
    main()
