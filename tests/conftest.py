"""Shared fixtures: every scenario runs on each event log the engine supports."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from turnlog.engine.log import EventLog
from turnlog.engine.memory import InMemoryEventLog
from turnlog.engine.sqlite import SqliteEventLog
from turnlog.projections.rowstore import MemoryMessageStore, MessageStore, SqlMessageStore


@dataclass
class Store:
    name: str
    log: EventLog
    messages: MessageStore

    def fresh_messages(self) -> MessageStore:
        """An empty message store of the same kind, for rebuilds."""
        if isinstance(self.messages, SqlMessageStore):
            return self.messages  # rebuild() clears it first
        return MemoryMessageStore()


@pytest.fixture(params=["memory", "sqlite"])
async def store(request: pytest.FixtureRequest, tmp_path) -> AsyncIterator[Store]:
    if request.param == "memory":
        yield Store("memory", InMemoryEventLog(), MemoryMessageStore())
        return
    log = await SqliteEventLog.open(tmp_path / "turnlog.db")
    try:
        yield Store("sqlite", log, SqlMessageStore(log.writer))
    finally:
        await log.close()
