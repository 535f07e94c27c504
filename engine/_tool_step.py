"""``ToolStep``: running one iteration's tool calls.

Every call starts at once; the results are recorded in call order, each committed (and yielded)
as soon as it and every call before it are done. A cancel of the turn ends the wait at once
(``TurnFailure("cancelled")``). If the turn fails meanwhile, for whatever reason, ``stop`` keeps
the results of the calls that finished (recorded, in call order) and stops the calls still
running. Calls a person denied, and calls a crash left without a result that may not run twice,
are given their result without running (``fixed``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import msgspec

from ._cancel import CancelWatch
from ._commit import GroupCommit
from ._events import Recorded, ToolCall, ToolResultRecorded
from ._ports import Clock
from ._tools import ToolContext, ToolRegistry, ToolResult


class ToolStep:
    """The tool calls of iteration ``iteration``. ``caller`` is what the tools may know about who
    calls them; each call gets it with its own ``call_id``."""

    def __init__(
        self,
        tools: ToolRegistry,
        clock: Clock,
        caller: ToolContext,
        iteration: int,
        commit: GroupCommit,
        watch: CancelWatch,
    ) -> None:
        self.tools = tools
        self.clock = clock
        self.caller = caller
        self.iteration = iteration
        self.commit = commit
        self.watch = watch
        #: The calls' tasks while they run; empty before and after.
        self.tasks: list[asyncio.Future[ToolResult]] = []
        #: Calls whose result is recorded.
        self.recorded: set[int] = set()

    def _context(self, call: ToolCall) -> ToolContext:
        return msgspec.structs.replace(self.caller, call_id=call.id)

    def _record(self, index: int, result: ToolResult) -> None:
        self.recorded.add(index)
        self.commit.record(
            ToolResultRecorded(
                self.iteration, result.call_id, result.name, result.content, result.success, result.duration_ms
            )
        )

    async def run(self, calls: list[ToolCall], fixed: dict[str, str] | None = None) -> AsyncIterator[Recorded]:
        """Runs the calls, yielding each result's committed events in call order. A call named in
        ``fixed`` is not run: its result is that text, ``success: false`` (a denial, an outcome
        unknown after a crash)."""
        if fixed:
            loop = asyncio.get_running_loop()
            tasks = []
            for call in calls:
                if call.id in fixed:
                    done: asyncio.Future[ToolResult] = loop.create_future()
                    done.set_result(ToolResult(call.id, call.name, fixed[call.id], False, 0.0))
                    tasks.append(done)
                else:
                    tasks.append(
                        asyncio.ensure_future(self.tools.run_one(call, self._context(call), self.clock.monotonic))
                    )
        else:
            tasks = self.tools.run_all(calls, self._context, self.clock.monotonic)  # type: ignore[assignment]
        self.tasks = tasks
        cancelled = self.watch.future
        # Awaiting in call order records results in call order, each as soon as it and every
        # call before it are done.
        for index, task in enumerate(tasks):
            if not task.done():
                await asyncio.wait((task, cancelled), return_when=asyncio.FIRST_COMPLETED)
                if not task.done():
                    raise self.watch.failure()
            self._record(index, task.result())
            for rec in await self.commit.flush():
                yield rec
        self.tasks = []

    def stop(self, *, keep: bool) -> None:
        """The turn is failing: with ``keep``, record the results of the calls that finished and
        were not recorded yet (in call order); stop the calls still running."""
        for index, task in enumerate(self.tasks):
            if index in self.recorded:
                continue
            if keep and task.done() and not task.cancelled() and task.exception() is None:
                self._record(index, task.result())
            else:
                task.cancel()
        self.tasks = []
