"""The message rows in SQL, in ``turnlog_messages`` beside the event log (SQLite or PostgreSQL),
and the conversation summaries a batch changed, in the same transaction."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import NamedTuple

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncEngine
from turnlog.projections import ConversationSummary, MessageRow, MessageStore

from ._conversations import SqlConversationIndex, summary_params, upsert_summary
from ._engines import driver
from ._schema import messages as messages_table
from ._schema import projection_state
from ._usage import SqlUsageLedger

_ROW_FIELDS = MessageRow.__struct_fields__


class _Statements(NamedTuple):
    postgres: bool
    upsert_rows: str
    upsert_state: str
    select_rows: str
    select_page: str
    select_version: str


@functools.cache
def _statements(dialect: str) -> _Statements:
    """The row store's SQL for one dialect (``?`` or ``$n`` placeholders), built once.
    Every scenario test on SQLite and PostgreSQL runs them (live rows == rows rebuilt)."""
    pg = dialect == "postgresql"

    def marks(n: int, start: int = 1) -> str:
        return ", ".join(f"${i}" if pg else "?" for i in range(start, start + n))

    cols = ", ".join(_ROW_FIELDS)
    updates = ", ".join(f"{c} = excluded.{c}" for c in _ROW_FIELDS if c != "id")
    return _Statements(
        postgres=pg,
        upsert_rows=f"INSERT INTO {messages_table.name} ({cols}) VALUES ({marks(len(_ROW_FIELDS))}) "
        f"ON CONFLICT (id) DO UPDATE SET {updates}",
        upsert_state=f"INSERT INTO {projection_state.name} (conversation_id, version) VALUES ({marks(2)}) "
        "ON CONFLICT (conversation_id) DO UPDATE SET version = excluded.version",
        select_rows=f"SELECT {cols} FROM {messages_table.name} WHERE conversation_id = {marks(1)} ORDER BY seq",
        select_page=f"SELECT {cols} FROM {messages_table.name} WHERE conversation_id = {marks(1)} "
        f"AND seq > {marks(1, 2)} ORDER BY seq LIMIT {marks(1, 3)}",
        select_version=f"SELECT version FROM {projection_state.name} WHERE conversation_id = {marks(1)}",
    )


class SqlMessageStore(MessageStore):
    """Rows in ``turnlog_messages`` of the same database as the log (SQLite or PostgreSQL), and
    the conversation summaries beside them (``conversations``: by default a
    ``SqlConversationIndex`` on the same engine), and the usage ledger (``usage``)."""

    def __init__(
        self,
        engine: AsyncEngine,
        conversations: SqlConversationIndex | None = None,
        usage: SqlUsageLedger | None = None,
    ) -> None:
        self.engine = engine
        self.conversations: SqlConversationIndex = conversations or SqlConversationIndex(engine)
        #: The usage ledger (``turnlog_usage``), kept by the rows' sink: by default on the same engine.
        self.usage: SqlUsageLedger = usage or SqlUsageLedger(engine)

    async def save(self, conversation_id: str, rows: Sequence[MessageRow], version: int) -> None:
        await self.save_changes(conversation_id, rows, None, version)

    async def save_changes(
        self, conversation_id: str, rows: Sequence[MessageRow], summary: ConversationSummary | None, version: int
    ) -> None:
        # Upserts, not delete-then-insert: on PostgreSQL two servers saving one conversation at
        # once (a turn's end and another server's catch-up) would both delete nothing and then
        # collide on the primary key; ON CONFLICT makes the later write win instead.
        # Plain SQL on the driver connection SQLAlchemy's pool hands out (as the log's append
        # does): two saves per turn through the dialect cost ~2 ms each, this a fraction of it.
        # The summary rides in the same transaction: no second commit (a sync on SQLite FULL).
        if summary is not None and self.conversations.engine is not self.engine:
            await self.save_changes(conversation_id, rows, None, version)  # another database's index
            await self.conversations.save(summary)
            return
        sql = _statements(self.engine.dialect.name)
        params = [tuple(getattr(r, f) for f in _ROW_FIELDS) for r in rows]
        upsert = upsert_summary(self.engine.dialect.name) if summary is not None else ""
        async with driver(self.engine) as db:
            if sql.postgres:
                async with db.transaction():
                    if params:
                        await db.executemany(sql.upsert_rows, params)
                    await db.execute(sql.upsert_state, conversation_id, version)
                    if summary is not None:
                        await db.execute(upsert, *summary_params(summary))
                return
            await db.execute("BEGIN IMMEDIATE")
            try:
                if params:
                    await db.executemany(sql.upsert_rows, params)
                await db.execute(sql.upsert_state, (conversation_id, version))
                if summary is not None:
                    await db.execute(upsert, summary_params(summary))
                await db.commit()
            except BaseException:
                await db.rollback()
                raise

    async def rows_page(self, conversation_id: str, after_seq: int, limit: int) -> list[MessageRow]:
        # One range of the (conversation_id, seq) index: a page costs its own rows, wherever it is.
        sql = _statements(self.engine.dialect.name)
        async with driver(self.engine) as db:
            if sql.postgres:
                found = await db.fetch(sql.select_page, conversation_id, after_seq, limit)
            else:
                found = await db.execute_fetchall(sql.select_page, (conversation_id, after_seq, limit))
            return [MessageRow(*r) for r in found]

    async def rows(self, conversation_id: str) -> list[MessageRow]:
        sql = _statements(self.engine.dialect.name)
        async with driver(self.engine) as db:
            if sql.postgres:
                found = await db.fetch(sql.select_rows, conversation_id)
            else:
                found = await db.execute_fetchall(sql.select_rows, (conversation_id,))
            return [MessageRow(*r) for r in found]

    async def applied_version(self, conversation_id: str) -> int:
        sql = _statements(self.engine.dialect.name)
        async with driver(self.engine) as db:
            if sql.postgres:
                return await db.fetchval(sql.select_version, conversation_id) or 0
            found = await db.execute_fetchall(sql.select_version, (conversation_id,))
            return found[0][0] if found else 0

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
