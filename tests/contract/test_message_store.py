"""The row-store contract (``turnlog.projections.testing.MessageStoreContract``) on every row
store turnlog ships: in memory, and SQL beside the log on SQLite and on PostgreSQL (opened by
``open_store``, as the CLI and the server open them)."""

from __future__ import annotations

import pytest
from turnlog.adapters.stores import open_store
from turnlog.engine import EventLog, InMemoryEventLog
from turnlog.projections import MemoryMessageStore, MessageStore
from turnlog.projections.testing import MessageStoreContract


class TestMemoryMessageStore(MessageStoreContract):
    async def open_rows(self) -> tuple[EventLog, MessageStore]:
        return InMemoryEventLog(), MemoryMessageStore()


class TestSqliteMessageStore(MessageStoreContract):
    async def open_rows(self) -> tuple[EventLog, MessageStore]:
        return await open_store(self.tmp_path / "rows.db")


@pytest.mark.postgres
class TestPostgresMessageStore(MessageStoreContract):
    @pytest.fixture(autouse=True)
    def _schema(self, pg_schema_url: str) -> None:
        self.url = pg_schema_url

    async def open_rows(self) -> tuple[EventLog, MessageStore]:
        return await open_store(self.url)
