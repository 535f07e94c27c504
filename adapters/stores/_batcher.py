"""``AppendBatcher``: one group commit across conversations, for the SQL logs.

Each running turn group-commits its own deltas (``turnlog.engine``'s ``GroupCommit``), but a
server runs many turns at once: 200 turns meant 200 separate transactions per few milliseconds,
each with its own lock and its own WAL sync, and the syncs queued. Here the appends that arrive
while a transaction is in flight wait for it and then go together, in **one** transaction: one
lock, one sync, one round trip for the lot. A lone append goes at once (no timer, no added wait):
a group is whatever queued during the previous commit, so groups grow with the load.

What each caller sees does not change:
- **Per-conversation optimistic concurrency.** Each item is checked against its own stream's head
  inside the transaction; a stale one gets ``ConcurrencyError`` and writes nothing, the others
  commit.
- **Durable before visible.** A caller's ``append`` returns after the transaction that holds its
  events committed, never before.
- **Order.** Two appends to one stream never share a group (the second waits for the next one), so
  a stream's appends commit in the order they were made; positions stay gapless, in commit order.
- A failure of the whole transaction (the database went away) fails every item of the group with
  the store's error; an unexpected one (a unique violation from a writer that skips the lock) is
  retried item by item through the store's single append, which reports it per item as before.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Awaitable, Callable, Sequence

from turnlog.engine import ConcurrencyError, NewEvent, Recorded, seal


class Pending:
    """One caller's append, waiting for its group."""

    __slots__ = ("events", "expected", "future", "recorded_at", "stream_id")

    def __init__(
        self,
        stream_id: str,
        events: Sequence[NewEvent],
        expected: int,
        recorded_at: str,
        future: asyncio.Future[list[Recorded]],
    ) -> None:
        self.stream_id = stream_id
        self.events = events
        self.expected = expected
        self.recorded_at = recorded_at
        self.future = future

    def sealed(self, head_version: int, head_hash: str, first_position: int) -> list[Recorded] | None:
        """The events sealed after the stream's head as the transaction found it, or None when
        that head is not the one this append expected: it has then failed (``ConcurrencyError``)
        and writes nothing. Both SQL logs' group writes check and seal each item here."""
        if head_version != self.expected:
            self.done(ConcurrencyError(self.stream_id, self.expected, head_version))
            return None
        return seal(
            self.stream_id,
            self.events,
            head_version=head_version,
            head_hash=head_hash,
            first_position=first_position,
            recorded_at=self.recorded_at,
        )

    def done(self, value: list[Recorded] | BaseException) -> None:
        if self.future.done():
            return
        if isinstance(value, BaseException):
            self.future.set_exception(value)
        else:
            self.future.set_result(value)


#: Writes one group in one transaction and resolves each item (``Pending.done``).
WriteGroup = Callable[[list[Pending]], Awaitable[None]]


class AppendBatcher:
    """Queues appends and writes what queued during one commit as the next group."""

    def __init__(self, write_group: WriteGroup, *, max_items: int = 256, max_events: int = 8192) -> None:
        self._write_group = write_group
        #: Bounds on one transaction: the rest waits for the next group.
        self.max_items = max_items
        self.max_events = max_events
        self._queue: deque[Pending] = deque()
        self._task: asyncio.Task[None] | None = None
        #: The group in flight and the task writing it.
        self._group: list[Pending] = []
        self._writing: asyncio.Task[None] | None = None
        #: Groups written and the items in them (what a test or an operator may look at).
        self.groups = 0
        self.items = 0

    async def append(
        self, stream_id: str, events: Sequence[NewEvent], expected: int, recorded_at: str
    ) -> list[Recorded]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[Recorded]] = loop.create_future()
        item = Pending(stream_id, events, expected, recorded_at, future)
        self._queue.append(item)
        if self._task is None:
            self._task = loop.create_task(self._run())
        try:
            return await future
        except asyncio.CancelledError:
            # Still queued: the group skips it. Alone in the transaction in flight: that is
            # cancelled, so a cancelled append writes nothing, as a single append did. Sharing a
            # group, its events go with the group (its caller cannot know: like a connection lost
            # during a commit; the engine shields its appends, and reads the log to know).
            writing = self._writing
            if writing is not None and self._group == [item]:
                writing.cancel()
                # As a single append did: back to the caller once the transaction is undone.
                await asyncio.wait([writing])
            raise

    def _take(self) -> list[Pending]:
        """The next group: queued items in order, one per stream, within the bounds."""
        group: list[Pending] = []
        streams: set[str] = set()
        later: list[Pending] = []
        events = 0
        queue = self._queue
        while queue and len(group) < self.max_items and events < self.max_events:
            item = queue.popleft()
            if item.future.done():  # its caller was cancelled before the group took it
                continue
            if item.stream_id in streams:
                later.append(item)  # a stream's second append goes after its first commits
                continue
            streams.add(item.stream_id)
            group.append(item)
            events += len(item.events)
        queue.extendleft(reversed(later))
        return group

    async def _run(self) -> None:
        try:
            while self._queue:
                group = self._take()
                if not group:
                    continue
                self.groups += 1
                self.items += len(group)
                # A task of its own, so the one caller of a one-item group can cancel it.
                write = self._writing = asyncio.get_running_loop().create_task(self._write_group(group))
                self._group = group
                try:
                    await asyncio.wait([write])
                except asyncio.CancelledError:
                    write.cancel()
                    for item in group:
                        item.future.cancel()
                    raise
                exc = None if write.cancelled() else write.exception()
                if write.cancelled() or exc is not None:
                    for item in group:
                        if write.cancelled():
                            item.future.cancel()
                        else:
                            item.done(exc)  # type: ignore[arg-type]
        finally:
            self._task = None
            self._writing = None
            self._group = []
            # Cancelled (the loop is closing): nobody is left waiting for ever.
            while self._queue:
                self._queue.popleft().future.cancel()

    async def drain(self) -> None:
        """Wait until every queued append has been written (closing the log)."""
        while self._task is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(self._task)
