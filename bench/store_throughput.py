"""Event-store throughput: PostgreSQL (asyncpg hot path vs the same SQL through SQLAlchemy) and SQLite.

    .venv/bin/python bench/store_throughput.py [--pg URL] [--seconds 2]

Each section runs in a fresh PostgreSQL schema (dropped afterwards) or a fresh SQLite file:
- append, one writer: group commits of 1 and 64 events, appends/s and events/s; the PostgreSQL
  store (asyncpg) against the same two statements through SQLAlchemy Core.
- append, concurrent writers on one log (each its own stream): 1, 4 and 16 writers, all tasks on
  one instance, and 4 writers on 4 instances (4 pools, as 4 app servers). Every append takes the
  log's advisory lock (the sequence-gap fix); the store takes it inside ``turnlog_append`` on the
  server, compared with the first design that took it in a client-side transaction.
- read: events/s of ``read`` in 10k-event pages, asyncpg vs SQLAlchemy.
- tail latency: append commit (on another instance) to the subscriber's receipt, p50/p99.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine
from turnlog.adapters.stores import SqliteEventLog, parse_pg_url
from turnlog.adapters.stores._postgres import PostgresEventLog, channel_name, lock_key
from turnlog.adapters.stores._schema import events as events_table
from turnlog.engine import GENESIS_HASH, ConcurrencyError, EventLog, NewEvent, Recorded, TextDelta, load, seal

RECORDED_AT = "2026-01-01T00:00:00.000000Z"
DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"


def batch(n: int) -> list[NewEvent]:
    return [NewEvent(TextDelta(iteration=1, text="tok "), "turn-1") for _ in range(n)]


# -- the comparison: the same append and read through SQLAlchemy Core ---------------------------


async def sa_append(
    engine: AsyncEngine, schema: str | None, stream: str, events: list[NewEvent], expected: int
) -> None:
    """What the store does (head, seal, turnlog_append), through SQLAlchemy Core instead of asyncpg."""
    async with engine.begin() as conn:
        c = events_table.c
        head = (
            await conn.execute(
                select(c.version, c.hash).where(c.stream_id == stream).order_by(c.version.desc()).limit(1)
            )
        ).first()
        actual, head_hash = (head[0], head[1]) if head else (0, GENESIS_HASH)
        if actual != expected:
            raise ConcurrencyError(stream, expected, actual)
        sealed = seal(
            stream, events, head_version=actual, head_hash=head_hash, first_position=1, recorded_at=RECORDED_AT
        )
        first = (
            await conn.execute(
                text(
                    "SELECT turnlog_append(:lock, :chan, :stream, :expected, :head, :at, :v, :t, :ty, :sc, :ph, :h, :pl)"
                ),
                {
                    "lock": lock_key(schema),
                    "chan": channel_name(schema),
                    "stream": stream,
                    "expected": expected,
                    "head": head_hash,
                    "at": RECORDED_AT,
                    "v": [r.version for r in sealed],
                    "t": [r.turn_id for r in sealed],
                    "ty": [r.type for r in sealed],
                    "sc": [r.schema for r in sealed],
                    "ph": [r.prev_hash for r in sealed],
                    "h": [r.hash for r in sealed],
                    "pl": [r.payload for r in sealed],
                },
            )
        ).scalar_one()
        assert first > 0


class ClientLockLog(PostgresEventLog):
    """The first design, for comparison: the advisory lock taken in a client-side transaction and
    held across the head read, the insert and the commit (four round trips)."""

    async def _append(self, conn, stream_id, events, expected_version, recorded_at):  # type: ignore[no-untyped-def]
        await conn.execute(f"BEGIN; SELECT pg_advisory_xact_lock({self._lock_key})")
        try:
            row = await conn.fetchrow(
                "SELECT (SELECT max(position) FROM turnlog_events), h.version, h.hash FROM (SELECT 1) AS one LEFT JOIN "
                "(SELECT version, hash FROM turnlog_events WHERE stream_id = $1 ORDER BY version DESC LIMIT 1) AS h ON true",
                stream_id,
            )
            max_pos, actual, head_hash = row[0], row[1] or 0, row[2] or GENESIS_HASH
            if actual != expected_version:
                raise ConcurrencyError(stream_id, expected_version, actual)
            sealed = seal(
                stream_id,
                events,
                head_version=actual,
                head_hash=head_hash,
                first_position=(max_pos or 0) + 1,
                recorded_at=recorded_at,
            )
            await conn.executemany(
                "INSERT INTO turnlog_events (stream_id, version, position, turn_id, recorded_at, type, schema, "
                "prev_hash, hash, payload) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                [
                    (
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
                    for r in sealed
                ],
            )
            await conn.execute("SELECT pg_notify($1, $2)", self._channel, stream_id)
            await conn.execute("COMMIT")
        except BaseException:
            await conn.execute("ROLLBACK")
            raise
        return sealed


async def sa_read(engine: AsyncEngine, stream: str, after: int, limit: int) -> list[Recorded]:
    c = events_table.c
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(
                c.stream_id,
                c.version,
                c.position,
                c.turn_id,
                c.recorded_at,
                c.type,
                c.schema,
                c.prev_hash,
                c.hash,
                c.payload,
            )
            .where(c.stream_id == stream, c.version > after)
            .order_by(c.version)
            .limit(limit)
        )
        return [load(*r) for r in rows]


# -- helpers ------------------------------------------------------------------------------------


async def rate(seconds: float, op: Callable[[int], Awaitable[None]]) -> tuple[int, float]:
    """Run op(i) back to back for `seconds`; (calls, elapsed)."""
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        await op(n)
        n += 1
    return n, time.perf_counter() - start


class PgSchemas:
    def __init__(self, url: str) -> None:
        self.url = url
        self.made: list[str] = []

    def new(self) -> str:
        schema = f"bench_{uuid.uuid4().hex[:12]}"
        self.made.append(schema)
        return f"{self.url}{'&' if '?' in self.url else '?'}schema={schema}"

    async def drop(self) -> None:
        conn = await asyncpg.connect(parse_pg_url(self.url).dsn)
        try:
            for schema in self.made:
                await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await conn.close()


async def one_writer(
    log: EventLog, size: int, seconds: float, append: Callable[..., Awaitable[object]] | None = None
) -> str:
    events = batch(size)
    version = 0

    async def op(_: int) -> None:
        nonlocal version
        if append is None:
            await log.append("s", events, version, recorded_at=RECORDED_AT)
        else:
            await append("s", events, version)
        version += size

    n, dt = await rate(seconds, op)
    return f"{n / dt:8.0f} appends/s {n * size / dt:9.0f} events/s"


async def writers(logs: list[EventLog], count: int, size: int, seconds: float) -> str:
    events = batch(size)
    done = 0
    deadline = time.perf_counter() + seconds

    async def writer(i: int) -> None:
        nonlocal done
        log, version = logs[i % len(logs)], 0
        while time.perf_counter() < deadline:
            await log.append(f"w{i}", events, version, recorded_at=RECORDED_AT)
            version += size
            done += 1

    start = time.perf_counter()
    await asyncio.gather(*(writer(i) for i in range(count)))
    dt = time.perf_counter() - start
    return f"{done / dt:8.0f} appends/s {done * size / dt:9.0f} events/s"


async def read_rate(read: Callable[[int], Awaitable[list[Recorded]]], total: int) -> str:
    best = 0.0
    for _ in range(3):  # best of three: the first pass warms caches and prepared statements
        start, after, got = time.perf_counter(), 0, 0
        while page := await read(after):
            got += len(page)
            after = page[-1].version
        assert got == total, (got, total)
        best = max(best, got / (time.perf_counter() - start))
    return f"{best:9.0f} events/s (best of 3)"


async def tail_latency(reader: EventLog, writer: EventLog, n: int) -> str:
    """From the moment the writer's append returns (its commit is acknowledged) to the moment
    the subscriber has the event. Can be negative: the notification may beat the writer's own
    acknowledgement; then the event was visible to the reader before the writer knew."""
    returned: dict[int, float] = {}
    received: dict[int, float] = {}

    async def follow() -> None:
        async for rec in reader.subscribe("t"):
            received[rec.version] = time.perf_counter()
            if rec.version == n:
                return

    task = asyncio.create_task(follow())
    await asyncio.sleep(0.2)
    for v in range(n):
        recs = await writer.append("t", batch(1), v, recorded_at=RECORDED_AT)
        returned[recs[0].version] = time.perf_counter()
        await asyncio.sleep(0.005)
    await asyncio.wait_for(task, 10)
    lat = [received[v] - returned[v] for v in returned]
    q = statistics.quantiles(lat, n=100)
    return f"p50 {q[49] * 1000:6.2f} ms  p99 {q[98] * 1000:6.2f} ms  max {max(lat) * 1000:6.2f} ms ({n} events)"


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pg", default=DEFAULT_PG)
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args()
    s = args.seconds
    rows: list[tuple[str, str]] = []
    schemas = PgSchemas(args.pg)
    try:
        for size in (1, 64):
            async with await PostgresEventLog.open(schemas.new(), create=True) as log:
                rows.append((f"pg append, 1 writer, {size}/commit, asyncpg (store)", await one_writer(log, size, s)))
            async with await PostgresEventLog.open(schemas.new(), create=True) as log:
                eng = log.engine
                rows.append(
                    (
                        f"pg append, 1 writer, {size}/commit, SQLAlchemy Core",
                        await one_writer(
                            log, size, s, lambda st, ev, v, e=eng, sc=log.schema: sa_append(e, sc, st, ev, v)
                        ),
                    )
                )
        for count in (1, 4, 16):
            for cls, name in ((PostgresEventLog, "server-side lock (store)"), (ClientLockLog, "client-side lock")):
                async with await cls.open(schemas.new(), create=True, pool_size=16) as log:
                    result = await writers([log], count, 16, s)
                    rows.append((f"pg append, {count} writers, 1 instance, 16/commit, {name}", result))
        url = schemas.new()
        logs = [await PostgresEventLog.open(url, create=True) for _ in range(4)]
        rows.append(("pg append, 4 writers, 4 instances, 16/commit", await writers(logs, 4, 16, s)))  # type: ignore[arg-type]
        for log in logs:
            await log.close()

        async with await PostgresEventLog.open(schemas.new(), create=True) as log:
            total = 100_000
            for v in range(0, total, 1000):
                await log.append("r", batch(1000), v, recorded_at=RECORDED_AT)
            rows.append(
                ("pg read 100k, 10k pages, asyncpg (store)", await read_rate(lambda a: log.read("r", a, 10_000), total))
            )
            rows.append(
                (
                    "pg read 100k, 10k pages, SQLAlchemy Core",
                    await read_rate(lambda a: sa_read(log.engine, "r", a, 10_000), total),
                )
            )

        url = schemas.new()
        async with await PostgresEventLog.open(url, create=True) as reader, await PostgresEventLog.open(url) as writer:
            reader.poll_interval = 60  # NOTIFY only
            rows.append(
                ("pg tail latency, commit -> subscriber on another instance", await tail_latency(reader, writer, 300))
            )
    finally:
        await schemas.drop()

    with tempfile.TemporaryDirectory() as tmp:
        for size in (1, 64):
            async with await SqliteEventLog.open(Path(tmp) / f"a{size}.db") as log:
                rows.append((f"sqlite append, 1 writer, {size}/commit", await one_writer(log, size, s)))
        async with await SqliteEventLog.open(Path(tmp) / "w.db") as log:
            rows.append(("sqlite append, 16 writers, 16/commit", await writers([log], 16, 16, s)))
        async with await SqliteEventLog.open(Path(tmp) / "r.db") as log:
            for v in range(0, 100_000, 1000):
                await log.append("r", batch(1000), v, recorded_at=RECORDED_AT)
            rows.append(("sqlite read 100k, 10k pages", await read_rate(lambda a: log.read("r", a, 10_000), 100_000)))
        async with await SqliteEventLog.open(Path(tmp) / "t.db") as log:
            rows.append(("sqlite tail latency, same instance", await tail_latency(log, log, 300)))

    width = max(len(name) for name, _ in rows)
    for name, result in rows:
        print(f"{name:<{width}}  {result}")


if __name__ == "__main__":
    asyncio.run(main())
