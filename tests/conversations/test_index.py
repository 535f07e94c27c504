"""The conversation index underneath the list: its SQL is an index query (the plans say so, on
SQLite and PostgreSQL), its filter is the one rule of ``_tenancy.may``, its cursors are opaque
and refuse what the server did not give, and the summary fold counts what the rows count."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from sqlalchemy.dialects import postgresql, sqlite
from turnlog.adapters.server import Principal
from turnlog.adapters.server._listing import decode_cursor, encode_cursor, readable_subjects
from turnlog.adapters.server._tenancy import may
from turnlog.adapters.stores import SqlConversationIndex, open_store, parse_pg_url
from turnlog.adapters.stores._conversations import page_query
from turnlog.engine import ConversationCreated, RequestError, TurnEngine, TurnRequest
from turnlog.projections import ConversationSummary, fold_rows, fold_summary

TENANTS, SUBJECTS, LEVELS = ("acme", "globex"), ("", "ann", "bob"), (1, 9, 10, 11)


def test_the_index_filter_is_the_read_rule_of_may() -> None:
    for tenant, subject, level in itertools.product(TENANTS, SUBJECTS, LEVELS):
        who = Principal(tenant, level=level, subject=subject)
        subjects = readable_subjects(who, auditor_level=10)
        for owner_tenant, owner in itertools.product(TENANTS, SUBJECTS):
            created = ConversationCreated(tenant=owner_tenant, subject=owner)
            listed = owner_tenant == who.tenant and (subjects is None or owner in subjects)
            assert listed == may(who, created, "read", auditor_level=10), (who, owner_tenant, owner)


def test_cursors_are_opaque_and_only_ours_are_taken() -> None:
    cursor = encode_cursor("2026-01-01T00:00:00.000001Z", "conv_ü/+=")
    assert "=" not in cursor and "conv" not in cursor and cursor.isascii()
    assert decode_cursor(cursor, (str, str)) == ("2026-01-01T00:00:00.000001Z", "conv_ü/+=")
    assert decode_cursor(encode_cursor(12), (int,)) == (12,)
    for raw, kinds in [
        (cursor, (int,)),
        (encode_cursor(12), (str, str)),
        (encode_cursor("a", 1), (str, str)),
        (encode_cursor(True), (int,)),  # a bool is not a seq
        ("", (int,)),
        ("x", (int,)),
        ("!!", (int,)),
        ("e30", (int,)),  # {}
    ]:
        with pytest.raises(RequestError) as exc:
            decode_cursor(raw, kinds)
        assert exc.value.code == "invalid_query", raw


def _plans_use_the_index(plan: list[str], *, dialect: str) -> None:
    text = "\n".join(plan)
    assert "ix_turnlog_conversations_" in text, text
    if dialect == "sqlite":
        # Every read of the table is a SEARCH of an index, never a SCAN of the table.
        assert "SCAN turnlog_conversations" not in text, text
    else:
        assert "Seq Scan" not in text, text


QUERIES = [
    ("acme", None, None),
    ("acme", None, ("2026-01-01T00:00:05.000000Z", "c9")),
    ("acme", ("ann",), None),
    ("acme", ("ann", ""), ("2026-01-01T00:00:05.000000Z", "c9")),
]


async def _fill(index: SqlConversationIndex) -> None:
    for i in range(300):
        at = f"2026-01-01T00:00:{i % 60:02d}.000000Z"
        await index.save(ConversationSummary(f"c{i}", TENANTS[i % 2], SUBJECTS[i % 3], "", at, at, version=1))


async def test_a_page_is_an_index_range_on_sqlite(tmp_path: Path) -> None:
    store = await open_store(tmp_path / "plans.db", encryption=False)  # the bare index: its SQL plans
    async with store:
        index = store.conversations
        assert isinstance(index, SqlConversationIndex)
        await _fill(index)
        async with index.reader.connect() as conn:
            await conn.exec_driver_sql("ANALYZE")
            for tenant, subjects, before in QUERIES:
                sql = page_query(tenant, subjects, limit=20, before=before).compile(
                    dialect=sqlite.dialect(), compile_kwargs={"literal_binds": True}
                )
                plan = [row[-1] for row in (await conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}")).all()]
                _plans_use_the_index(plan, dialect="sqlite")


@pytest.mark.postgres
async def test_a_page_is_an_index_range_on_postgres(pg_schema_url: str) -> None:
    store = await open_store(pg_schema_url, encryption=False)  # the bare index: its SQL plans
    async with store:
        index = store.conversations
        assert isinstance(index, SqlConversationIndex)
        await _fill(index)
        conn = await asyncpg.connect(parse_pg_url(pg_schema_url).dsn)
        try:
            schema = parse_pg_url(pg_schema_url).schema
            await conn.execute(f'SET search_path TO "{schema}"')
            await conn.execute("ANALYZE turnlog_conversations")
            # A 300-row table fits one page: make the planner show what it does once it is big.
            await conn.execute("SET enable_seqscan = off")
            for tenant, subjects, before in QUERIES:
                sql = page_query(tenant, subjects, limit=20, before=before).compile(
                    dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}
                )
                plan = [r[0] for r in await conn.fetch(f"EXPLAIN {sql}")]
                _plans_use_the_index(plan, dialect="postgresql")
        finally:
            await conn.close()


async def test_the_summary_counts_what_the_rows_count(store: Any) -> None:
    from turnlog.adapters.llm import EchoLLM

    engine = TurnEngine(store.log, EchoLLM(), messages=store.messages)
    conv = await engine.create_conversation(title="t", tenant="acme", subject="ann")
    for message in ("one two", "/call nope {}", "three four five"):
        async for _ in engine.run_turn(conv, TurnRequest(message)):
            pass
    events = [rec async for rec in store.log.iter_stream(conv)]
    rows = fold_rows(conv, events)
    summary = fold_summary(conv, events)
    assert summary is not None and await store.messages.conversations.get(conv) == summary
    assistant = [r for r in rows if r.role == "assistant"]
    usage = [json.loads(r.usage or "{}") for r in assistant]
    assert summary.turns == len(assistant) == 3 and summary.last_status == assistant[-1].status
    for field in ("prompt_tokens", "completion_tokens", "total_tokens"):
        assert getattr(summary, field) == sum(u.get(field, 0) for u in usage), field
    assert summary.updated_at == assistant[-1].created_at and summary.created_at == events[0].recorded_at
    assert (summary.tenant, summary.subject, summary.title, summary.parent) == ("acme", "ann", "t", None)
