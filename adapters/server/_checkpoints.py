"""Signed checkpoints on a schedule (``turnlog serve --checkpoint-key KEYFILE --checkpoint-every S``).

Every ``every`` seconds the service signs a checkpoint of the log's Merkle tree head when the log
holds events the newest checkpoint does not cover (``checkpoint_if_grown``: reads only the new
events). Several servers over one log may all do it; a checkpoint more is harmless. A store that
is down is retried at the next tick. A log that lost events (``IntegrityError``) is never signed
over: the loop logs it as an error and stops, since every later checkpoint would certify a
damaged log.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from turnlog.engine import Clock, EventLog, IntegrityError, LogError, Signer, checkpoint_if_grown

logger = logging.getLogger("turnlog.server")


class Checkpointer:
    """The schedule's task, from ``start`` to ``stop``."""

    def __init__(self, log: EventLog, signer: Signer, *, every: float, origin: str, clock: Clock) -> None:
        self._log = log
        self._signer = signer
        self._every = every
        self._origin = origin
        self._clock = clock
        self._task: asyncio.Task[None] | None = None
        #: Checkpoints signed by this process (for the operator and the tests).
        self.signed = 0

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._every)
            try:
                cp = await checkpoint_if_grown(self._log, self._signer, origin=self._origin, clock=self._clock)
            except IntegrityError as exc:
                logger.error("checkpoints stopped: the log does not hold: %s", exc)
                return
            except LogError as exc:
                logger.warning("checkpoint failed (retrying in %g s): %s", self._every, exc)
                continue
            if cp is not None:
                self.signed += 1
                logger.info("signed checkpoint of %d events (root %s)", cp.size, cp.root[:16])
