"""The in-memory event log: the reference implementation of the contract, for tests."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from ._checkpoint import Checkpoint
from ._errors import ConcurrencyError
from ._events import GENESIS_HASH, NewEvent, Recorded, seal
from ._log import PAGE, EventLog


class InMemoryEventLog(EventLog):
    def __init__(self) -> None:
        super().__init__()
        self._streams: dict[str, list[Recorded]] = {}
        self._all: list[Recorded] = []
        self._lock = asyncio.Lock()
        self._checkpoints: list[Checkpoint] = []

    async def append(
        self, stream_id: str, events: Sequence[NewEvent], expected_version: int, *, recorded_at: str
    ) -> list[Recorded]:
        if not events:
            return []
        async with self._lock:
            stream = self._streams.get(stream_id, [])
            actual = len(stream)
            if expected_version != actual:
                raise ConcurrencyError(stream_id, expected_version, actual)
            head_hash = stream[-1].hash if stream else GENESIS_HASH
            sealed = seal(
                stream_id,
                events,
                head_version=actual,
                head_hash=head_hash,
                first_position=len(self._all) + 1,
                recorded_at=recorded_at,
            )
            self._streams.setdefault(stream_id, []).extend(sealed)
            self._all.extend(sealed)
        self._notify(stream_id, sealed)
        return sealed

    async def read(self, stream_id: str, after_version: int = 0, limit: int = PAGE) -> list[Recorded]:
        # Versions are 1..n, so the list index of version v is v - 1.
        return self._streams.get(stream_id, [])[after_version : after_version + limit]

    async def read_all(self, after_position: int = 0, limit: int = PAGE) -> list[Recorded]:
        return self._all[after_position : after_position + limit]

    async def last(self, stream_id: str) -> Recorded | None:
        stream = self._streams.get(stream_id)
        return stream[-1] if stream else None

    async def streams(self) -> list[str]:
        return list(self._streams)

    # Test hook: lets tamper tests build forged logs without going through append's checks.
    def _raw(self, stream_id: str) -> list[Recorded]:
        return self._streams[stream_id]

    # -- checkpoints (CheckpointLog) --------------------------------------------------------------

    async def append_checkpoint(self, checkpoint: Checkpoint) -> None:
        self._checkpoints.append(checkpoint)

    async def checkpoints(self) -> list[Checkpoint]:
        return sorted(self._checkpoints, key=lambda cp: cp.size)  # stable: appended order within a size

    async def last_checkpoint(self) -> Checkpoint | None:
        best = None
        for cp in self._checkpoints:
            if best is None or cp.size >= best.size:
                best = cp
        return best

    # Test hook: the stored checkpoints, for tamper tests.
    def _raw_checkpoints(self) -> list[Checkpoint]:
        return self._checkpoints
