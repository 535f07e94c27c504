"""The harness of the event-log contract: the hooks a store's test class fills in, the fixtures
that open and close its instances, and helpers for tests of one's own."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest
import pytest_asyncio
from turnlog.engine import EventLog, NewEvent, Recorded, TextDelta

#: The ``recorded_at`` of every append in the contract: fixed, so the pinned hashes hold.
RECORDED_AT = "2026-01-01T00:00:00.000000Z"


def deltas(n: int, *, text: str = "tok", turn: str = "turn-1", start: int = 0) -> list[NewEvent]:
    """``n`` text deltas ``tok<start>``, ``tok<start+1>``... of one turn: a batch to append."""
    return [NewEvent(TextDelta(iteration=1, text=f"{text}{start + i}"), turn) for i in range(n)]


async def append(log: EventLog, stream: str, events: Sequence[NewEvent], expected: int) -> list[Recorded]:
    return await log.append(stream, events, expected, recorded_at=RECORDED_AT)


async def take(sub: AsyncIterator[Recorded], n: int, timeout: float = 5.0) -> list[Recorded]:  # noqa: ASYNC109
    """The first ``n`` events of a subscription (TimeoutError if they do not all arrive within
    ``timeout`` seconds); the subscription is closed afterwards, whatever happened."""
    got: list[Recorded] = []
    try:
        async with asyncio.timeout(timeout):
            async for rec in sub:
                got.append(rec)
                if len(got) == n:
                    break
    finally:
        await sub.aclose()  # type: ignore[attr-defined]
    return got


class Instances:
    """The instances one test opened, through the contract's hooks; all closed after the test."""

    def __init__(self, contract: LogHarness) -> None:
        self._contract = contract
        self._first: EventLog | None = None
        self.opened: list[EventLog] = []

    async def first(self) -> EventLog:
        """The test's log (``open_log``), opened on first use."""
        if self._first is None:
            self._first = await self._contract.open_log()
            self.opened.append(self._first)
        return self._first

    async def again(self) -> EventLog | None:
        """Another instance over the first one's data (``open_again``), or None when the store
        cannot be opened twice."""
        other = await self._contract.open_again(await self.first())
        if other is not None and other is not self._first:
            self.opened.append(other)
        return other

    async def two(self) -> tuple[EventLog, EventLog]:
        """Two instances over one log, as two app servers would have; a store that cannot be
        shared gives its one instance twice."""
        first = await self.first()
        other = await self.again()
        return first, first if other is None else other

    async def close_all(self) -> None:
        for log in reversed(self.opened):
            await log.close()


@pytest.mark.asyncio(loop_scope="function")
class LogHarness:
    """The hooks (override ``open_log``; ``open_again`` for a store several processes share) and
    the fixtures the contract's tests take: ``log`` (the test's log) and ``logs`` (its instances).
    Every instance a hook opened is closed after the test."""

    #: True when an append through one instance wakes subscribers of another within milliseconds
    #: (PostgreSQL's LISTEN/NOTIFY). False: other instances find it by polling ``poll_interval``.
    wakes_other_instances: bool = False
    #: The test's own temporary directory (pytest's ``tmp_path``), for hooks that need a file.
    tmp_path: Path

    async def open_log(self) -> EventLog:
        """A fresh, empty event log for one test. Override this."""
        raise NotImplementedError(f"{type(self).__name__} must define `async def open_log(self)`")

    async def open_again(self, log: EventLog) -> EventLog | None:
        """Another instance over the same data as ``log`` (its own connections, as a second app
        server would open it; ``log`` may be closed by then). None, the default, says the store
        cannot be opened twice: the tests of two instances then use ``log`` for both."""
        return None

    @pytest.fixture(autouse=True)
    def _contract_tmp_path(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path

    @pytest_asyncio.fixture(loop_scope="function")
    async def logs(self) -> AsyncIterator[Instances]:
        instances = Instances(self)
        try:
            yield instances
        finally:
            await instances.close_all()

    @pytest_asyncio.fixture(loop_scope="function")
    async def log(self, logs: Instances) -> EventLog:
        return await logs.first()
