"""``TurnRun``: the loop of one started turn.

Each iteration renders the request, records ``IterationStarted`` and commits it before calling
the model (the log shows what was attempted even if the process dies during the call), streams
the model call, then either finalizes the turn (no tool calls) or records the tool calls, commits
them before running them, and records their results. A turn that would need more than
``max_iterations`` model calls fails; so does one whose model call fails. ``fail`` ends the turn
keeping everything recorded before it (and the results of tool calls that finished).

A cancel (``CancelWatch``) is checked before each side effect (calling the model, running tools)
and ends the model call or the tools' wait it arrives in: the turn fails ``cancelled``.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator

from ._cancel import CancelWatch
from ._commit import GroupCommit
from ._events import (
    IterationStarted,
    Recorded,
    ToolCallsRequested,
    ToolCallStarted,
    TurnFailed,
    TurnFinalized,
    Usage,
    UsageRecorded,
)
from ._failure import TurnFailure
from ._llm import LLM
from ._machine import LIVE_STATES, ConversationFold, Turn
from ._model_call import ModelCall, OutputBudget
from ._ports import Clock
from ._request import TurnHistory
from ._tool_step import ToolStep
from ._tools import ToolContext, ToolRegistry


class TurnRun:
    """The mutable state of one running turn. Only the engine touches it."""

    def __init__(
        self,
        *,
        llm: LLM,
        tools: ToolRegistry,
        clock: Clock,
        queue_size: int,
        budget: OutputBudget,
        fold: ConversationFold,
        history: TurnHistory,
        commit: GroupCommit,
        caller: ToolContext,
        watch: CancelWatch,
    ) -> None:
        self.llm = llm
        self.tools = tools
        self.clock = clock
        #: Chunks the model call's producer may read ahead.
        self.queue_size = queue_size
        #: What the model may still write in this turn (over all its iterations).
        self.budget = budget
        self.fold = fold
        self.history = history
        self.commit = commit
        #: What a tool may know about its caller (``call_id`` is set per call).
        self.caller = caller
        #: Hears of a cancel of the turn.
        self.watch = watch
        self.usage = Usage()
        self.iteration = 0
        #: The current iteration's tool calls, while they run.
        self.tool_step: ToolStep | None = None

    def head(self) -> Recorded:
        """The turn's newest committed event."""
        assert self.commit.head is not None
        return self.commit.head

    @property
    def turn(self) -> Turn:
        assert self.fold.turn is not None
        return self.fold.turn

    async def iterate(self) -> AsyncIterator[Recorded]:
        started = self.history.started
        commit = self.commit
        watch = self.watch
        for iteration in range(1, started.max_iterations + 1):
            watch.check()
            self.iteration = iteration
            request = self.history.request()
            body = self.llm.render(request)
            commit.record(IterationStarted(iteration, hashlib.sha256(body).hexdigest(), request.model))
            for rec in await commit.flush():
                yield rec
            watch.check()  # the flush may have met the cancel: the model is not called
            call = ModelCall(self.llm, body, iteration, commit, self.queue_size, watch, self.budget)
            async for batch in call.batches():
                for rec in batch:
                    yield rec
            outcome = call.outcome
            usage, calls, finish = outcome.usage, outcome.calls, outcome.finish_reason
            if usage is not None:
                self.usage = self.usage + Usage(usage.prompt_tokens, usage.completion_tokens, usage.total_tokens)
                commit.record(
                    UsageRecorded(
                        iteration, usage.prompt_tokens, usage.completion_tokens, usage.total_tokens, usage.raw
                    )
                )
            if not calls:
                commit.record(
                    TurnFinalized(
                        started.assistant_message_id, self.usage.completion_tokens, self.usage, finish or "stop"
                    )
                )
                for rec in await commit.flush():
                    yield rec
                return
            commit.record(ToolCallsRequested(iteration, calls, finish or "tool_calls"))
            if iteration >= started.max_iterations:
                raise TurnFailure("max_iterations", f"Exceeded maximum tool call iterations ({started.max_iterations})")
            watch.check()  # cancelled while the model answered: the calls are requested, none starts
            for tool_call in calls:
                commit.record(ToolCallStarted(iteration, tool_call.id, tool_call.name, tool_call.arguments))
            for rec in await commit.flush():
                yield rec
            watch.check()  # no tool runs once the turn is cancelled
            step = self.tool_step = ToolStep(self.tools, self.clock, self.caller, iteration, commit, watch)
            async for rec in step.run(calls):
                yield rec
        raise AssertionError("unreachable: the last iteration either finalizes or fails")

    async def fail(self, reason: str, message: str) -> list[Recorded]:
        """End the turn as failed, keeping everything recorded so far. Safe to call from any point,
        including after a cancelled flush."""
        if self.tool_step is not None:
            self.tool_step.stop(keep=self.turn.state == "executing")
        committed = await self.commit.settle()
        if self.turn.state not in LIVE_STATES:
            return committed
        self.commit.record(TurnFailed(reason, message, self.iteration))
        return committed + await self.commit.flush()
