"""``ToolStep``: running one iteration's tool calls.

Every call starts at once; the results are recorded in call order, each committed (and yielded)
as soon as it and every call before it are done. If the turn fails meanwhile, ``cancel`` stops
the calls still running.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable

import msgspec

from ._commit import GroupCommit
from ._events import Recorded, ToolCall, ToolResultRecorded
from ._ports import Clock
from ._tools import ToolContext, ToolRegistry, ToolResult


class ToolStep:
    """The tool calls of iteration ``iteration``. ``caller`` is what the tools may know about who
    calls them; each call gets it with its own ``call_id``."""

    def __init__(
        self, tools: ToolRegistry, clock: Clock, caller: ToolContext, iteration: int, commit: GroupCommit
    ) -> None:
        self.tools = tools
        self.clock = clock
        self.caller = caller
        self.iteration = iteration
        self.commit = commit
        #: The calls' tasks while they run; empty before and after.
        self.tasks: list[Awaitable[ToolResult]] = []

    def _context(self, call: ToolCall) -> ToolContext:
        return msgspec.structs.replace(self.caller, call_id=call.id)

    async def run(self, calls: list[ToolCall]) -> AsyncIterator[Recorded]:
        """Runs the calls, yielding each result's committed events in call order."""
        tasks = self.tools.run_all(calls, self._context, self.clock.monotonic)
        self.tasks = tasks
        # Awaiting in call order records results in call order, each as soon as it and every
        # call before it are done.
        for task in tasks:
            result = await task
            self.commit.record(
                ToolResultRecorded(
                    self.iteration, result.call_id, result.name, result.content, result.success, result.duration_ms
                )
            )
            for rec in await self.commit.flush():
                yield rec
        self.tasks = []

    def cancel(self) -> None:
        """Stop the calls still running (the turn is failing)."""
        for task in self.tasks:
            task.cancel()  # type: ignore[attr-defined]
