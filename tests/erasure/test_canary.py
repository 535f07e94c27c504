"""Plaintext content is never in the database: a distinctive user message, tool result, answer,
system prompt and title are absent from the SQLite file and its WAL before and after erasure
(and after a checkpoint of the WAL), and from every table of PostgreSQL; after erasure the
destroyed key's bytes are gone from the SQLite file and WAL too."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import pytest
from turnlog.adapters.crypto import erase
from turnlog.adapters.stores import open_store, parse_pg_url

from ._scenario import CANARIES, CANARY_TOOL, CANARY_USER, run_turn


def sqlite_bytes(db: Path) -> bytes:
    data = db.read_bytes()
    wal = Path(f"{db}-wal")
    return data + (wal.read_bytes() if wal.exists() else b"")


def found(data: bytes, needles: tuple[str, ...]) -> list[str]:
    return [n for n in needles if n.encode() in data]


async def test_sqlite_file_and_wal_never_hold_the_content(tmp_path: Path) -> None:
    db = tmp_path / "canary.db"
    store = await open_store(db)
    try:
        conv, live = await run_turn(store)
        # The canaries went through: the client saw them, the rows hold them (decrypted on read).
        assert CANARY_TOOL.encode() in b"".join(live)
        rows = await store.messages.rows(conv)
        assert CANARY_USER in rows[0].content
        assert found(sqlite_bytes(db), CANARIES) == []
        key = (await store.keys.provider.get(conv)).key  # type: ignore[union-attr]
        assert key is not None and key in sqlite_bytes(db)  # the key is stored (no master key here)

        await erase(store.log, store.messages, [conv], reason="request #1")
        assert found(sqlite_bytes(db), CANARIES) == []
        assert key not in sqlite_bytes(db), "the destroyed key's bytes linger in the file or its WAL"
        assert store.keys.provider.last_wal_cleared is True  # type: ignore[attr-defined]
    finally:
        await store.close()
    # Closing checkpoints the WAL into the file: still nothing.
    assert found(sqlite_bytes(db), CANARIES) == []
    assert key not in sqlite_bytes(db)


async def pg_text(url: str) -> str:
    """Every row of every table in the test's schema, as text."""
    target = parse_pg_url(url)
    conn = await asyncpg.connect(target.dsn)
    try:
        schema = target.schema or "public"
        tables = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = $1", schema)
        assert len(tables) >= 6
        out = []
        for t in tables:
            rows = await conn.fetch(f'SELECT t::text AS row FROM "{schema}"."{t["tablename"]}" AS t')
            out += [r["row"] for r in rows]
        return "\n".join(out)
    finally:
        await conn.close()


def pg_found(text: str) -> list[str]:
    # bytea columns print as hex: look for the canaries' hex too.
    return [c for c in CANARIES if c in text or c.encode().hex() in text]


@pytest.mark.postgres
async def test_postgres_tables_never_hold_the_content(pg_schema_url: str) -> None:
    store = await open_store(pg_schema_url)
    try:
        conv, _ = await run_turn(store)
        text = await pg_text(pg_schema_url)
        assert conv in text and pg_found(text) == []
        await erase(store.log, store.messages, [conv], reason="request #2")
        after = await pg_text(pg_schema_url)
        assert pg_found(after) == []
        assert b"request #2".hex() in after  # the erased event's reason, in clear (a bytea payload)
    finally:
        await store.close()
