"""The event-log contract (``turnlog.engine.testing.EventLogContract``) on every store turnlog
ships: in memory, SQLite and PostgreSQL. What only PostgreSQL has to prove is in test_postgres.py."""

from __future__ import annotations

import pytest
from turnlog.adapters.stores import PostgresEventLog, SqliteEventLog
from turnlog.engine import EventLog, InMemoryEventLog
from turnlog.engine.testing import EventLogContract


class TestInMemoryEventLog(EventLogContract):
    # One process, one object: it cannot be opened twice (open_again stays None).
    async def open_log(self) -> EventLog:
        return InMemoryEventLog()


class TestSqliteEventLog(EventLogContract):
    # Another handle on the same file is another connection pool, as another process would have;
    # it cannot wake this one's subscribers, which poll (wakes_other_instances stays False).
    async def open_log(self) -> EventLog:
        return await SqliteEventLog.open(self.tmp_path / "contract.db")

    async def open_again(self, log: EventLog) -> EventLog:
        return await SqliteEventLog.open(self.tmp_path / "contract.db")


@pytest.mark.postgres
class TestPostgresEventLog(EventLogContract):
    wakes_other_instances = True  # LISTEN/NOTIFY

    @pytest.fixture(autouse=True)
    def _schema(self, pg_schema_url: str) -> None:
        self.url = pg_schema_url  # a fresh migrated schema per test

    async def open_log(self) -> EventLog:
        return await PostgresEventLog.open(self.url)

    async def open_again(self, log: EventLog) -> EventLog:
        return await PostgresEventLog.open(self.url)
