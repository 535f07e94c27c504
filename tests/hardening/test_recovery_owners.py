"""Recovery by owner (issue 13, item 10), in one process on each store: a live turn whose server
is gone ends at once, whatever the grace; one whose server holds its id is never swept, however
quiet; an unowned one still waits for the grace. Servers are ``TurnService``s; a crashed server's
turn is written straight into the log (its process is gone: nothing else of it remains)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from turnlog.adapters.llm import EchoLLM
from turnlog.adapters.server import ServerConfig, TurnService
from turnlog.adapters.stores import presence_of
from turnlog.engine import (
    ConfigError,
    IterationStarted,
    NewEvent,
    TextDelta,
    TurnEngine,
    TurnFailed,
    TurnStarted,
)

from ..conftest import StoreUnderTest


def ago(seconds: float) -> str:
    return (datetime.now(UTC) - timedelta(seconds=seconds)).isoformat(timespec="microseconds").replace("+00:00", "Z")


async def orphan(store: StoreUnderTest, owner: str, *, age: float = 0.0) -> str:
    """A conversation whose turn, run by ``owner``, was left live ``age`` seconds ago."""
    conv = await TurnEngine(store.log, EchoLLM()).create_conversation()
    started = TurnStarted("hi", "m1", "m2", "scripted", "", None, None, False, [], None, 20, owner=owner)
    events = [NewEvent(started, "turn_1"), NewEvent(IterationStarted(1, "0" * 64), "turn_1")]
    events.append(NewEvent(TextDelta(1, "partial"), "turn_1"))
    await store.log.append(conv, events, 1, recorded_at=ago(age))
    return conv


def service(store: StoreUnderTest, **config: object) -> TurnService:
    return TurnService(store.log, store.messages, EchoLLM(), config=ServerConfig(**config))


async def last_event(store: StoreUnderTest, conv: str) -> object:
    return (await store.log.last(conv)).event


async def test_an_orphan_whose_server_is_gone_ends_at_start_without_the_grace(store: StoreUnderTest) -> None:
    conv = await orphan(store, "crashed-server")
    server = service(store)  # the default grace: 60 s
    await server.start()
    try:
        failed = await last_event(store, conv)
        assert isinstance(failed, TurnFailed) and failed.reason == "interrupted"
        rows = await store.messages.rows(conv)
        assert rows[-1].status == "failed" and "partial" in rows[-1].content, "partial output kept"
    finally:
        await server.stop()


async def test_restarting_with_the_same_id_ends_its_earlier_turns_at_once(store: StoreUnderTest) -> None:
    conv = await orphan(store, "web-1")
    server = service(store, server_id="web-1")
    await server.start()
    try:
        assert isinstance(await last_event(store, conv), TurnFailed)
    finally:
        await server.stop()


async def test_a_turn_whose_server_holds_its_id_is_never_swept_however_quiet(store: StoreUnderTest) -> None:
    alive = presence_of(store.log)
    await alive.hold("web-a")
    conv = await orphan(store, "web-a", age=120)  # quiet for two minutes, twice the grace below
    server = service(store, server_id="web-b", recover_grace=0.2)
    await server.start()
    try:
        await asyncio.sleep(0.8)  # start and three sweeps
        assert isinstance(await last_event(store, conv), TextDelta), "web-a runs it: not swept"
        await alive.release()  # web-a is gone
        for _ in range(50):
            if isinstance(await last_event(store, conv), TurnFailed):
                break
            await asyncio.sleep(0.1)
        failed = await last_event(store, conv)
        assert isinstance(failed, TurnFailed) and failed.reason == "interrupted"
    finally:
        await server.stop()
        await alive.release()


async def test_an_unowned_orphan_still_waits_for_the_grace(store: StoreUnderTest) -> None:
    conv = await orphan(store, "")  # a turn run outside a server (turnlog chat, a library engine)
    server = service(store)
    await server.start()
    try:
        assert isinstance(await last_event(store, conv), TextDelta), "it may run elsewhere: spared for 60 s"
    finally:
        await server.stop()
    server = service(store, recover_grace=0.0)  # one server, said so: recovered at start
    await server.start()
    await server.stop()
    assert isinstance(await last_event(store, conv), TurnFailed)


async def test_a_second_server_with_a_running_servers_id_refuses_to_start(store: StoreUnderTest) -> None:
    first = service(store, server_id="web-1")
    await first.start()
    try:
        conv = await orphan(store, "web-1")  # a turn web-1 runs
        second = service(store, server_id="web-1")
        with pytest.raises(ConfigError, match="server id 'web-1' is held by another running server"):
            await second.start()
        assert isinstance(await last_event(store, conv), TextDelta), "the second server swept nothing"
        assert not second.started
    finally:
        await first.stop()
    # Once the first has stopped, the id is free again.
    again = service(store, server_id="web-1")
    await again.start()
    await again.stop()


async def test_presence_tells_held_from_free(store: StoreUnderTest) -> None:
    one, other = presence_of(store.log), presence_of(store.log)
    assert await other.running("web-1") is False
    await one.hold("web-1")
    try:
        assert await other.running("web-1") is True
        assert await other.running("web-2") is False
    finally:
        await one.release()
    assert await other.running("web-1") is False


@pytest.mark.postgres
async def test_a_server_whose_lock_connection_is_lost_holds_its_id_again(
    pg_schema_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncpg
    from turnlog.adapters.stores import PostgresEventLog, _presence, parse_pg_url

    monkeypatch.setattr(_presence, "PING_S", 0.1)
    async with await PostgresEventLog.open(pg_schema_url) as log:
        held, other = presence_of(log), presence_of(log)
        await held.hold("web-1")
        try:
            lost = held._conn.get_server_pid()
            conn = await asyncpg.connect(parse_pg_url(pg_schema_url).dsn)
            try:
                await conn.execute("SELECT pg_terminate_backend($1)", lost)
            finally:
                await conn.close()
            for _ in range(50):
                await asyncio.sleep(0.1)
                if held._conn is not None and held._conn.get_server_pid() != lost:
                    break
            assert held._conn.get_server_pid() != lost, "a new connection"
            assert await other.running("web-1") is True, "the id is held again"
        finally:
            await held.release()
        assert await other.running("web-1") is False
