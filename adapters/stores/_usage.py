"""The usage ledger in SQL: ``turnlog_usage`` beside the log (SQLite or PostgreSQL).

One row per model call, keyed by its ``UsageRecorded`` event (conversation, version): a save
inserts what is not there yet and leaves the rest (an entry is a function of the log, so a row
already kept cannot differ), which makes the live sink, catch-up and rebuild write the same table.
A report is one ``GROUP BY`` over the rows of a time range (the ``(tenant, recorded_at)`` index
for one tenant, ``(recorded_at)`` for all), grouped by the report's dimension and the model: the
answer has one row per group and model, whatever the number of calls.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, delete, func, literal, select
from sqlalchemy.ext.asyncio import AsyncEngine
from turnlog.projections import UsageEntry, UsageGroup, UsageLedger, UsageQuery

from ._engines import driver
from ._schema import usage as table

_FIELDS = UsageEntry.__struct_fields__
_SUMS = ("prompt_tokens", "completion_tokens", "total_tokens", "cached_tokens", "reasoning_tokens")


@functools.cache
def _insert(dialect: str) -> str:
    pg = dialect == "postgresql"
    marks = ", ".join(f"${i}" if pg else "?" for i in range(1, len(_FIELDS) + 1))
    return (
        f"INSERT INTO {table.name} ({', '.join(_FIELDS)}) VALUES ({marks}) "
        "ON CONFLICT (conversation_id, version) DO NOTHING"
    )


def _dimension(by: str) -> tuple[ColumnElement[Any], ColumnElement[Any] | None]:
    """The (key, tenant) columns of a grouping (no tenant when it spans tenants)."""
    c = table.c
    return {
        "conversation": (c.conversation_id, c.tenant),
        "subject": (c.subject, c.tenant),
        "tenant": (c.tenant, None),
        "model": (c.model, None),
        "day": (c.day, None),
    }[by]


class SqlUsageLedger(UsageLedger):
    """The ledger in ``turnlog_usage`` of the log's database. ``reader``: the engine reports are
    read through (SQLite: the log's readers); default ``engine``."""

    def __init__(self, engine: AsyncEngine, *, reader: AsyncEngine | None = None) -> None:
        self.engine = engine
        self.reader = reader or engine

    async def save(self, entries: Sequence[UsageEntry]) -> None:
        if not entries:
            return
        sql = _insert(self.engine.dialect.name)
        params = [tuple(getattr(e, f) for f in _FIELDS) for e in entries]
        async with driver(self.engine) as db:
            if self.engine.dialect.name == "postgresql":
                async with db.transaction():
                    await db.executemany(sql, params)
                return
            await db.execute("BEGIN IMMEDIATE")
            try:
                await db.executemany(sql, params)
                await db.commit()
            except BaseException:
                await db.rollback()
                raise

    async def entries(self, conversation_id: str | None = None) -> list[UsageEntry]:
        query = select(*(table.c[f] for f in _FIELDS))
        if conversation_id is not None:
            query = query.where(table.c.conversation_id == conversation_id)
        async with self.reader.connect() as conn:
            found = [UsageEntry(*r) for r in (await conn.execute(query)).all()]
        # Sorted here, not by the database: PostgreSQL's collation would order ids differently.
        return sorted(found, key=lambda e: (e.conversation_id, e.version))

    async def groups(self, query: UsageQuery) -> list[UsageGroup]:
        key, tenant = _dimension(query.by)
        c = table.c
        stmt = select(
            key.label("key"),
            (tenant if tenant is not None else literal("")).label("tenant"),
            c.model,
            func.count(),
            *(func.sum(c[name]) for name in _SUMS),
        )
        if query.tenant is not None:
            stmt = stmt.where(c.tenant == query.tenant)
        if query.since is not None:
            stmt = stmt.where(c.recorded_at >= query.since)
        if query.until is not None:
            stmt = stmt.where(c.recorded_at < query.until)
        stmt = stmt.group_by(*(col for col in (key, tenant, c.model) if col is not None))
        async with self.reader.connect() as conn:
            rows = (await conn.execute(stmt)).all()
        if query.by == "tenant":
            rows = [(k, k, *rest) for k, _, *rest in rows]
        found = [UsageGroup(k, t, m, n, *(int(s) for s in sums)) for k, t, m, n, *sums in rows]
        # Sorted here, as the memory ledger sorts (not by the database's collation).
        return sorted(found, key=lambda g: (g.key, g.tenant, g.model))

    async def clear(self) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(delete(table))
