"""Reads of a whole conversation stream in bounded pages: the log's checked pages (one page read
ahead, never more), ``turnlog replay`` and ``GET .../events`` never hold the conversation."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from turnlog.adapters.cli import main
from turnlog.adapters.llm import EchoLLM
from turnlog.adapters.server import ServerConfig, TurnService, create_app
from turnlog.adapters.stores import SqliteEventLog
from turnlog.engine import IntegrityError, Recorded, load, load_rows, replay
from turnlog.engine._log import STREAM_PAGE
from turnlog.projections import MemoryMessageStore, project

from .conftest import AT, CountingLog, turn_events

DELTAS = 2 * STREAM_PAGE + 500  # three pages and a bit


async def long_log() -> tuple[CountingLog, str]:
    log = CountingLog()
    await log.append("c1", turn_events(DELTAS), 0, recorded_at=AT)
    log.reads.clear()
    return log, "c1"


async def test_checked_pages_are_bounded_and_read_one_ahead() -> None:
    log, conv = await long_log()
    total = 0
    async for page in log.iter_pages(conv):
        assert 0 < len(page) <= STREAM_PAGE
        total += len(page)
        log.handed = page[-1].version
        await asyncio.sleep(0)  # the read ahead runs while the consumer works
    assert total == DELTAS + 5
    # Every read asks for one page, and is made at most one page ahead of what the consumer has.
    assert {limit for _, limit, _, _ in log.reads} == {STREAM_PAGE}
    for after, _, _, handed in log.reads:
        assert after - handed <= STREAM_PAGE
    assert len(log.reads) == (DELTAS + 5) // STREAM_PAGE + 1


async def test_a_reader_that_stops_early_leaves_no_read_behind() -> None:
    log, conv = await long_log()
    async with contextlib.aclosing(log.iter_pages(conv)) as pages:
        first = await anext(pages)
    assert len(first) == STREAM_PAGE
    await asyncio.sleep(0.01)  # a cancelled read ahead is collected (warnings are errors here)
    assert len(log.reads) <= 2


async def test_a_changed_event_stops_the_pages_before_its_own() -> None:
    log, conv = await long_log()
    raw = log._raw(conv)
    broken = STREAM_PAGE + 10  # in the second page
    rec = raw[broken - 1]
    raw[broken - 1] = load_rows(
        [(*[getattr(rec, f) for f in rec.__struct_fields__[:9]], rec.payload.replace(b"w", b"W"))]
    )[0]
    seen = []
    with pytest.raises(IntegrityError) as err:
        async for page in log.iter_pages(conv):
            seen += page
    assert err.value.version == broken
    assert len(seen) == STREAM_PAGE  # the first page only: nothing of the broken page is served


def test_turnlog_replay_streams_the_frames_in_pages(
    tmp_path: Path, capfdbinary: pytest.CaptureFixture[bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "t.db"

    async def write() -> list:
        async with await SqliteEventLog.open(db) as log:
            await log.append("c1", turn_events(DELTAS), 0, recorded_at=AT)
            return [rec async for rec in replay(log, "c1")]

    events = asyncio.run(write())
    limits: list[int] = []
    read = SqliteEventLog.read

    async def counted(self: SqliteEventLog, stream_id: str, after_version: int = 0, limit: int = 1000) -> list:
        limits.append(limit)
        return await read(self, stream_id, after_version, limit)

    monkeypatch.setattr(SqliteEventLog, "read", counted)
    assert main(["replay", "c1", "--db", str(db)]) == 0
    assert capfdbinary.readouterr().out == b"".join(project(events, "delta"))
    assert max(limits) <= STREAM_PAGE and len(limits) >= (DELTAS + 5) // STREAM_PAGE
    limits.clear()
    assert main(["replay", "c1", "--db", str(db), "--format", "messages"]) == 0
    rows = capfdbinary.readouterr().out.decode()
    assert "".join(f"w{i} " for i in range(DELTAS)) in rows
    assert max(limits) <= STREAM_PAGE


@contextlib.asynccontextmanager
async def serving(service: TurnService) -> AsyncIterator[str]:
    config = uvicorn.Config(create_app(service), host="127.0.0.1", port=0, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    task = asyncio.get_running_loop().create_task(server.serve())
    while not server.started:
        assert not task.done()
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    finally:
        server.should_exit = True
        await task


async def test_get_events_reads_the_conversation_in_pages() -> None:
    log, conv = await long_log()
    events = [rec async for rec in replay(log, conv)]
    log.reads.clear()
    service = TurnService(log, MemoryMessageStore(), EchoLLM(), config=ServerConfig(recover_grace=0.0))
    async with serving(service) as url, httpx.AsyncClient(base_url=url) as client:
        r = await client.get(f"/conversations/{conv}/events?mode=delta")
    assert r.status_code == 200
    assert r.content.endswith(b"".join(project(events, "delta")))
    # Replayed in pages (and then the follow's own pages): no read asks for the whole conversation.
    assert len(log.reads) >= (DELTAS + 5) // STREAM_PAGE
    assert max(limit for _, limit, _, _ in log.reads) <= STREAM_PAGE


async def test_load_rows_is_load_for_a_page() -> None:
    log, conv = await long_log()
    recs = await log.read(conv, 0, 50)
    fields = Recorded.__struct_fields__
    rows = [tuple(getattr(r, f) for f in fields if f != "event") for r in recs]
    assert load_rows(rows) == [load(*row) for row in rows] == recs


async def test_a_sqlite_reader_that_stops_early_leaves_the_log_usable(tmp_path: Path) -> None:
    async with await SqliteEventLog.open(tmp_path / "t.db") as log:
        await log.append("c1", turn_events(DELTAS), 0, recorded_at=AT)
        for _ in range(3):
            async with contextlib.aclosing(log.iter_pages("c1")) as pages:
                assert len(await anext(pages)) == STREAM_PAGE
        # The cancelled reads ahead gave their connections back: whole reads still work.
        assert sum([len(page) async for page in log.iter_pages("c1")]) == DELTAS + 5
        await asyncio.sleep(0.05)
