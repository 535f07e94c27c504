"""The row-store and conversation-index contracts on every store turnlog ships: in memory, and in
SQL beside the log on SQLite and PostgreSQL (opened by ``open_store``, as the CLI and the server
open them). The row-store contract itself runs in tests/contract; here the index's."""

from __future__ import annotations

import pytest
from turnlog.adapters.stores import open_store
from turnlog.engine import EventLog, InMemoryEventLog
from turnlog.projections import MemoryMessageStore, MessageStore
from turnlog.projections.testing import ConversationIndexContract


class TestMemoryConversationIndex(ConversationIndexContract):
    async def open_rows(self) -> tuple[EventLog, MessageStore]:
        return InMemoryEventLog(), MemoryMessageStore()


class TestSqliteConversationIndex(ConversationIndexContract):
    async def open_rows(self) -> tuple[EventLog, MessageStore]:
        return await open_store(self.tmp_path / "index.db")


@pytest.mark.postgres
class TestPostgresConversationIndex(ConversationIndexContract):
    @pytest.fixture(autouse=True)
    def _schema(self, pg_schema_url: str) -> None:
        self.url = pg_schema_url

    async def open_rows(self) -> tuple[EventLog, MessageStore]:
        return await open_store(self.url)
