"""What only the PostgreSQL store has to prove: positions a follower never skips (the sequence-gap
problem), LISTEN/NOTIFY across processes and its loss, URLs, schema checks, cancellation."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import textwrap
import time

import asyncpg
import pytest
from turnlog.adapters.llm import ScriptedLLM
from turnlog.adapters.stores import HEAD_REVISION, SqlMessageStore, current_revision, parse_pg_url
from turnlog.adapters.stores._postgres import PostgresEventLog, lock_key
from turnlog.engine import (
    ConfigError,
    LogError,
    SchemaError,
    StoreUnavailable,
    TurnEngine,
    TurnInProgress,
    TurnRequest,
    replay,
    verify,
)
from turnlog.engine.testing import RECORDED_AT, deltas, take
from turnlog.projections import MessageRow

pytestmark = pytest.mark.postgres


@contextlib.asynccontextmanager
async def raw(url: str):
    target = parse_pg_url(url)
    conn = await asyncpg.connect(target.dsn, server_settings=target.server_settings)
    try:
        yield conn
    finally:
        await conn.close()


# -- the sequence-gap problem -------------------------------------------------------------------


async def test_a_sequence_alone_lets_a_follower_skip_an_event(pg_schema_url: str) -> None:
    """The hazard this store is built against, shown on a plain sequence-keyed table: the
    transaction that took position 1 commits after the one that took 2, and a reader following
    positions has already moved past 1 when it appears."""
    async with raw(pg_schema_url) as setup, raw(pg_schema_url) as t1, raw(pg_schema_url) as t2:
        await setup.execute("CREATE TABLE naive (position bigserial PRIMARY KEY, body text)")
        await t1.execute("BEGIN")
        await t1.execute("INSERT INTO naive (body) VALUES ('first')")  # takes position 1
        await t2.execute("BEGIN")
        await t2.execute("INSERT INTO naive (body) VALUES ('second')")  # takes position 2
        await t2.execute("COMMIT")
        seen = [r[0] for r in await setup.fetch("SELECT position FROM naive WHERE position > 0 ORDER BY position")]
        assert seen == [2]  # the follower now continues after 2 ...
        await t1.execute("COMMIT")
        later = [r[0] for r in await setup.fetch("SELECT position FROM naive WHERE position > 2 ORDER BY position")]
        assert later == []  # ... and never sees 1, committed afterwards
        assert await setup.fetchval("SELECT count(*) FROM naive") == 2


async def test_appends_wait_for_the_logs_lock(pg_schema_url: str) -> None:
    """The solution: every append takes the log's advisory lock before it reads max(position), so
    appends commit one at a time in position order. Held elsewhere, it holds appends back."""
    log = await PostgresEventLog.open(pg_schema_url)
    try:
        async with raw(pg_schema_url) as holder:
            await holder.execute("SELECT pg_advisory_lock($1)", lock_key(log.schema))
            pending = asyncio.create_task(log.append("a", deltas(2), 0, recorded_at=RECORDED_AT))
            await asyncio.sleep(0.2)
            assert not pending.done()
            await holder.execute("SELECT pg_advisory_unlock($1)", lock_key(log.schema))
            assert [r.position for r in await asyncio.wait_for(pending, 5)] == [1, 2]
    finally:
        await log.close()


async def test_a_follower_of_positions_never_skips_under_concurrent_writers(pg_schema_url: str) -> None:
    writers = [await PostgresEventLog.open(pg_schema_url) for _ in range(3)]
    follower = await PostgresEventLog.open(pg_schema_url)
    batches, streams = 15, 6
    total = sum(1 + i % 4 for i in range(batches)) * streams
    try:

        async def write(log: PostgresEventLog, stream: str) -> None:
            version = 0
            for i in range(batches):
                version = (await log.append(stream, deltas(1 + i % 4), version, recorded_at=RECORDED_AT))[-1].version

        async def follow() -> list[int]:
            seen: list[int] = []
            after = 0
            while len(seen) < total:
                for rec in await follower.read_all(after, limit=7):
                    # Never p + k before p: each page continues exactly where the last one ended.
                    assert rec.position == after + 1, (after, rec.position)
                    after = rec.position
                    seen.append(rec.position)
                await asyncio.sleep(0)
            return seen

        following = asyncio.create_task(follow())
        await asyncio.gather(*(write(writers[i % 3], f"s{i}") for i in range(streams)))
        assert await asyncio.wait_for(following, 10) == list(range(1, total + 1))
    finally:
        for log in [*writers, follower]:
            await log.close()


# -- LISTEN/NOTIFY ------------------------------------------------------------------------------

WRITER = textwrap.dedent(
    """
    import asyncio, sys
    from turnlog.engine._events import NewEvent, TextDelta
    from turnlog.adapters.stores._postgres import PostgresEventLog

    async def main(url):
        async with await PostgresEventLog.open(url) as log:
            for v in range(5):
                await log.append("a", [NewEvent(TextDelta(iteration=1, text=str(v)))], v, recorded_at="t")
                await asyncio.sleep(0.05)

    asyncio.run(main(sys.argv[1]))
    """
)


async def test_a_subscriber_is_woken_by_appends_from_another_process(pg_schema_url: str) -> None:
    log = await PostgresEventLog.open(pg_schema_url)
    log.poll_interval = 60  # only a notification can wake it in time
    try:
        reader = asyncio.create_task(take(log.subscribe("a"), 5, timeout=20))
        await asyncio.sleep(0.1)
        proc = await asyncio.to_thread(
            subprocess.run, [sys.executable, "-c", WRITER, pg_schema_url], capture_output=True, text=True, timeout=30
        )
        assert proc.returncode == 0, proc.stderr
        got = await reader
        assert [r.event.text for r in got] == ["0", "1", "2", "3", "4"]  # type: ignore[attr-defined]
    finally:
        await log.close()


async def test_listener_loss_falls_back_to_polling_and_reconnects(pg_schema_url: str) -> None:
    reader_log = await PostgresEventLog.open(pg_schema_url)
    writer_log = await PostgresEventLog.open(pg_schema_url)
    reader_log.poll_interval = 0.2
    received: list[int] = []

    async def follow() -> None:
        async for rec in reader_log.subscribe("a"):
            received.append(rec.version)

    async def wait_for(version: int, timeout: float) -> float:
        start = time.monotonic()
        async with asyncio.timeout(timeout):
            while version not in received:
                await asyncio.sleep(0.01)
        return time.monotonic() - start

    following = asyncio.create_task(follow())
    try:
        await asyncio.sleep(0.1)
        assert reader_log.listening
        async with raw(pg_schema_url) as admin:
            pid = reader_log._listener.get_server_pid()  # type: ignore[union-attr]
            assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
        await writer_log.append("a", deltas(1), 0, recorded_at=RECORDED_AT)
        await wait_for(1, 5)  # delivered while the listener was down or just back
        async with asyncio.timeout(5):
            while not reader_log.listening:
                await asyncio.sleep(0.01)
        reader_log.poll_interval = 60
        await asyncio.sleep(0.3)  # the subscriber's current wait (0.2 s) ends; the next is 60 s
        await writer_log.append("a", deltas(1), 1, recorded_at=RECORDED_AT)
        assert await wait_for(2, 5) < 2  # woken by the new listener, not by polling
        assert received == [1, 2]
    finally:
        following.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await following
        await reader_log.close()
        await writer_log.close()


# -- URLs and opening ---------------------------------------------------------------------------


async def test_every_url_form_reaches_the_same_log(pg_schema_url: str) -> None:
    rest = pg_schema_url.split("://", 1)[1]
    first = await PostgresEventLog.open("postgresql://" + rest)
    try:
        await first.append("a", deltas(1), 0, recorded_at=RECORDED_AT)
        for scheme in ("postgres://", "postgresql+asyncpg://"):
            async with await PostgresEventLog.open(scheme + rest) as other:
                assert [r.version for r in await other.read("a")] == [1]
                assert await other.streams() == ["a"]
    finally:
        await first.close()


async def test_schemas_keep_logs_apart(pg_schema_url: str, pg_url: str) -> None:
    async with await PostgresEventLog.open(pg_schema_url) as mine:
        await mine.append("a", deltas(1), 0, recorded_at=RECORDED_AT)
        assert mine.engine.dialect.name == "postgresql"
        async with raw(pg_url) as conn:
            schema = parse_pg_url(pg_schema_url).schema
            assert await conn.fetchval(f'SELECT count(*) FROM "{schema}".turnlog_events') == 1
            assert await conn.fetchval(
                "SELECT count(*) FROM pg_tables WHERE schemaname = $1 AND tablename = 'turnlog_alembic_version'", schema
            )


def test_bad_urls_are_refused_clearly() -> None:
    with pytest.raises(ConfigError, match="invalid schema name"):
        parse_pg_url("postgresql://h/db?schema=x;drop")
    with pytest.raises(ConfigError, match="not a PostgreSQL URL"):
        parse_pg_url("mysql://h/db")
    target = parse_pg_url("postgres://u:secret@h:5/db?sslmode=disable&schema=s1")
    assert target.dsn == "postgresql://u:secret@h:5/db?sslmode=disable" and target.schema == "s1"
    assert "secret" not in target.where and target.where == "postgresql://u:***@h:5/db?sslmode=disable?schema=s1"


async def test_unreachable_server_is_store_unavailable_without_the_password() -> None:
    with pytest.raises(StoreUnavailable) as info:
        await PostgresEventLog.open("postgresql://u:hunter2@127.0.0.1:1/db", connect_timeout=2)
    assert "hunter2" not in str(info.value) and "127.0.0.1:1" in str(info.value)


async def test_an_empty_schema_needs_create_or_upgrade(pg_empty_schema_url: str) -> None:
    with pytest.raises(SchemaError, match=r"no turnlog tables: run `turnlog db upgrade --db '"):
        await PostgresEventLog.open(pg_empty_schema_url)
    # Two servers racing to create one empty schema: the migration lock lets one do it.
    both = await asyncio.gather(*(PostgresEventLog.open(pg_empty_schema_url, create=True) for _ in range(2)))
    for log in both:
        await log.close()
    assert await current_revision(pg_empty_schema_url) == HEAD_REVISION


# -- failure in the middle ----------------------------------------------------------------------


async def test_an_append_cancelled_in_flight_writes_nothing_and_frees_its_connection(pg_schema_url: str) -> None:
    log = await PostgresEventLog.open(pg_schema_url, pool_size=1)
    try:
        async with raw(pg_schema_url) as holder:
            await holder.execute("SELECT pg_advisory_lock($1)", lock_key(log.schema))
            pending = asyncio.create_task(log.append("a", deltas(3), 0, recorded_at=RECORDED_AT))
            await asyncio.sleep(0.1)
            pending.cancel()
            with pytest.raises(asyncio.CancelledError):
                await pending
            await holder.execute("SELECT pg_advisory_unlock($1)", lock_key(log.schema))
        # The pool's only connection is back, outside any transaction, and nothing was written.
        assert await asyncio.wait_for(log.read("a"), 5) == []
        written = await asyncio.wait_for(log.append("a", deltas(1), 0, recorded_at=RECORDED_AT), 5)
        assert [r.version for r in written] == [1]
    finally:
        await log.close()


async def test_message_rows_saved_by_two_servers_at_once(pg_schema_url: str) -> None:
    one, two = await PostgresEventLog.open(pg_schema_url), await PostgresEventLog.open(pg_schema_url)
    try:
        stores = [SqlMessageStore(one.engine), SqlMessageStore(two.engine)]

        def row(content: str) -> MessageRow:
            return MessageRow("m1", "c1", "t1", 1, "assistant", content, None, None, "finalized", RECORDED_AT)

        await asyncio.gather(*(stores[i % 2].save("c1", [row(f"v{i}")], i) for i in range(10)))
        rows = await stores[0].rows("c1")
        assert len(rows) == 1 and rows[0].content.startswith("v")
        assert 0 <= await stores[1].applied_version("c1") < 10
    finally:
        await one.close()
        await two.close()


# -- two app servers over one log ---------------------------------------------------------------


async def test_turns_racing_across_two_servers_exactly_one_runs(pg_schema_url: str) -> None:
    servers = [await PostgresEventLog.open(pg_schema_url) for _ in range(2)]
    try:
        engines = [
            TurnEngine(
                log, ScriptedLLM([[{"text": "only one answer", "split": 3}]] * 10), messages=SqlMessageStore(log.engine)
            )
            for log in servers
        ]
        conv = await engines[0].create_conversation(model="m")

        async def start(i: int) -> str:
            try:
                return "ran:" + str(len([rec async for rec in engines[i % 2].run_turn(conv, TurnRequest(f"q{i}"))]))
            except TurnInProgress:
                return "refused"

        outcomes = await asyncio.gather(*(start(i) for i in range(12)))
        assert sum(o.startswith("ran:") for o in outcomes) == 1, outcomes
        assert outcomes.count("refused") == 11
        events = [rec async for rec in replay(servers[1], conv)]  # the fold rejects any interleaving
        assert len({e.turn_id for e in events if e.turn_id}) == 1
        assert (await verify(servers[0])).ok
    finally:
        for log in servers:
            await log.close()


async def test_close_ends_waiting_subscribers_and_refuses_further_use(pg_schema_url: str) -> None:
    log = await PostgresEventLog.open(pg_schema_url)
    log.poll_interval = 60
    waiting = asyncio.create_task(take(log.subscribe("a"), 1, timeout=10))
    await asyncio.sleep(0.1)
    await log.close()
    with pytest.raises(LogError, match="is closed"):
        await asyncio.wait_for(waiting, 2)  # promptly, not after the 60 s poll
    with pytest.raises(LogError, match="is closed"):
        await log.append("a", deltas(1), 0, recorded_at=RECORDED_AT)
    with pytest.raises(LogError, match="is closed"):
        await log.read_all()
    await log.close()  # idempotent
