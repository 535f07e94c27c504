"""The checkpoint contract (``turnlog.engine.testing.CheckpointContract``) on every store that
turnlog ships: in memory, SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from turnlog.adapters.stores import PostgresEventLog, SqliteEventLog
from turnlog.engine import EventLog, InMemoryEventLog
from turnlog.engine.testing import CheckpointContract


class TestInMemoryCheckpoints(CheckpointContract):
    async def open_log(self) -> EventLog:
        return InMemoryEventLog()


class TestSqliteCheckpoints(CheckpointContract):
    async def open_log(self) -> EventLog:
        return await SqliteEventLog.open(self.tmp_path / "contract.db")

    async def open_again(self, log: EventLog) -> EventLog:
        return await SqliteEventLog.open(self.tmp_path / "contract.db")


@pytest.mark.postgres
class TestPostgresCheckpoints(CheckpointContract):
    @pytest.fixture(autouse=True)
    def _schema(self, pg_schema_url: str) -> None:
        self.url = pg_schema_url

    async def open_log(self) -> EventLog:
        return await PostgresEventLog.open(self.url)

    async def open_again(self, log: EventLog) -> EventLog:
        return await PostgresEventLog.open(self.url)
