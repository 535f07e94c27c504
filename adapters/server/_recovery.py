"""Crash recovery: turns left live by a dead process end as ``TurnFailed(interrupted)``.

At start the service fails every turn whose newest event is older than ``recover_grace`` seconds,
then sweeps again every ``recover_grace / 2`` seconds, so a turn orphaned by a dead server ends
on whichever server is up (and a client following it gets its end). Why a grace period: with
several servers over one log, a turn whose events are recent may be running elsewhere. A live
turn on another server is spared while it keeps writing, so the grace must be longer than a
turn's longest silence (tool timeout, the model's idle timeout). A turn this process runs is
never swept, however silent. ``recover_grace = 0`` (one server) recovers every live turn at
start and never sweeps.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Collection

from turnlog.engine import Clock, EventLog, TurnlogError, recover
from turnlog.projections import MessageStore

logger = logging.getLogger("turnlog.server")


class Recovery:
    """Recovery at start, then the periodic sweep (a task of its own until ``stop``)."""

    def __init__(
        self, log: EventLog, messages: MessageStore, *, clock: Clock, grace: float, spare: Collection[str]
    ) -> None:
        """``spare``: the conversations whose turns this process runs, as a live view (never swept)."""
        self._log = log
        self._messages = messages
        self._clock = clock
        self._grace = grace
        self._spare = spare
        self._sweeper: asyncio.Task[None] | None = None

    async def start(self) -> None:
        done = await recover(self._log, clock=self._clock, older_than=self._grace, messages=self._messages)
        for r in done:
            logger.warning("recovered turn %s of %s as interrupted (version %d)", r.turn_id, r.stream_id, r.version)
        if self._grace > 0:
            self._sweeper = asyncio.get_running_loop().create_task(self._sweep())

    async def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper

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
                )
            except TurnlogError as exc:
                # Never let the sweep die: a log that is down (or a conversation that cannot be
                # read) is tried again at the next sweep; the operator gets the reason.
                logger.warning("recovery sweep failed (retrying later): %s", exc)
                continue
            for r in done:
                logger.warning("recovered orphaned turn %s of %s as interrupted", r.turn_id, r.stream_id)
