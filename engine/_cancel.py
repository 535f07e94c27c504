"""Stopping a running turn from any process: the request is an event of the turn's own stream.

``cancel_turn`` appends ``CancelRequested`` (who asked, why; when is the envelope's
``recorded_at``) to the conversation's stream, at the version it read, so it lands only while a
turn is live: it is in the hash chain, replays exactly and is audited like the turn itself. A
conversation whose last event is terminal has nothing to stop (``NoTurnRunning``, nothing
written). The cancel races the turn's own commits; losing a race means the turn wrote meanwhile,
so the cancel looks again (a turn that ended meanwhile is ``NoTurnRunning``).

The process running the turn learns of it twice over, whichever comes first:

- its next group commit finds the log one version ahead (``ConcurrencyError``): ``GroupCommit``
  reads what was appended and, when every such event is a cancel of this turn, commits its batch
  after them instead of failing (so the partial output is kept) and tells the watch;
- a turn that commits nothing for ``QUIET_S`` (waiting on a slow model or tool) has its
  ``CancelWatch`` follow the stream (``EventLog.follow``: woken in-process, by NOTIFY on
  PostgreSQL from any server, by polling on a SQLite file another process writes) until it is
  busy again (two commits within ``QUIET_S``), so it stops within about ``QUIET_S`` of the cancel,
  not at its next commit.

A turn parked awaiting approval is run by no process: its cancel is written with the
``TurnFailed(cancelled)`` that ends it, in one append.

The turn then stops at its next step (the model call reads no further, running tools are
stopped, nothing new starts) and ends with ``TurnFailed(cancelled)`` naming who asked. A
``TurnFinalized`` already recorded when the cancel arrived still stands: the turn had ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from ._errors import ConcurrencyError, ConversationNotFound, IntegrityError, LogError, NoTurnRunning, ReplayError
from ._events import (
    TERMINAL_TYPES,
    ApprovalDecided,
    ApprovalRequested,
    CancelRequested,
    ConversationCreated,
    NewEvent,
    Recorded,
    TurnFailed,
)
from ._failure import TurnFailure
from ._log import ChainCheck, EventLog
from ._ports import Clock, Messages, SystemClock

logger = logging.getLogger("turnlog.engine")

#: How many times a cancel tries again when the running turn committed between its read and its
#: append (each try is a read and an append; a turn commits at most every few milliseconds).
CANCEL_ATTEMPTS = 100
#: A turn that committed nothing for this long is quiet: its watch follows the stream.
QUIET_S = 0.1
#: Seconds the watch waits before following again after the log failed.
_RETRY_S = 1.0


async def cancel_turn(
    log: EventLog,
    conversation_id: str,
    *,
    tenant: str = "",
    subject: str = "",
    reason: str = "",
    clock: Clock | None = None,
    messages: Messages | None = None,
) -> Recorded:
    """Ask the running turn of a conversation to stop: appends ``CancelRequested`` naming who
    asked (``tenant``, ``subject``) and why, and returns it (its ``turn_id`` is the turn's). Any
    process may call it; the one running the turn ends it as ``TurnFailed(cancelled)``.

    Raises ``ConversationNotFound``, or ``NoTurnRunning`` when the last turn has ended (nothing
    is written). A turn left live by a dead process is cancelled all the same (the request is
    recorded); recovery ends it (``recover``), as interrupted."""
    clock = clock or SystemClock()
    request = CancelRequested(tenant=tenant, subject=subject, reason=reason)
    conflict: ConcurrencyError | None = None
    for _ in range(CANCEL_ATTEMPTS):
        last = await log.last(conversation_id)
        if last is None:
            raise ConversationNotFound(conversation_id)
        if type(last.event) is ConversationCreated:
            raise NoTurnRunning(conversation_id)
        if type(last.event) in TERMINAL_TYPES:
            raise NoTurnRunning(conversation_id, last.turn_id)
        ChainCheck.after(last)  # a checked read: the event the cancel chains to is intact
        batch = [NewEvent(request, last.turn_id)]
        if type(last.event) in _PARKED:
            # A parked turn (awaiting approval) is run by no process: the cancel ends it here.
            iteration = last.event.iteration  # type: ignore[attr-defined]
            failed = TurnFailed("cancelled", _cancel_text(request, last.version + 1), iteration)
            batch.append(NewEvent(failed, last.turn_id))
        try:
            recs = await log.append(conversation_id, batch, last.version, recorded_at=clock.now())
        except ConcurrencyError as exc:
            conflict = exc  # the turn committed meanwhile: look again
            continue
        if len(recs) > 1 and messages is not None:
            await messages.catch_up(log, conversation_id)  # a parked turn ended here: its rows too
            observe = getattr(messages, "observe_turn", None)  # and the whole-turn projections
            if observe is not None:
                await observe(log, conversation_id, None)
        return recs[0]
    assert conflict is not None
    raise conflict


def cancel_message(rec: Recorded) -> str:
    """The ``TurnFailed.message`` of a turn ended by the cancel ``rec``: who asked, and why."""
    ev = rec.event
    assert isinstance(ev, CancelRequested)
    return _cancel_text(ev, rec.version)


#: A turn whose newest event is one of these is parked awaiting approval: nobody runs it.
_PARKED = (ApprovalRequested, ApprovalDecided)


def _cancel_text(ev: CancelRequested, version: int) -> str:
    who = " ".join(f"{k} {v!r}" for k, v in (("tenant", ev.tenant), ("subject", ev.subject)) if v)
    text = f"cancelled by {who or 'an anonymous caller'} (cancel_requested at version {version})"
    return f"{text}: {ev.reason}" if ev.reason else text


class CancelWatch:
    """One running turn's ear for cancels: ``seen`` is told of a ``CancelRequested`` for the turn
    (by the follower task ``start`` runs, or by the group commit that met it), and the turn's
    waits react: ``future`` completes, and the hook a model call set is run."""

    __slots__ = ("_hook", "_log", "_stream_id", "_task", "_turn_id", "future", "request")

    def __init__(self, log: EventLog, stream_id: str, turn_id: str) -> None:
        self._log = log
        self._stream_id = stream_id
        self._turn_id = turn_id
        #: The cancel, once one is seen.
        self.request: Recorded | None = None
        #: Completes with the cancel: a wait that races it (a tool call) ends with it.
        self.future: asyncio.Future[Recorded] = asyncio.get_running_loop().create_future()
        self._hook: Callable[[], None] | None = None
        self._task: asyncio.Task[None] | None = None

    def seen(self, rec: Recorded) -> None:
        """A cancel of this turn is in the log. The first one is the one the turn reports."""
        if self.request is not None:
            return
        self.request = rec
        self.future.set_result(rec)
        if self._hook is not None:
            self._hook()

    def on_request(self, hook: Callable[[], None] | None) -> None:
        """Run ``hook`` when a cancel is seen (at once if one was); None removes it."""
        self._hook = hook
        if hook is not None and self.request is not None:
            hook()

    def failure(self) -> TurnFailure:
        """How the turn stops: ``TurnFailure("cancelled")`` naming who asked."""
        assert self.request is not None
        return TurnFailure("cancelled", cancel_message(self.request))

    def check(self) -> None:
        """Raise the failure if a cancel was seen: called before each side effect."""
        if self.request is not None:
            raise self.failure()

    def start(self, head: Callable[[], Recorded]) -> None:
        """Watch until the turn ends; ``head()`` is the turn's newest committed event."""
        self._task = asyncio.get_running_loop().create_task(self._watch(head))

    async def close(self) -> None:
        """Stop watching: the turn has ended."""
        task = self._task
        if task is None:
            return
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise  # the caller is being cancelled itself: that goes on
        except Exception:
            logger.exception("stream %s: the cancel watch failed", self._stream_id)

    async def _watch(self, head: Callable[[], Recorded]) -> None:
        while True:
            # While the turn commits, its commits meet any cancel (the group commit's conflict):
            # no follower, whose wake-up and chain check per commit would cost the hot path
            # (measured: +3 µs an event, +40 µs a commit).
            last = head()
            await asyncio.sleep(QUIET_S)
            if head() is not last:
                continue
            # Quiet (a slow model, a tool, a stalled provider): follow until it commits again.
            try:
                if await self._follow(last):
                    return
            except LogError as exc:
                # The turn's own commits meet the same log: the watch waits and looks again.
                logger.warning("stream %s: watching for cancels failed (retrying): %s", self._stream_id, exc)
                await asyncio.sleep(_RETRY_S)
            except (IntegrityError, ReplayError) as exc:
                # A cancel still reaches the turn through its commits; every reader of the stream
                # reports the break.
                logger.error("stream %s: no longer watching for cancels: %s", self._stream_id, exc)
                return

    async def _follow(self, last: Recorded) -> bool:
        """Follow the stream after ``last``: True once a cancel is seen or the turn ended, False
        when the turn is busy again (two commits within ``QUIET_S``: its commits take over). A
        turn that stays slow (a word every second) keeps its follower: no read per commit, its
        own batches come with the wake-up."""
        loop = asyncio.get_running_loop()
        previous = loop.time() - QUIET_S  # quiet for QUIET_S at least when the watch follows
        pages = self._log.follow(self._stream_id, last.version, after_hash=last.hash)
        async with contextlib.aclosing(pages):
            async for page in pages:
                for rec in page:
                    if type(rec.event) is CancelRequested and rec.turn_id == self._turn_id:
                        self.seen(rec)
                        return True
                    if type(rec.event) in TERMINAL_TYPES:
                        return True
                now = loop.time()
                if now - previous < QUIET_S:
                    return False
                previous = now
        return True
