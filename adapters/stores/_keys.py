"""The data keys' SQL: ``turnlog_keys`` beside the log (SQLite or PostgreSQL), one row per
conversation (``turnlog.adapters.crypto.KeyProvider``).

Destroying a key is meant to leave no copy of its bytes in the database's files:

- SQLite: the row is deleted with ``PRAGMA secure_delete`` on (SQLite overwrites the deleted
  cell with zeros), a tombstone is written, and ``PRAGMA wal_checkpoint(TRUNCATE)`` copies the
  pages back and truncates the WAL, where the page images holding the key were. A checkpoint
  that a reader blocks is retried; ``last_wal_cleared`` says whether the WAL was emptied.
- PostgreSQL: the row is deleted, a tombstone written, and ``VACUUM FULL turnlog_keys`` rewrites
  the table into a new file (the old one is unlinked; a plain VACUUM only marks the space free).
  PostgreSQL's own WAL segments and base backups still hold the key until they are recycled:
  configure a master key (``TURNLOG_MASTER_KEY``) so what lingers there is a wrapped key.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy.ext.asyncio import AsyncEngine
from turnlog.adapters.crypto import KeyProvider, KeyRecord, MasterKey

from ._engines import driver
from ._schema import keys as keys_table

_T = keys_table.name


class SqlKeyProvider(KeyProvider):
    """Data keys in ``turnlog_keys`` of the log's database, wrapped by ``master`` when it holds a
    key (``MasterKey.from_env()`` reads ``TURNLOG_MASTER_KEY``)."""

    def __init__(self, engine: AsyncEngine, master: MasterKey | None = None) -> None:
        self.engine = engine
        self.master = master or MasterKey(None)
        self.pg = engine.dialect.name == "postgresql"
        #: Whether the last destroy emptied SQLite's WAL (None: not SQLite, or nothing destroyed yet).
        self.last_wal_cleared: bool | None = None

    def _record(self, conversation_id: str, row: tuple | None) -> KeyRecord | None:
        if row is None:
            return None
        blob, erased_at = row
        if blob is None:
            return KeyRecord(None, erased_at)
        return KeyRecord(self.master.unwrap(conversation_id, bytes(blob)), None)

    async def create(self, conversation_id: str, at: str) -> KeyRecord:
        blob = self.master.wrap(conversation_id, AESGCM.generate_key(256))
        async with driver(self.engine) as db:
            if self.pg:
                async with db.transaction():
                    await db.execute(
                        f"INSERT INTO {_T} (conversation_id, key, created_at) VALUES ($1, $2, $3) "
                        "ON CONFLICT (conversation_id) DO NOTHING",
                        conversation_id,
                        blob,
                        at,
                    )
                    row = await db.fetchrow(
                        f"SELECT key, erased_at FROM {_T} WHERE conversation_id = $1", conversation_id
                    )
            else:
                await db.execute("BEGIN IMMEDIATE")
                try:
                    await db.execute(
                        f"INSERT INTO {_T} (conversation_id, key, created_at) VALUES (?, ?, ?) "
                        "ON CONFLICT (conversation_id) DO NOTHING",
                        (conversation_id, blob, at),
                    )
                    found = await db.execute_fetchall(
                        f"SELECT key, erased_at FROM {_T} WHERE conversation_id = ?", (conversation_id,)
                    )
                    await db.commit()
                except BaseException:
                    await db.rollback()
                    raise
                row = found[0] if found else None
        record = self._record(conversation_id, tuple(row) if row is not None else None)
        assert record is not None
        return record

    async def get(self, conversation_id: str) -> KeyRecord | None:
        async with driver(self.engine) as db:
            if self.pg:
                row = await db.fetchrow(f"SELECT key, erased_at FROM {_T} WHERE conversation_id = $1", conversation_id)
            else:
                found = await db.execute_fetchall(
                    f"SELECT key, erased_at FROM {_T} WHERE conversation_id = ?", (conversation_id,)
                )
                row = found[0] if found else None
        return self._record(conversation_id, tuple(row) if row is not None else None)

    async def destroy(self, conversation_ids: Iterable[str], at: str) -> None:
        ids = list(dict.fromkeys(conversation_ids))
        if not ids:
            return
        async with driver(self.engine) as db:
            if self.pg:
                async with db.transaction():
                    await db.execute(f"DELETE FROM {_T} WHERE conversation_id = ANY($1::text[])", ids)
                    await db.executemany(
                        f"INSERT INTO {_T} (conversation_id, key, created_at, erased_at) VALUES ($1, NULL, $2, $2)",
                        [(cid, at) for cid in ids],
                    )
                # Outside any transaction (VACUUM refuses one): the table is rewritten, the old
                # file with the deleted keys unlinked.
                await db.execute(f"VACUUM FULL {_T}")
                return
            await self._destroy_sqlite(db, ids, at)

    async def _destroy_sqlite(self, db: Any, ids: list[str], at: str) -> None:
        previous = (await db.execute_fetchall("PRAGMA secure_delete"))[0][0]
        await db.execute("PRAGMA secure_delete = ON")
        try:
            await db.execute("BEGIN IMMEDIATE")
            try:
                await db.executemany(f"DELETE FROM {_T} WHERE conversation_id = ?", [(cid,) for cid in ids])
                await db.executemany(
                    f"INSERT INTO {_T} (conversation_id, key, created_at, erased_at) VALUES (?, NULL, ?, ?)",
                    [(cid, at, at) for cid in ids],
                )
                await db.commit()
            except BaseException:
                await db.rollback()
                raise
        finally:
            await db.execute(f"PRAGMA secure_delete = {int(previous)}")
        # The WAL still holds the page images written when the keys were created: copy them back
        # and truncate it. A reader in the middle of a read blocks the truncation: retry briefly.
        for _ in range(50):
            busy, _frames, _done = (await db.execute_fetchall("PRAGMA wal_checkpoint(TRUNCATE)"))[0]
            if not busy:
                self.last_wal_cleared = True
                return
            await asyncio.sleep(0.02)
        self.last_wal_cleared = False
