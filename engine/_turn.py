"""``TurnRun``: the loop of one started turn.

Each iteration renders the request, records ``IterationStarted`` and commits it before calling
the model (the log shows what was attempted even if the process dies during the call), streams
the model call, then either finalizes the turn (no tool calls) or records the tool calls, commits
them before running them, and records their results. A turn that would need more than
``max_iterations`` model calls fails; so does one whose model call fails. ``fail`` ends the turn
keeping everything recorded before it (and the results of tool calls that finished).

A cancel (``CancelWatch``) is checked before each side effect (calling the model, running tools)
and ends the model call or the tools' wait it arrives in: the turn fails ``cancelled``.

Approvals: when the model asks for tools of which one or more need a person's decision (the
tool's ``requires_approval``, or the engine's ``approval`` rule), none of the iteration's calls
runs: ``ApprovalRequested`` is recorded for each call that needs one, committed, and the run ends
with the turn parked (``parked``). ``tools`` is also where a turn taken up again from the log
(``_resume``) goes on: calls already started are not started again, and some calls get their
result without running (denied; or started, cut off by a crash, and not idempotent).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Callable, Collection
from typing import Any

from ._cancel import CancelWatch
from ._commit import GroupCommit
from ._events import (
    ApprovalRequested,
    IterationStarted,
    Recorded,
    ToolCall,
    ToolCallsRequested,
    ToolCallStarted,
    TurnFailed,
    TurnFinalized,
    TurnStarted,
    Usage,
    UsageRecorded,
)
from ._failure import TurnFailure
from ._llm import LLM
from ._machine import LIVE_STATES, ConversationFold, Turn
from ._model_call import ModelCall, OutputBudget
from ._ports import Clock, CommitSink
from ._request import TurnHistory
from ._tool_step import ToolStep
from ._tools import ToolContext, ToolRegistry

#: The engine's approval rule: whether a call of the turn needs a person's decision, given the
#: turn's start (who started it: tenant, subject, permission level), the tool's name and its
#: arguments (the JSON text the model sent). Asked for registered tools only.
ApprovalRule = Callable[[TurnStarted, str, str], bool]


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
        approval: ApprovalRule | None = None,
    ) -> None:
        self.llm = llm
        #: Whether a call needs approval beyond the tool's own flag (None: the flag alone).
        self.approval = approval
        #: True once the run ended with the turn parked, awaiting approval.
        self.parked = False
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

    async def iterate(self, first: int = 1) -> AsyncIterator[Recorded]:
        """Iterations ``first``, ``first + 1``... until the turn finalizes, fails or parks."""
        started = self.history.started
        commit = self.commit
        watch = self.watch
        for iteration in range(first, started.max_iterations + 1):
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
            async for rec in self.tools_of(iteration, calls):
                yield rec
            if self.parked:
                return
        # Reached only by a resumed turn whose retried model call would pass the limit.
        raise TurnFailure("max_iterations", f"Exceeded maximum tool call iterations ({started.max_iterations})")

    def needs_approval(self, call: ToolCall) -> bool:
        tool = self.tools.get(call.name)
        if tool is None:
            return False  # an unknown tool is not run: its result says so
        if tool.requires_approval:
            return True
        return self.approval is not None and bool(self.approval(self.history.started, call.name, call.arguments))

    async def tools_of(
        self,
        iteration: int,
        calls: list[ToolCall],
        *,
        gate: bool = True,
        started: Collection[str] = (),
        fixed: dict[str, str] | None = None,
    ) -> AsyncIterator[Recorded]:
        """Run one iteration's ``calls`` (those still owed a result), or park the turn when
        ``gate`` and one of them needs approval. ``started``: calls whose ToolCallStarted is in
        the log already; ``fixed``: calls given a failed result without running."""
        commit = self.commit
        if gate:
            waiting = [c for c in calls if self.needs_approval(c)]
            if waiting:
                for c in waiting:
                    commit.record(ApprovalRequested(iteration, c.id, c.name, c.arguments))
                for rec in await commit.flush():
                    yield rec
                self.parked = True
                return
        for tool_call in calls:
            if tool_call.id not in started:
                commit.record(ToolCallStarted(iteration, tool_call.id, tool_call.name, tool_call.arguments))
        for rec in await commit.flush():
            yield rec
        self.watch.check()  # no tool runs once the turn is cancelled
        step = self.tool_step = ToolStep(self.tools, self.clock, self.caller, iteration, commit, self.watch)
        async for rec in step.run(calls, fixed):
            yield rec

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


def new_run(
    engine: Any,
    conv: str,
    turn_id: str,
    version: int,
    sink: CommitSink,
    *,
    fold: ConversationFold,
    history: TurnHistory,
    caller: ToolContext,
    budget: OutputBudget,
) -> TurnRun:
    """A turn's loop over its commit (from ``version``, batches to ``sink``) and its cancel watch,
    with ``engine``'s log, model, tools, clock and settings: a new turn's (``TurnEngine._begin``)
    and one taken up again (``_resume``) are built alike."""
    cfg = engine.config
    watch = CancelWatch(engine.log, conv, turn_id)
    commit = GroupCommit(
        engine.log,
        conv,
        turn_id,
        version,
        sink,
        engine.clock,
        flush_events=cfg.flush_events,
        flush_ms=cfg.flush_ms,
        fold=fold,
        history=history,
        watch=watch,
    )
    return TurnRun(
        llm=engine.llm,
        tools=engine.tools,
        clock=engine.clock,
        queue_size=cfg.queue_size,
        budget=budget,
        fold=fold,
        history=history,
        commit=commit,
        caller=caller,
        watch=watch,
        approval=engine.approval,
    )


async def drive(run: TurnRun, first: list[Recorded], body: AsyncIterator[Recorded]) -> AsyncIterator[Recorded]:
    """Yield a started (or taken up) turn's committed events: ``first``, then ``body``'s, ending
    the turn as failed on whatever stops it early (see ``run_turn``)."""
    for rec in first:
        yield rec
    run.watch.start(run.head)
    try:
        async for rec in body:
            yield rec
    except TurnFailure as failure:
        for rec in await run.fail(failure.reason, failure.message):
            yield rec
    except GeneratorExit:
        await run.fail("cancelled", "the client stopped reading the turn")
        raise
    except asyncio.CancelledError:
        await run.fail("cancelled", "the turn was cancelled")
        raise
    except Exception as exc:
        # A bug, not bad input: still recorded, never escaping with the partial output lost.
        for rec in await run.fail("internal", f"internal error: {type(exc).__name__}: {exc}"):
            yield rec
    finally:
        await run.watch.close()
