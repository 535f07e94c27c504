"""The store contract suite's fixtures: one log per test on memory, SQLite and PostgreSQL.

``logs`` opens handles on one fresh database: ``await logs.open()`` twice gives two independent
instances (two connection pools, as two app servers would have) over the same data. The
in-memory log cannot be shared between instances, so there both handles are the same object.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from turnlog.adapters.stores import PostgresEventLog, SqliteEventLog
from turnlog.engine import EventLog, InMemoryEventLog, NewEvent, TextDelta

RECORDED_AT = "2026-01-01T00:00:00.000000Z"


class Logs:
    def __init__(self, kind: str, where: str) -> None:
        self.kind = kind
        self.where = where
        self.opened: list[EventLog] = []
        self._memory: InMemoryEventLog | None = None

    @property
    def shared(self) -> bool:
        """True when two handles are two instances over one database (not memory)."""
        return self.kind != "memory"

    async def open(self) -> EventLog:
        if self.kind == "memory":
            if self._memory is None:
                self._memory = InMemoryEventLog()
                self.opened.append(self._memory)
            return self._memory
        log: EventLog
        if self.kind == "sqlite":
            log = await SqliteEventLog.open(self.where)
        else:
            log = await PostgresEventLog.open(self.where)
        self.opened.append(log)
        return log

    async def close_all(self) -> None:
        for log in self.opened:
            await log.close()


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def logs(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Logs]:
    if request.param == "memory":
        where = ""
    elif request.param == "sqlite":
        where = str(tmp_path / f"contract-{uuid.uuid4().hex[:8]}.db")
    else:
        where = request.getfixturevalue("pg_schema_url")
    factory = Logs(request.param, where)
    try:
        yield factory
    finally:
        await factory.close_all()


@pytest.fixture
async def log(logs: Logs) -> EventLog:
    return await logs.open()


def deltas(n: int, *, text: str = "tok", turn: str = "turn-1", start: int = 0) -> list[NewEvent]:
    return [NewEvent(TextDelta(iteration=1, text=f"{text}{start + i}"), turn) for i in range(n)]
