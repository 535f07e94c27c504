"""Shared fixtures: every scenario runs on each event log the engine supports.

PostgreSQL: ``pg_url`` is the server (``TURNLOG_TEST_PG_URL``, default the local test database);
when it cannot be reached the test is skipped with the reason, except under ``CI=true``, where
a missing database is a failure. ``pg_schema_url`` gives each test its own migrated schema
(``...?schema=NAME``, dropped afterwards), so tests never see each other's rows;
``pg_empty_schema_url`` the same without the migrations.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import uuid
from collections.abc import AsyncIterator, Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import pytest
from turnlog.adapters.stores import SqlMessageStore, open_store, parse_pg_url, upgrade
from turnlog.engine import EventLog, InMemoryEventLog, TurnStarted
from turnlog.projections import MemoryMessageStore, MessageStore

DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
STORES = ["memory", "sqlite", "postgres"]
T = TypeVar("T")


@dataclass
class StoreUnderTest:
    name: str
    log: EventLog
    messages: MessageStore

    def fresh_messages(self) -> MessageStore:
        """An empty message store of the same kind, for rebuilds."""
        if isinstance(self.messages, SqlMessageStore):
            return self.messages  # rebuild() clears it first
        return MemoryMessageStore()


def _run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion from sync code, even when called from inside a running loop
    (an async fixture that asks for a sync one): on a fresh loop in a worker thread."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def _pg_unreachable(url: str) -> str | None:
    async def probe() -> None:
        conn = await asyncpg.connect(parse_pg_url(url).dsn, timeout=3)
        await conn.close()

    try:
        _run(probe())
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


@pytest.fixture(scope="session")
def pg_url() -> str:
    """The PostgreSQL server for tests; skip (fail under CI=true) when it is unreachable."""
    url = os.environ.get("TURNLOG_TEST_PG_URL", DEFAULT_PG_URL)
    why = _pg_unreachable(url)
    if why is not None:
        message = f"PostgreSQL unreachable at {parse_pg_url(url).where}: {why}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return url


def _with_schema(url: str, schema: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}schema={schema}"


async def _drop_schema(url: str, schema: str) -> None:
    conn = await asyncpg.connect(parse_pg_url(url).dsn, timeout=5)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


@pytest.fixture
def pg_empty_schema_url(pg_url: str) -> Iterator[str]:
    """A URL naming a fresh, empty schema (created by whoever migrates it); dropped afterwards."""
    schema = f"t_{uuid.uuid4().hex[:16]}"
    try:
        yield _with_schema(pg_url, schema)
    finally:
        _run(_drop_schema(pg_url, schema))


@pytest.fixture
def pg_schema_url(pg_empty_schema_url: str) -> str:
    """A URL naming a fresh schema migrated to the current revision: `PostgresEventLog.open` and
    `turnlog serve --db` accept it as is. The schema is dropped after the test."""
    _run(upgrade(pg_empty_schema_url))
    return pg_empty_schema_url


def _store_params() -> list:
    return [pytest.param(k, marks=pytest.mark.postgres) if k == "postgres" else k for k in STORES]


@pytest.fixture(params=_store_params())
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StoreUnderTest]:
    """An event log and its message rows, of each kind: SQLite and PostgreSQL come from
    ``open_store`` (as the CLI and the server open them), memory is the reference pair."""
    if request.param == "memory":
        log, messages = InMemoryEventLog(), MemoryMessageStore()
    else:
        db = tmp_path / "turnlog.db" if request.param == "sqlite" else request.getfixturevalue("pg_schema_url")
        # Encrypted, as shipped; ``@pytest.mark.unencrypted``: a test that forges clear payloads.
        log, messages = await open_store(db, encryption=request.node.get_closest_marker("unencrypted") is None)
    try:
        yield StoreUnderTest(request.param, log, messages)
    finally:
        await log.close()


def turn_started(**changes: Any) -> TurnStarted:
    """A TurnStarted for tests that write events by hand (folds, forged logs); ``changes`` override."""
    fields: dict[str, Any] = {
        "user_message": "hi",
        "user_message_id": "m1",
        "assistant_message_id": "m2",
        "provider": "p",
        "model": "m",
        "temperature": None,
        "max_tokens": None,
        "thinking": False,
        "tools": [],
        "system_prompt": None,
        "max_iterations": 5,
        "permission_level": 1,
    }
    return TurnStarted(**(fields | changes))
