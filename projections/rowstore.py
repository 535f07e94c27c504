"""Where the message rows live: in memory (tests) or in SQL beside the event log.

Rows are a projection: ``rebuild`` recomputes every row from the log, and each store remembers
how far it has applied each conversation (``applied_version``) so the engine can catch a
conversation up after a crash between an event's commit and its rows' write.
"""

from __future__ import annotations

import abc
import functools
from collections.abc import Sequence

import msgspec
from sqlalchemy import Table, delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql.dml import Insert
from turnlog.engine.log import EventLog
from turnlog.engine.schema import messages as messages_table
from turnlog.engine.schema import projection_state

from .messages import MessageFold, MessageRow


class MessageStore(abc.ABC):
    @abc.abstractmethod
    async def save(self, conversation_id: str, rows: Sequence[MessageRow], version: int) -> None:
        """Upsert rows (by id) and record that the conversation is applied up to ``version``."""

    @abc.abstractmethod
    async def rows(self, conversation_id: str) -> list[MessageRow]:
        """The conversation's rows in ``seq`` order."""

    @abc.abstractmethod
    async def applied_version(self, conversation_id: str) -> int: ...

    @abc.abstractmethod
    async def clear(self) -> None: ...

    async def live_conversations(self) -> list[str]:
        """Conversations with a row of status ``live`` (a turn started and not ended, as far as
        the rows know): the cheap candidate list of the server's recovery sweep. A store that
        cannot answer raises NotImplementedError and the sweep examines every conversation."""
        raise NotImplementedError


class MemoryMessageStore(MessageStore):
    def __init__(self) -> None:
        self._rows: dict[str, dict[str, MessageRow]] = {}
        self._versions: dict[str, int] = {}

    async def save(self, conversation_id: str, rows: Sequence[MessageRow], version: int) -> None:
        conv = self._rows.setdefault(conversation_id, {})
        for row in rows:
            conv[row.id] = row
        self._versions[conversation_id] = version

    async def rows(self, conversation_id: str) -> list[MessageRow]:
        return sorted(self._rows.get(conversation_id, {}).values(), key=lambda r: r.seq)

    async def applied_version(self, conversation_id: str) -> int:
        return self._versions.get(conversation_id, 0)

    async def clear(self) -> None:
        self._rows.clear()
        self._versions.clear()

    async def live_conversations(self) -> list[str]:
        return [c for c, rows in self._rows.items() if any(r.status == "live" for r in rows.values())]


@functools.cache
def _upsert(dialect: str, table: Table) -> Insert:
    """INSERT ... ON CONFLICT (primary key) DO UPDATE every other column (SQLite and PostgreSQL).
    Built once per dialect and table: building it costs more than running it (~1.5 ms per turn)."""
    stmt = (pg_insert if dialect == "postgresql" else sqlite_insert)(table)
    key = [c.name for c in table.primary_key]
    return stmt.on_conflict_do_update(
        index_elements=key, set_={c.name: stmt.excluded[c.name] for c in table.c if c.name not in key}
    )


class SqlMessageStore(MessageStore):
    """Rows in ``turnlog_messages`` of the same database as the log (SQLite or PostgreSQL)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def save(self, conversation_id: str, rows: Sequence[MessageRow], version: int) -> None:
        # Upserts, not delete-then-insert: on PostgreSQL two servers saving one conversation at
        # once (a turn's end and another server's catch-up) would both delete nothing and then
        # collide on the primary key; ON CONFLICT makes the later write win instead.
        async with self.engine.begin() as conn:
            if rows:
                await conn.execute(
                    _upsert(conn.dialect.name, messages_table), [msgspec.structs.asdict(r) for r in rows]
                )
            await conn.execute(
                _upsert(conn.dialect.name, projection_state), {"conversation_id": conversation_id, "version": version}
            )

    async def rows(self, conversation_id: str) -> list[MessageRow]:
        async with self.engine.connect() as conn:
            result = await conn.execute(
                select(*[messages_table.c[f] for f in MessageRow.__struct_fields__])
                .where(messages_table.c.conversation_id == conversation_id)
                .order_by(messages_table.c.seq)
            )
            return [MessageRow(*r) for r in result.all()]

    async def applied_version(self, conversation_id: str) -> int:
        async with self.engine.connect() as conn:
            result = await conn.execute(
                select(projection_state.c.version).where(projection_state.c.conversation_id == conversation_id)
            )
            return result.scalar() or 0

    async def live_conversations(self) -> list[str]:
        # Two rows per turn: scanning them is far cheaper than asking the log about every stream.
        async with self.engine.connect() as conn:
            result = await conn.execute(
                select(messages_table.c.conversation_id).where(messages_table.c.status == "live").distinct()
            )
            return [r[0] for r in result.all()]

    async def clear(self) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(delete(messages_table))
            await conn.execute(delete(projection_state))


async def catch_up(log: EventLog, store: MessageStore, conversation_id: str) -> int:
    """Bring one conversation's rows up to the log's head. Returns the number of rows written."""
    fold = MessageFold(conversation_id)
    changed: dict[str, MessageRow] = {}
    async for rec in log.iter_stream(conversation_id):
        for row in fold.apply(rec):
            changed[row.id] = row
    await store.save(conversation_id, list(changed.values()), fold.version)
    return len(changed)


async def rebuild(log: EventLog, store: MessageStore) -> int:
    """Drop every row and recompute them all from the log. Returns the number of rows."""
    await store.clear()
    total = 0
    for conversation_id in await log.streams():
        total += await catch_up(log, store, conversation_id)
    return total
