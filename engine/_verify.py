"""Verification: the stored bytes of the log recomputed, link by link."""

from __future__ import annotations

import msgspec

from ._events import GENESIS_HASH, chain_hash
from ._log import EventLog


class Broken(msgspec.Struct, frozen=True):
    stream_id: str
    version: int
    why: str

    def __str__(self) -> str:
        return f"stream {self.stream_id!r}: first broken link at version {self.version}: {self.why}"


class VerifyReport(msgspec.Struct, frozen=True):
    streams: int
    events: int
    broken: list[Broken]

    @property
    def ok(self) -> bool:
        return not self.broken


async def verify_stream(log: EventLog, stream_id: str) -> tuple[int, Broken | None]:
    """Recompute the chain of one stream from the stored bytes. Returns (events read, first break)."""
    prev = GENESIS_HASH
    expected_version = 0
    count = 0
    async for rec in log.iter_stream(stream_id):
        count += 1
        expected_version += 1
        if rec.version != expected_version:
            return count, Broken(stream_id, rec.version, f"version {rec.version} where {expected_version} was expected")
        if rec.prev_hash != prev:
            return count, Broken(stream_id, rec.version, "prev_hash does not match the previous event's hash")
        actual = chain_hash(
            rec.prev_hash, rec.stream_id, rec.version, rec.turn_id, rec.recorded_at, rec.type, rec.schema, rec.payload
        )
        if actual != rec.hash:
            return count, Broken(stream_id, rec.version, "the stored bytes do not hash to the stored hash (changed)")
        prev = rec.hash
    return count, None


async def verify(log: EventLog, stream_id: str | None = None) -> VerifyReport:
    streams = [stream_id] if stream_id is not None else await log.streams()
    broken: list[Broken] = []
    total = 0
    for sid in streams:
        n, b = await verify_stream(log, sid)
        total += n
        if b is not None:
            broken.append(b)
    return VerifyReport(len(streams), total, broken)
