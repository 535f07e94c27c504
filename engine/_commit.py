"""``GroupCommit``: how one turn's events get into the log.

Recording an event checks it against the turn's state machine (at the version it will be given),
lets the request history see it, and buffers it. The buffer goes to the log as one batch, either
when it holds ``flush_events`` events or when its oldest event has waited ``flush_s`` (the reader
of the model's stream decides when, see ``_model_call``), or at a barrier (``flush``) before a
side effect.

Commits are pipelined: at most one batch is in flight while the next one is being buffered, so
batches commit in order and the engine keeps working while the database writes. Every committed
batch is handed to the ``CommitSink`` (the message rows) before it is returned, and only returned
events may be shown: durable before visible.

The turn is the stream's only writer, but for controls: a ``CancelRequested`` appended by anyone,
from any process, puts the log ahead of the batch in flight (``ConcurrencyError``). The batch then
goes after the cancels, which are returned first, in log order, like the turn's own events; the
``CancelWatch`` is told. Any other event ahead (a recovery that ended the turn) is the conflict
it is: nothing is written over it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from ._cancel import CancelWatch
from ._errors import ConcurrencyError
from ._events import CancelRequested, Event, NewEvent, Recorded
from ._log import EventLog
from ._machine import ConversationFold
from ._ports import Clock, CommitSink
from ._request import TurnHistory

logger = logging.getLogger("turnlog.engine")


class GroupCommit:
    """One turn's buffer, its deadline and the batch in flight. The model-call reader reads
    ``buffer``, ``deadline`` and ``inflight`` directly: that loop runs once per token."""

    def __init__(
        self,
        log: EventLog,
        stream_id: str,
        turn_id: str,
        expected_version: int,
        sink: CommitSink,
        clock: Clock,
        *,
        flush_events: int,
        flush_ms: float,
        fold: ConversationFold,
        history: TurnHistory,
        watch: CancelWatch,
    ) -> None:
        self.log = log
        self.stream_id = stream_id
        self.turn_id = turn_id
        #: The stream's version once everything handed to the log so far has committed.
        self.expected = expected_version
        self.sink = sink
        self.clock = clock
        self.flush_events = flush_events
        self.flush_s = flush_ms / 1000.0
        self.loop = asyncio.get_running_loop()
        #: Checks each event against the turn's state machine before it gets a version.
        self.fold = fold
        #: Sees each event: the next model request is built from it.
        self.history = history
        #: Told of a cancel met on the way into the log.
        self.watch = watch
        self.buffer: list[NewEvent] = []
        #: When the buffer's oldest event has waited long enough (``loop.time()``).
        self.deadline = 0.0
        self.inflight: asyncio.Future[list[Recorded]] | None = None
        self.inflight_batch: list[NewEvent] = []
        #: The newest committed event (None before the first commit).
        self.head: Recorded | None = None

    def record(self, ev: Event) -> None:
        """Check the event against the machine, then buffer it for the next group commit."""
        self.fold.check(
            ev, turn_id=self.turn_id, stream_id=self.stream_id, version=self.expected + len(self.buffer) + 1
        )
        self.history.apply(ev)
        if not self.buffer:
            self.deadline = self.loop.time() + self.flush_s
        self.buffer.append(NewEvent(ev, self.turn_id))

    def _start(self) -> None:
        """Hand the buffer to the log without waiting for it. At most one batch is in flight, so
        batches commit in order; the engine keeps preparing the next batch meanwhile."""
        batch = self.buffer
        self.buffer = []
        self.inflight_batch = batch
        self.inflight = asyncio.ensure_future(self._append(batch, self.expected))
        self.expected += len(batch)

    async def _append(self, batch: list[NewEvent], expected: int) -> list[Recorded]:
        """Append one batch at ``expected``; after cancels of this turn if the log holds some
        there (returned first, in log order)."""
        ahead: list[Recorded] = []
        while True:
            try:
                recs = await self.log.append(self.stream_id, batch, expected, recorded_at=self.clock.now())
            except ConcurrencyError as conflict:
                cancels = await self._cancels_after(expected, conflict)
                ahead += cancels
                expected += len(cancels)
                # Only this batch is in flight, so nothing has used the versions they took.
                self.expected += len(cancels)
                self.watch.seen(cancels[0])
                continue
            return ahead + recs if ahead else recs

    async def _cancels_after(self, version: int, conflict: ConcurrencyError) -> list[Recorded]:
        """The events after ``version`` (checked reads), when all are cancels of this turn;
        otherwise ``conflict`` is raised: someone else wrote, and the turn may not go on."""
        cancels: list[Recorded] = []
        async with contextlib.aclosing(self.log.iter_stream(self.stream_id, version)) as ahead:
            async for rec in ahead:
                if type(rec.event) is not CancelRequested or rec.turn_id != self.turn_id:
                    raise conflict
                cancels.append(rec)
        if not cancels:
            raise conflict
        return cancels

    async def finish(self) -> list[Recorded]:
        """Wait for the batch in flight; returns its committed events (now safe to show)."""
        fut = self.inflight
        if fut is None:
            return []
        # Shielded: a cancelled consumer must not leave us unsure whether the batch committed.
        recs = await asyncio.shield(fut)
        self.inflight = None
        self.inflight_batch = []
        # Rows before the frames: a client that sees `done` finds its message stored.
        await self._hand_over(recs)
        return recs

    async def _hand_over(self, recs: list[Recorded]) -> None:
        self.head = recs[-1]
        # Rows are a projection: a sink that fails does not fail the turn (its events are in the
        # log and are shown); the rows catch up from the log at their next read
        # (``Messages.history``, ``catch_up``). The operator gets the reason.
        try:
            await self.sink.committed(recs)
        except Exception:
            logger.exception(
                "stream %s: the committed batch up to version %d was not projected", self.stream_id, recs[-1].version
            )

    async def rotate(self) -> list[Recorded]:
        """Pipelined group commit: collect the batch in flight, send the buffer."""
        recs = await self.finish()
        if self.buffer:
            self._start()
        return recs

    async def flush(self) -> list[Recorded]:
        """A barrier: everything recorded so far is committed when this returns."""
        recs = await self.finish()
        if self.buffer:
            self._start()
            recs = recs + await self.finish()
        return recs

    async def settle(self) -> list[Recorded]:
        """When the turn fails: wait for the batch in flight and return what it committed. Safe to
        call from any point, including after a cancelled flush. A batch that did not commit goes
        back in front of the buffer, to be written with the failure."""
        fut = self.inflight
        if fut is None:
            return []
        batch = self.inflight_batch
        self.inflight = None
        self.inflight_batch = []
        try:
            recs = await asyncio.shield(fut)
        except Exception:
            # The batch did not commit: keep it, and write it with the failure.
            self.buffer = batch + self.buffer
            self.expected -= len(batch)
            return []
        await self._hand_over(recs)
        return recs
