"""The PostgreSQL log's append path: a group of appends of several conversations in one statement
(``AppendBatcher``'s writer for ``PostgresEventLog``), and one append alone (the group's fallback).
Why it is built this way: ``_postgres`` (the lock, ``turnlog_append``) and ``_batcher`` (groups).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg
from msgspec.structs import replace
from turnlog.engine import GENESIS_HASH, ConcurrencyError, NewEvent, Recorded, StoreUnavailable, seal

from ._batcher import Pending

_HEAD = "SELECT version, hash FROM turnlog_events WHERE stream_id = $1 ORDER BY version DESC LIMIT 1"
# engine/migrations/versions/0003: lock, re-check the head, insert at max(position) + 1, notify.
_APPEND = "SELECT turnlog_append($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
_NO_HEAD = (-1, "")
#: Heads remembered (``_known``); past it the memory is dropped and heads are read again.
_KNOWN_HEADS = 10_000
# A group's heads, in the order of the stream ids given (each one index lookup).
_HEADS = (
    "SELECT h.version, h.hash FROM unnest($1::text[]) WITH ORDINALITY AS s(sid, i) LEFT JOIN LATERAL "
    "(SELECT version, hash FROM turnlog_events WHERE stream_id = s.sid ORDER BY version DESC LIMIT 1) AS h ON true "
    "ORDER BY s.i"
)
# A group in one statement: turnlog_append once per stream (each takes the same transaction-scoped
# lock, re-entrant), the events of all streams in flat arrays, stream i's at [lo[i]:hi[i]].
# Autocommit: the statement is the transaction, the lock is held for the server's work only.
_APPEND_MANY = (
    "SELECT turnlog_append($1, $2, ($3::text[])[i], ($4::int[])[i], ($5::text[])[i], ($6::text[])[i], "
    "($9::int[])[($7::int[])[i]:($8::int[])[i]], ($10::text[])[($7::int[])[i]:($8::int[])[i]], "
    "($11::text[])[($7::int[])[i]:($8::int[])[i]], ($12::int[])[($7::int[])[i]:($8::int[])[i]], "
    "($13::text[])[($7::int[])[i]:($8::int[])[i]], ($14::text[])[($7::int[])[i]:($8::int[])[i]], "
    "($15::bytea[])[($7::int[])[i]:($8::int[])[i]]) FROM generate_subscripts($3::text[], 1) AS i ORDER BY i"
)


def _group_args(ready: list[tuple[Pending, str, list[Recorded]]]) -> list[list[Any]]:
    """``_APPEND_MANY``'s arrays ($3..$15) for the streams of a group, in order."""
    streams, expected, heads, times, lo, hi = [], [], [], [], [], []
    versions, turns, types, schemas, prevs, hashes, payloads = [], [], [], [], [], [], []
    for item, head_hash, sealed in ready:
        streams.append(item.stream_id)
        expected.append(item.expected)
        heads.append(head_hash)
        times.append(item.recorded_at)
        lo.append(len(versions) + 1)
        for r in sealed:
            versions.append(r.version)
            turns.append(r.turn_id)
            types.append(r.type)
            schemas.append(r.schema)
            prevs.append(r.prev_hash)
            hashes.append(r.hash)
            payloads.append(r.payload)
        hi.append(len(versions))
    return [streams, expected, heads, times, lo, hi, versions, turns, types, schemas, prevs, hashes, payloads]


class PgAppender:
    """Writes groups of appends over ``pool``; remembers the head it committed last per stream."""

    def __init__(
        self, pool: asyncpg.Pool, lock_key: int, channel: str, where: str, unavailable: tuple[type[BaseException], ...]
    ) -> None:
        self.pool = pool
        self.lock_key = lock_key
        self.channel = channel
        self.where = where
        #: Errors that mean the database is not reachable right now.
        self.unavailable = unavailable
        #: stream -> (version, hash) of the last batch this process committed to it
        self.known: dict[str, tuple[int, str]] = {}

    async def write_group(self, group: list[Pending]) -> None:
        """One group of appends (``AppendBatcher``) in one or two round trips and one commit: the
        heads this process does not know from its own last commit (read without the lock; a
        stale ``expected_version`` fails here, cheaply), then one autocommit statement calling
        ``turnlog_append`` once per stream, which takes the lock, re-checks each head and
        inserts: a stream whose head moved writes nothing and gets ``ConcurrencyError``, the
        others commit together."""
        try:
            async with self.pool.acquire() as conn:
                # The head this process committed last is known: no read for it (the lock's
                # re-check in turnlog_append is what decides, so a stale one is still refused).
                known = self.known
                unknown = [i.stream_id for i in group if known.get(i.stream_id, _NO_HEAD)[0] != i.expected]
                read = dict(zip(unknown, await conn.fetch(_HEADS, unknown), strict=True)) if unknown else {}
                ready: list[tuple[Pending, str, list[Recorded]]] = []
                for item in group:
                    head = read.get(item.stream_id)
                    if head is None:
                        actual, head_hash = known[item.stream_id]
                    else:
                        actual, head_hash = head[0] or 0, head[1] or GENESIS_HASH
                    # Positions are not hashed: seal from 1 and move them to where the server
                    # put the batch.
                    sealed = item.sealed(actual, head_hash, 1)
                    if sealed is None:
                        continue
                    ready.append((item, head_hash, sealed))
                if not ready:
                    return
                try:
                    firsts = await conn.fetch(_APPEND_MANY, self.lock_key, self.channel, *_group_args(ready))
                except asyncpg.UniqueViolationError:
                    # Reached only beside a writer that skips the lock (an old build, a hand-run
                    # script): each item alone says whose it is.
                    for item, _, _ in ready:
                        try:
                            item.done(
                                await self.append_one(
                                    conn, item.stream_id, item.events, item.expected, item.recorded_at
                                )
                            )
                        except Exception as exc:
                            item.done(exc)
                    return
        except self.unavailable as exc:
            for item in group:
                item.done(
                    StoreUnavailable(f"append to {item.stream_id!r} failed, the PostgreSQL log at {self.where}: {exc}")
                )
            return
        if len(known) > _KNOWN_HEADS:
            known.clear()
        for (item, _, sealed), row in zip(ready, firsts, strict=True):
            first = row[0]
            if first < 0:
                known.pop(item.stream_id, None)
                item.done(ConcurrencyError(item.stream_id, item.expected, -first - 1))
            else:
                known[item.stream_id] = (sealed[-1].version, sealed[-1].hash)
                item.done([replace(r, position=first + i) for i, r in enumerate(sealed)] if first != 1 else sealed)

    async def append_one(
        self,
        conn: asyncpg.Connection,
        stream_id: str,
        events: Sequence[NewEvent],
        expected_version: int,
        recorded_at: str,
    ) -> list[Recorded]:
        # The group's fallback, one append alone. Two round trips, no client-side transaction:
        # the head is read without the lock, the batch is sealed against it, and turnlog_append
        # re-checks the head under the lock and inserts and commits in one statement.
        head = await conn.fetchrow(_HEAD, stream_id)
        actual, head_hash = (head[0], head[1]) if head is not None else (0, GENESIS_HASH)
        if actual != expected_version:
            raise ConcurrencyError(stream_id, expected_version, actual)
        sealed = seal(
            stream_id, events, head_version=actual, head_hash=head_hash, first_position=1, recorded_at=recorded_at
        )
        try:
            first = await conn.fetchval(
                _APPEND,
                self.lock_key,
                self.channel,
                stream_id,
                expected_version,
                head_hash,
                recorded_at,
                [r.version for r in sealed],
                [r.turn_id for r in sealed],
                [r.type for r in sealed],
                [r.schema for r in sealed],
                [r.prev_hash for r in sealed],
                [r.hash for r in sealed],
                [r.payload for r in sealed],
            )
        except asyncpg.UniqueViolationError as exc:
            raise ConcurrencyError(stream_id, expected_version, -1) from exc
        if first < 0:
            raise ConcurrencyError(stream_id, expected_version, -first - 1)
        if first != 1:
            sealed = [replace(r, position=first + i) for i, r in enumerate(sealed)]
        return sealed
