"""Crash recovery: turns left live by a dead process end as ``TurnFailed(interrupted)``.

**Owners.** Each server has an id (``ServerConfig.server_id``, else one generated per process),
records it as the owner of every turn it starts (``TurnStarted.owner``) and holds it over the log
while it runs (``turnlog.adapters.stores.presence_of``: a file lock beside a SQLite file, a
session advisory lock in PostgreSQL), so the operating system or the database lets go of it the
moment the process dies. Recovery asks, for each live turn it finds:

- its owner is this server's id: at start, the turn belongs to an earlier process with this id
  (this one holds the id now, so that one is gone): it ends **at once**;
- its owner is another id that nobody holds: that server is gone: the turn ends **at once**;
- its owner's id is held: that server runs it: the turn is **never** swept, however long it is
  quiet (a slow tool, a silent model);
- no owner (a turn run outside a server: ``turnlog chat``, a library engine; a turn from before
  owners) or a log that cannot tell: the grace period decides, as before: the turn ends once its
  newest event is older than ``recover_grace``.

So one server killed mid-turn and started again recovers the turn before it serves, with no wait;
the grace is left only for the turns nobody can vouch for. At start every live turn is looked at
(each conversation read once); then the sweep, every ``recover_grace / 2`` seconds, looks at the
live turns quiet for longer than the grace (candidates from the rows: O(live turns)), skipping
the turns this process runs. ``recover_grace = 0`` recovers every unowned live turn at start and
never sweeps. A live turn wrongly ended cannot corrupt the log: its next append gets a
``ConcurrencyError`` and it stops.

**Parked turns are not orphans.** A turn awaiting approval is live and run by nobody on purpose:
recovery leaves it alone (its newest event is a request for, or a decision on, an approval), and
its rows (status ``awaiting_approval``) are not sweep candidates.

**Resume** (``ServerConfig.resume_interrupted``, ``turnlog serve --resume-interrupted``): a turn
recovery would end is taken up by this server instead (``TurnResumed``, then it runs here as a
task of the service; see ``turnlog.engine.TurnEngine.resume_turn`` for what is re-run).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Collection

from turnlog.adapters.stores import Presence
from turnlog.engine import Clock, EventLog, Recorded, TurnlogError, recover
from turnlog.projections import MessageStore

logger = logging.getLogger("turnlog.server")


class Recovery:
    """This server's hold on its id, recovery at start, then the periodic sweep (a task of its own
    until ``stop``). ``leave`` lets go of the id: after the server's turns have ended."""

    def __init__(
        self,
        log: EventLog,
        messages: MessageStore,
        *,
        clock: Clock,
        grace: float,
        spare: Collection[str],
        server_id: str,
        presence: Presence,
        resume: Callable[[str], Awaitable[Recorded | None]] | None = None,
    ) -> None:
        """``spare``: the conversations whose turns this process runs, as a live view (never swept)."""
        self._log = log
        self._messages = messages
        self._clock = clock
        self._grace = grace
        self._spare = spare
        self.server_id = server_id
        self._presence = presence
        self._sweeper: asyncio.Task[None] | None = None
        #: Take interrupted turns up again instead of ending them (``resume_interrupted``).
        self._resume = resume

    async def start(self) -> None:
        # Held before anything is recovered: a second process given this id refuses to start here.
        await self._presence.hold(self.server_id)
        try:
            done = await recover(
                self._log,
                clock=self._clock,
                messages=self._messages,
                decide=self._decider(at_start=True),
                resume=self._resume,
            )
        except BaseException:
            await self._presence.release()
            raise
        for r in done:
            how = "resumed" if r.resumed else "ended as interrupted"
            logger.warning("recovered turn %s of %s: %s (version %d)", r.turn_id, r.stream_id, how, r.version)
        if self._grace > 0:
            self._sweeper = asyncio.get_running_loop().create_task(self._sweep())

    async def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper

    async def leave(self) -> None:
        """Let go of the server id (its turns are over: another server may recover what is left)."""
        await self._presence.release()

    def _decider(self, *, at_start: bool) -> Callable[[str, float], Awaitable[bool]]:
        """Whether recovery ends a live turn, from its owner and its age (seconds since its newest
        event); each owner's presence is asked once per pass."""
        running: dict[str, bool | None] = {}

        async def decide(owner: str, age: float) -> bool:
            old = age >= self._grace
            if not owner:
                return old
            if owner == self.server_id:
                # At start this process holds the id, so the turn's process is gone. Later, a turn
                # of this id that this process does not run is one whose task ended without its end.
                return at_start or old
            if owner not in running:
                running[owner] = await self._presence.running(owner)
            held = running[owner]
            return old if held is None else not held

        return decide

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(self._grace / 2)
            try:
                # Candidates from the rows (a turn's user row is "live" until it ends), not a
                # question to the log per conversation: the sweep costs O(live turns).
                try:
                    candidates: list[str] | None = await self._messages.live_conversations()
                except NotImplementedError:
                    candidates = None
                done = await recover(
                    self._log,
                    clock=self._clock,
                    older_than=self._grace,
                    messages=self._messages,
                    skip=set(self._spare),
                    streams=candidates,
                    decide=self._decider(at_start=False),
                    resume=self._resume,
                )
            except TurnlogError as exc:
                # Never let the sweep die: a log that is down (or a conversation that cannot be
                # read) is tried again at the next sweep; the operator gets the reason.
                logger.warning("recovery sweep failed (retrying later): %s", exc)
                continue
            for r in done:
                logger.warning("recovered orphaned turn %s of %s as interrupted", r.turn_id, r.stream_id)
