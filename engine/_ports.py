"""The engine's ports besides the event log and the LLM.

The clock and the id source are injected so that tests, snapshots and replays are deterministic.
``Messages`` is where the runner hands committed events (the message rows) and where it finds the
words of earlier turns; the engine names the port, a projection implements it
(``turnlog.projections.MessageStore``), and without one the engine reads the history from the log.
"""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from ._events import Recorded
    from ._log import EventLog
    from ._request import PriorMessage


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


class CommitSink(Protocol):
    """Receives one turn's committed batches, in order, before any of their events is yielded:
    a client that sees ``done`` finds its message stored."""

    async def committed(self, records: Sequence[Recorded]) -> None: ...


class Messages(Protocol):
    """The message rows, as the engine needs them.

    A store may also have ``observe_turn(log, conversation_id, started) -> None`` (awaitable): a
    turn taken up again (an approval's decision, recovery's resume) or cancelled while parked has
    ended, and its batches reached the rows by ``catch_up`` rather than through a turn's ``sink``;
    whole-turn projections (``MessageStore.observers``: tracing) read it from the log from its
    ``TurnStarted`` at version ``started`` (None: the newest turn's, for a parked turn a cancel
    ended). The engine calls it when there (``getattr``); it is optional, not in the protocol."""

    async def history(self, log: EventLog, conversation_id: str, head: int) -> Sequence[PriorMessage]:
        """The messages of the conversation's turns ended at or before version ``head`` (the
        log's head for a new turn; a fork's parent is asked up to the fork point)."""
        ...

    def sink(self, conversation_id: str, version: int) -> CommitSink:
        """Where one turn's committed batches go; the conversation is at ``version`` before it."""
        ...

    async def catch_up(self, log: EventLog, conversation_id: str) -> int:
        """Bring the conversation's rows up to the log's head; returns the rows written."""
        ...
