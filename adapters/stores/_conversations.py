"""The conversation summaries in SQL, in ``turnlog_conversations`` beside the log and the rows.

A summary is written with the rows its batch changed, in the same transaction
(``SqlMessageStore.save_changes`` runs ``upsert_summary``), so the list never disagrees with the
rows about a turn. A list page is one range of one index: ``(tenant, subject, updated_at, id)``
for a subject's conversations, ``(tenant, updated_at, id)`` for the whole tenant's; a principal
who reads two subjects' (its own and the tenant's shared ones, subject ``""``) gets two ranges of
at most ``limit`` rows each, merged (``tests/conversations`` reads both query plans).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Select, delete, select, tuple_, union_all
from sqlalchemy.ext.asyncio import AsyncEngine
from turnlog.projections import ConversationIndex, ConversationSummary

from ._engines import driver
from ._schema import conversations as table

_FIELDS = ConversationSummary.__struct_fields__


@functools.cache
def upsert_summary(dialect: str) -> str:
    """The summary's upsert for one dialect (``?`` or ``$n`` placeholders), on the driver
    connection. A stored summary of a later version wins: a late save never takes a
    conversation back."""
    pg = dialect == "postgresql"
    marks = ", ".join(f"${i}" if pg else "?" for i in range(1, len(_FIELDS) + 1))
    updates = ", ".join(f"{c} = excluded.{c}" for c in _FIELDS if c != "id")
    return (
        f"INSERT INTO {table.name} ({', '.join(_FIELDS)}) VALUES ({marks}) "
        f"ON CONFLICT (id) DO UPDATE SET {updates} WHERE {table.name}.version <= excluded.version"
    )


def summary_params(summary: ConversationSummary) -> tuple[Any, ...]:
    return tuple(getattr(summary, f) for f in _FIELDS)


def _newest_first(query: Select[Any], before: tuple[str, str] | None, limit: int) -> Select[Any]:
    if before is not None:
        query = query.where(tuple_(table.c.updated_at, table.c.id) < tuple_(*before))
    return query.order_by(table.c.updated_at.desc(), table.c.id.desc()).limit(limit)


def page_query(
    tenant: str, subjects: Sequence[str] | None, *, limit: int, before: tuple[str, str] | None
) -> Select[Any] | None:
    """A page's query (None: no subject, no conversation): one index range per subject (or one
    for the whole tenant), each at most ``limit`` rows, merged newest first."""
    tenants = select(*table.c).where(table.c.tenant == tenant)
    if subjects is None:
        return _newest_first(tenants, before, limit)
    ranges = [_newest_first(tenants.where(table.c.subject == s), before, limit) for s in dict.fromkeys(subjects)]
    if len(ranges) <= 1:
        return ranges[0] if ranges else None
    merged = union_all(*(select(*r.subquery().c) for r in ranges)).subquery()
    return select(*merged.c).order_by(merged.c.updated_at.desc(), merged.c.id.desc()).limit(limit)


class SqlConversationIndex(ConversationIndex):
    """Summaries in ``turnlog_conversations`` of the same database as the log (SQLite or
    PostgreSQL). ``reader``: the engine lists are read through (SQLite: the log's readers, so a
    list never waits behind the one writer connection); default ``engine``."""

    def __init__(self, engine: AsyncEngine, *, reader: AsyncEngine | None = None) -> None:
        self.engine = engine
        self.reader = reader or engine

    async def save(self, summary: ConversationSummary) -> None:
        sql = upsert_summary(self.engine.dialect.name)
        params = summary_params(summary)
        async with driver(self.engine) as db:
            if self.engine.dialect.name == "postgresql":
                await db.execute(sql, *params)
                return
            await db.execute("BEGIN IMMEDIATE")
            try:
                await db.execute(sql, params)
                await db.commit()
            except BaseException:
                await db.rollback()
                raise

    async def get(self, conversation_id: str) -> ConversationSummary | None:
        async with self.reader.connect() as conn:
            found = (await conn.execute(select(*table.c).where(table.c.id == conversation_id))).first()
        return ConversationSummary(*found) if found is not None else None

    async def page(
        self, tenant: str, subjects: Sequence[str] | None, *, limit: int, before: tuple[str, str] | None = None
    ) -> list[ConversationSummary]:
        query = page_query(tenant, subjects, limit=limit, before=before)
        if query is None:
            return []
        async with self.reader.connect() as conn:
            return [ConversationSummary(*r) for r in (await conn.execute(query)).all()]

    async def empty(self) -> bool:
        async with self.reader.connect() as conn:
            return (await conn.execute(select(table.c.id).limit(1))).first() is None

    async def clear(self) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(delete(table))
