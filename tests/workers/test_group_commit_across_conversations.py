"""One transaction for the appends of many conversations (``AppendBatcher``, both SQL logs): what
each caller was promised still holds per conversation."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from turnlog.adapters.stores import PostgresEventLog, SqliteEventLog
from turnlog.engine import ConcurrencyError, NewEvent, TextDelta

RECORDED_AT = "2026-01-01T00:00:00.000000Z"


def deltas(n: int, turn: str = "t1") -> list[NewEvent]:
    return [NewEvent(TextDelta(1, f"d{i}"), turn) for i in range(n)]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def log(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[SqliteEventLog | PostgresEventLog]:
    if request.param == "sqlite":
        opened: SqliteEventLog | PostgresEventLog = await SqliteEventLog.open(tmp_path / "t.db")
    else:
        opened = await PostgresEventLog.open(request.getfixturevalue("pg_schema_url"))
    try:
        yield opened
    finally:
        await opened.close()


async def test_many_conversations_commit_together_gapless_and_each_gets_its_own_events(log) -> None:
    first = await log.append("warm", deltas(1), 0, recorded_at=RECORDED_AT)  # a transaction in flight next
    assert first[0].position == 1
    streams = [f"c{i}" for i in range(60)]
    results = await asyncio.gather(
        *(log.append(s, deltas(1 + i % 3), 0, recorded_at=RECORDED_AT) for i, s in enumerate(streams))
    )
    for i, (s, recs) in enumerate(zip(streams, results, strict=True)):
        assert [(r.stream_id, r.version) for r in recs] == [(s, v) for v in range(1, 2 + i % 3)]
        assert recs == await log.read(s)  # durable: what the caller got is what the log holds
    positions = sorted(r.position for recs in results for r in recs)
    assert positions == list(range(2, 2 + len(positions)))  # gapless, after the first append
    everything = await log.read_all()
    assert [r.position for r in everything] == list(range(1, len(everything) + 1))
    # They met: fewer transactions than appends.
    assert log._batcher.groups < len(streams) + 1


async def test_a_stale_append_fails_alone_and_the_rest_of_its_group_commits(log) -> None:
    await log.append("taken", deltas(1, "t0"), 0, recorded_at=RECORDED_AT)
    calls = [log.append(f"s{i}", deltas(2), 0, recorded_at=RECORDED_AT) for i in range(20)]
    calls.insert(10, log.append("taken", deltas(2), 0, recorded_at=RECORDED_AT))  # stale: the stream is at 1
    results = await asyncio.gather(*calls, return_exceptions=True)
    stale = results.pop(10)
    assert isinstance(stale, ConcurrencyError)
    assert [r.version for r in await log.read("taken")] == [1]  # it wrote nothing
    assert all(isinstance(r, list) and [x.version for x in r] == [1, 2] for r in results)


async def test_two_appends_racing_on_one_conversation_one_wins(log) -> None:
    a, b = await asyncio.gather(
        log.append("c", deltas(1, "ta"), 0, recorded_at=RECORDED_AT),
        log.append("c", deltas(1, "tb"), 0, recorded_at=RECORDED_AT),
        return_exceptions=True,
    )
    assert sorted(type(x).__name__ for x in (a, b)) == ["ConcurrencyError", "list"]
    winner = a if isinstance(a, list) else b
    assert await log.read("c") == winner


@pytest.mark.parametrize("size", [1, 7, 8, 9, 127, 128, 129, 137, 300])
async def test_a_batch_of_any_size_is_stored_whole_and_in_order(tmp_path: Path, size: int) -> None:
    # The SQLite log inserts up to 128 rows per statement (``_insert``): every size around its
    # shapes (128, 8, 1) stores each event once, in order, with its own columns.
    async with await SqliteEventLog.open(tmp_path / "t.db") as log:
        await log.append("before", deltas(3, "t0"), 0, recorded_at=RECORDED_AT)
        sealed = await log.append("s", deltas(size), 0, recorded_at=RECORDED_AT)
        assert await log.read("s", limit=size + 10) == sealed
        assert [r.event.text for r in sealed] == [f"d{i}" for i in range(size)]
        assert [r.position for r in await log.read_all(limit=size + 10)] == list(range(1, size + 4))
