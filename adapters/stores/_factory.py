"""One way to open a store from a URL or a path: the CLI, the server, the tests and users call it.

    store = await open_store("turnlog.db")                      # SQLite (the embedded default)
    store = await open_store("postgresql://user@host/db")       # PostgreSQL (migrated first)
    engine = TurnEngine(store.log, llm, messages=store.messages)
    ...
    await store.close()

The message rows live beside the log, in the same database.
"""

from __future__ import annotations

from pathlib import Path
from types import TracebackType
from typing import NamedTuple

from turnlog.engine import EventLog
from turnlog.projections import MessageStore

from ._postgres import PostgresEventLog
from ._rows import SqlMessageStore
from ._sqlite import SqliteEventLog
from ._urls import is_pg_url


class Store(NamedTuple):
    """An event log and the message rows kept beside it (unpacks as ``log, messages``)."""

    log: EventLog
    messages: MessageStore

    async def close(self) -> None:
        await self.log.close()

    async def __aenter__(self) -> Store:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()


async def open_store(db: str | Path, *, create: bool = True) -> Store:
    """The store for a ``--db`` value: a ``postgresql://`` URL (its schema must be migrated:
    ``turnlog db upgrade``) or a SQLite file path (an empty or missing file is created and
    migrated when ``create`` is true)."""
    if isinstance(db, str) and is_pg_url(db):
        pg = await PostgresEventLog.open(db)
        return Store(pg, SqlMessageStore(pg.engine))
    lite = await SqliteEventLog.open(db, create=create)
    return Store(lite, SqlMessageStore(lite.writer))
