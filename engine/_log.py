"""The event log port: what every store (memory, SQLite, PostgreSQL) promises.

Contract (tests/contract/ runs the same suite on every store):

- ``append(stream_id, events, expected_version)`` is atomic: all events are written or none.
  ``expected_version`` is the stream's current last version (0 for a new stream); a stale one
  raises ``ConcurrencyError`` and writes nothing. Versions are gapless per stream.
- ``read(stream_id, after_version, limit)`` returns events with version > after_version, in order.
- ``read_all(after_position, limit)`` returns events of every stream with position >
  after_position in position order; a reader that follows positions never skips an event that is
  committed later with a smaller position (each store documents how it guarantees that).
- ``subscribe(stream_id, after_version)`` catches up from the log and then follows new events,
  with no gap and no duplicate at the hand-over. It never ends on its own; the caller stops it.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence

from ._errors import IntegrityError
from ._events import NewEvent, Recorded

PAGE = 1000
#: Page size for reading a whole stream: big pages amortise the per-query cost.
BULK_PAGE = 10_000


class _Wake(asyncio.Event):
    """A follower's wake-up; carries the batch when this process committed it."""

    batch: list[Recorded] | None = None


class EventLog(abc.ABC):
    #: How long a subscriber sleeps before it looks at the log again even without a wake-up:
    #: the safety net for writers this process cannot hear (another process on the same SQLite file).
    poll_interval: float = 1.0

    def __init__(self) -> None:
        self._waiters: dict[str, _Wake] = {}
        #: stream -> number of running ``follow`` calls in this process
        self._followers: dict[str, int] = {}
        #: stream -> newest version this process committed, for followed streams only
        self._heads: dict[str, int] = {}

    # -- writing ------------------------------------------------------------------------------

    @abc.abstractmethod
    async def append(
        self, stream_id: str, events: Sequence[NewEvent], expected_version: int, *, recorded_at: str
    ) -> list[Recorded]: ...

    # -- reading ------------------------------------------------------------------------------

    @abc.abstractmethod
    async def read(self, stream_id: str, after_version: int = 0, limit: int = PAGE) -> list[Recorded]: ...

    @abc.abstractmethod
    async def read_all(self, after_position: int = 0, limit: int = PAGE) -> list[Recorded]: ...

    @abc.abstractmethod
    async def last(self, stream_id: str) -> Recorded | None:
        """The stream's newest event, or None for a stream that does not exist."""

    @abc.abstractmethod
    async def streams(self) -> list[str]:
        """Every stream id, in order of first appearance."""

    async def close(self) -> None:
        return None

    async def __aenter__(self) -> EventLog:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- following ----------------------------------------------------------------------------

    async def iter_stream(self, stream_id: str, after_version: int = 0) -> AsyncIterator[Recorded]:
        """Every event of a stream after a version, page by page (memory stays flat)."""
        while True:
            page = await self.read(stream_id, after_version, BULK_PAGE)
            for rec in page:
                yield rec
            if len(page) < BULK_PAGE:
                return
            after_version = page[-1].version

    async def subscribe(self, stream_id: str, after_version: int = 0) -> AsyncIterator[Recorded]:
        # aclosing: a subscriber that stops closes its follower now, not when it is collected.
        async with contextlib.aclosing(self.follow(stream_id, after_version)) as pages:
            async for page in pages:
                for rec in page:
                    yield rec

    async def follow(
        self, stream_id: str, after_version: int = 0, *, idle: float | None = None
    ) -> AsyncIterator[list[Recorded]]:
        """``subscribe`` in pages: what one read returns arrives as one list (a committed batch,
        usually), so a reader pays per batch, not per event. With ``idle``, an empty list is
        yielded whenever nothing arrived for that many seconds (the SSE heartbeat's clock).

        A batch committed by this process is handed to its followers with the wake-up, so they
        do not read back what the process just wrote; anything else (another process's commit,
        a batch that is not the next one, a timeout) is read from the log."""
        await self._before_follow()
        loop = asyncio.get_running_loop()
        self._followers[stream_id] = self._followers.get(stream_id, 0) + 1
        try:
            last = after_version
            quiet_since = loop.time()
            must_read = True
            while True:
                # Take the wake-up before looking: an append after this point sets it, and one
                # before it raised the head this process knows of, checked next.
                wake = self._waiter(stream_id)
                if must_read or self._heads.get(stream_id, 0) > last:
                    page = await self.read(stream_id, last, PAGE)
                    must_read = len(page) == PAGE
                    if page:
                        last = self._check_next(stream_id, last, page)
                        quiet_since = loop.time()
                        yield page
                        continue
                timeout = self.poll_interval
                if idle is not None:
                    due = quiet_since + idle - loop.time()
                    if due <= 0:
                        quiet_since = loop.time()
                        yield []
                        continue
                    timeout = min(timeout, due)
                try:
                    await asyncio.wait_for(wake.wait(), timeout)
                except TimeoutError:
                    must_read = True  # the safety net: writers this process cannot hear
                    continue
                batch = wake.batch
                if batch and batch[0].version == last + 1:
                    last = batch[-1].version
                    quiet_since = loop.time()
                    yield batch
                else:
                    must_read = True
        finally:
            left = self._followers[stream_id] - 1
            if left:
                self._followers[stream_id] = left
            else:
                # The last follower of this stream: nothing of it stays behind (a server follows
                # every conversation that has a turn; this keeps its memory flat).
                del self._followers[stream_id]
                self._heads.pop(stream_id, None)
                self._waiters.pop(stream_id, None)

    @staticmethod
    def _check_next(stream_id: str, last: int, page: list[Recorded]) -> int:
        # Versions are gapless: anything else is a store bug, never silently skipped.
        if page[0].version != last + 1 or page[-1].version != last + len(page):
            raise IntegrityError(
                stream_id, last + 1, f"the store returned versions {page[0].version}..{page[-1].version} after {last}"
            )
        return page[-1].version

    async def _before_follow(self) -> None:
        """Stores that need a listener for wake-ups (PostgreSQL's LISTEN) start it here."""
        return None

    def _waiter(self, stream_id: str) -> _Wake:
        ev = self._waiters.get(stream_id)
        if ev is None or ev.is_set():
            ev = self._waiters[stream_id] = _Wake()
        return ev

    def _notify(self, stream_id: str, batch: list[Recorded] | None = None) -> None:
        """Stores call this after a commit, with the committed batch when this process wrote it
        (None: a wake-up from elsewhere, followers read). Waking is a hint; the log is the truth."""
        if batch and stream_id in self._followers:
            # Only for followed streams: the map stays as small as the set of live readers.
            self._heads[stream_id] = max(self._heads.get(stream_id, 0), batch[-1].version)
        ev = self._waiters.pop(stream_id, None)
        if ev is not None:
            ev.batch = batch
            ev.set()
