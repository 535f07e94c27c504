"""What the log-wide tree costs: checkpoints, verification, exports.

    .venv/bin/python bench/checkpoint_cost.py [--sizes 10000 100000] [--pg URL | --no-pg]

For each store (SQLite in a temporary file; PostgreSQL in a fresh schema, dropped afterwards) and
each size N, a log of N text deltas over 100 conversations (batches of 250), then:
- checkpoint, full: ``create_checkpoint`` reading all N events from position 1;
- checkpoint, incremental: 1,000 more events, then from the stored frontier (reads only those);
- verify_log: the whole log (every hash recomputed, chains, positions, tree, checkpoints), per
  event; against ``verify`` (per-conversation chains only, no tree), and the tree alone
  (leaf hash + frontier over N chain hashes in memory, no I/O);
- export of one conversation (1% of the log) with its proof, and ``verify_export`` of the file.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid
from pathlib import Path

import asyncpg
from turnlog.adapters.signing import Ed25519Signer
from turnlog.adapters.stores import PostgresEventLog, SqliteEventLog, parse_pg_url, upgrade
from turnlog.engine import (
    EventLog,
    Frontier,
    NewEvent,
    TextDelta,
    create_checkpoint,
    export_conversation,
    merkle_leaf,
    verify,
    verify_export,
    verify_log,
)

RECORDED_AT = "2026-01-01T00:00:00.000000Z"
DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"
STREAMS = 100
BATCH = 250
KEY = Ed25519Signer.generate()


async def fill(log: EventLog, n: int, start: int = 0) -> None:
    heads = {}
    for b, first in enumerate(range(start, start + n, BATCH)):
        stream = f"c{b % STREAMS}"
        head = heads.get(stream)
        if head is None:
            last = await log.last(stream)
            head = last.version if last else 0
        events = [NewEvent(TextDelta(iteration=1, text=f"tok {i} "), "turn-1") for i in range(first, first + BATCH)]
        await log.append(stream, events, head, recorded_at=RECORDED_AT)
        heads[stream] = head + BATCH


async def timed(coro) -> tuple[float, object]:
    t = time.perf_counter()
    result = await coro
    return time.perf_counter() - t, result


async def export_lines(log: EventLog, stream: str) -> list[bytes]:
    return [line async for line in export_conversation(log, stream)]


async def measure(store: str, log: EventLog, n: int) -> list[tuple[str, str]]:
    await fill(log, n)
    full_s, _ = await timed(create_checkpoint(log, KEY, full=True))
    await fill(log, 1000, n)
    incr_s, cp2 = await timed(create_checkpoint(log, KEY))
    full2_s, cp3 = await timed(create_checkpoint(log, KEY, full=True))
    assert cp2.root == cp3.root and cp2.size == n + 1000  # type: ignore[attr-defined]
    total = n + 1000
    vlog_s, report = await timed(verify_log(log, keys=[KEY.verifier]))
    assert report.ok, report.summary()  # type: ignore[attr-defined]
    chains_s, old = await timed(verify(log))
    assert old.ok  # type: ignore[attr-defined]
    hashes = [r.hash for r in await log.read_all(0, total)]
    t = time.perf_counter()
    frontier = Frontier()
    for h in hashes:
        frontier.append(merkle_leaf(h))
    frontier.root()
    tree_s = time.perf_counter() - t
    export_s, lines = await timed(export_lines(log, "c7"))
    t = time.perf_counter()
    checked = verify_export(lines, [KEY.verifier])  # type: ignore[arg-type]
    file_s = time.perf_counter() - t
    assert checked.ok, checked.summary()
    us = 1e6 / total
    label = f"{store} N={n:,}"
    return [
        (label, f"checkpoint full {n:,} events: {full_s * 1000:,.0f} ms ({n / full_s:,.0f} events/s)"),
        (
            label,
            f"checkpoint incremental (+1,000 on the frontier): {incr_s * 1000:,.1f} ms; full again {full2_s * 1000:,.0f} ms",
        ),
        (
            label,
            f"verify_log (hashes, chains, positions, tree, 3 checkpoints): {vlog_s * us:.2f} us/event ({vlog_s:.2f} s)",
        ),
        (label, f"verify (per-conversation chains, no tree): {chains_s * us:.2f} us/event ({chains_s:.2f} s)"),
        (label, f"tree alone (leaf + frontier, in memory): {tree_s * us:.2f} us/event"),
        (
            label,
            f"export {checked.events:,} events (+ proof over {cp3.size:,}): {export_s * 1000:,.0f} ms; "  # type: ignore[attr-defined]
            f"verify --file {file_s * 1000:,.0f} ms ({len(b''.join(lines)) / 1e6:.1f} MB)",
        ),
    ]


async def pg_schema(url: str) -> tuple[str, str]:
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    scoped = f"{url}{'&' if '?' in url else '?'}schema={schema}"
    await upgrade(scoped)
    return scoped, schema


async def drop(url: str, schema: str) -> None:
    conn = await asyncpg.connect(parse_pg_url(url).dsn)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--pg", default=DEFAULT_PG)
    parser.add_argument("--no-pg", action="store_true")
    args = parser.parse_args()
    rows: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            async with await SqliteEventLog.open(Path(tmp) / f"{n}.db") as log:
                rows += await measure("sqlite", log, n)
    if not args.no_pg:
        for n in args.sizes:
            url, schema = await pg_schema(args.pg)
            try:
                async with await PostgresEventLog.open(url) as log:
                    rows += await measure("postgres", log, n)
            finally:
                await drop(args.pg, schema)
    width = max(len(label) for label, _ in rows)
    for label, line in rows:
        print(f"{label:<{width}}  {line}")


if __name__ == "__main__":
    asyncio.run(main())
