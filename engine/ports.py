"""The clock and the id source: injected so that tests, snapshots and replays are deterministic."""

from __future__ import annotations

import itertools
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> str:
        """Wall-clock time as an RFC 3339 UTC string: the events' ``recorded_at``."""
        ...

    def monotonic(self) -> float:
        """Seconds on a monotonic clock: tool durations."""
        ...


class Ids(Protocol):
    def new(self, kind: str) -> str:
        """A fresh id for a ``kind`` of thing: "conv", "turn", "msg"."""
        ...


def _iso(dt: datetime) -> str:
    return dt.isoformat(timespec="microseconds").replace("+00:00", "Z")


class SystemClock:
    def now(self) -> str:
        return _iso(datetime.now(UTC))

    def monotonic(self) -> float:
        return time.monotonic()


class FixedClock:
    """Starts at ``start`` and moves ``step`` forward on every reading."""

    def __init__(self, start: str = "2026-01-01T00:00:00Z", step: timedelta = timedelta(milliseconds=1)) -> None:
        self._t = datetime.fromisoformat(start.replace("Z", "+00:00"))
        self._step = step
        self._mono = 0.0

    def now(self) -> str:
        self._t += self._step
        return _iso(self._t)

    def monotonic(self) -> float:
        self._mono += self._step.total_seconds()
        return self._mono


class UuidIds:
    def new(self, kind: str) -> str:
        return f"{kind}_{uuid.uuid4().hex}"


class SequentialIds:
    """``conv-1``, ``turn-1``, ``msg-1``, ``msg-2``...: one counter per kind."""

    def __init__(self) -> None:
        self._counters: dict[str, itertools.count[int]] = {}

    def new(self, kind: str) -> str:
        counter = self._counters.setdefault(kind, itertools.count(1))
        return f"{kind}-{next(counter)}"
