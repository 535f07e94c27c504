"""Taking a turn up again from the log: after the decisions of a parked turn, or after a crash.

A parked turn (``awaiting_approval``) holds no task and no socket: everything it needs is in the
log. ``decide_and_continue`` records one decision (``ApprovalDecided``: approve or deny, why, who);
the decision that completes the turn's set is committed together with ``TurnResumed`` (one batch),
so a log whose last event is a decision or an approval request is parked, and any other live turn
is run by someone. The process that wrote ``TurnResumed`` goes on with the turn: the iteration's
calls start (a denied one is given the denial as its ``success: false`` result, without running),
then the next model call, up to the iteration limit.

``resume_interrupted`` is recovery's other choice for a turn whose process died (``turnlog recover
--resume``, the server's ``resume_interrupted``): ``TurnResumed`` (cause ``recovery``) at the
version read, then the turn goes on from where the log says it stood:

- a model call cut off (``streaming``) or never made (``init``) is made again, as the next
  iteration (a retried call counts toward ``max_iterations``); the words the cut-off call streamed
  stay in the log, in their own iteration, and are neither sent to the model again nor part of
  the answer (the answer is the last iteration's text, in the rows and in ``PriorTurns``);
- finished tool results are kept (never run again); calls requested and not started are started;
- a call started and not finished is run again only if its tool is declared ``idempotent`` (with
  its call id as ``ToolContext.idempotency_key``, the same as the first run's); otherwise its
  result is recorded as an unknown outcome (``success: false``), for the model to see: it is never
  run twice.

Both read the whole conversation once (checked: the hash chain and the state machine), which gives
the fold, the request history (prior turns with ``PriorTurns``, the turn's own events with
``TurnHistory``: the request the model gets is the one an uninterrupted turn would send) and where
the turn stands. The message rows of a turn taken up again are caught up from the log when its
batch parks it, resumes it or ends it (``Messages.catch_up``: the row sink of a turn knows only the
events it was given).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Any

from ._cancel import CANCEL_ATTEMPTS
from ._errors import (
    AlreadyDecided,
    ConcurrencyError,
    ConfigError,
    ConversationNotFound,
    NotAwaitingApproval,
    NoTurnRunning,
    TurnAwaitingApproval,
    UnknownCall,
)
from ._events import (
    APPROVAL_DECISIONS,
    ApprovalDecided,
    ApprovalRequested,
    IterationStarted,
    ReasoningDelta,
    Recorded,
    TextDelta,
    ToolCall,
    ToolCallsRequested,
    TurnFailed,
    TurnFinalized,
    TurnResumed,
    TurnStarted,
    Usage,
    UsageRecorded,
)
from ._failure import TurnFailure
from ._fork import inherited_prior
from ._log import EventLog
from ._machine import ConversationFold
from ._model_call import OutputBudget, utf8_size
from ._ports import Messages
from ._request import PriorMessage, PriorTurns, TurnHistory
from ._tools import ToolContext
from ._turn import TurnRun, drive, new_run

#: Batches after which the rows of a turn taken up again are caught up from the log.
_ROWS_CHANGE = (ApprovalRequested, ApprovalDecided, TurnResumed, TurnFinalized, TurnFailed)
_TURN_ENDS = (TurnFinalized, TurnFailed)


class _Stand:
    """Where a conversation's newest turn stands, read from the log."""

    def __init__(self, round_trip_reasoning: bool, inherited: list[PriorMessage]) -> None:
        self.fold = ConversationFold()
        self.round_trip = round_trip_reasoning
        self.prior = PriorTurns(inherited)
        self.history: TurnHistory | None = None
        self.started: TurnStarted | None = None
        #: The version of the newest turn's TurnStarted.
        self.started_version = 0
        #: The current iteration's requested calls, in order; its decisions by call id.
        self.calls: list[ToolCall] = []
        self.decisions: dict[str, ApprovalDecided] = {}
        self.usage = Usage()
        self.out_bytes = 0
        self.deltas = 0

    def apply(self, rec: Recorded) -> None:
        self.fold.apply(rec)
        ev = rec.event
        cls = type(ev)
        if cls is TurnStarted:
            # As the turn's requests were built (rebuild_requests folds it the same way).
            self.history = TurnHistory(self.prior.for_turn(ev), ev, round_trip_reasoning=self.round_trip)
            self.started, self.started_version = ev, rec.version
            self.calls, self.decisions, self.usage, self.out_bytes, self.deltas = [], {}, Usage(), 0, 0
        elif self.history is not None:
            self.history.apply(ev)
            if cls is TextDelta or cls is ReasoningDelta:
                self.out_bytes += utf8_size(ev.text)  # type: ignore[attr-defined]
                self.deltas += 1
            elif cls is IterationStarted:
                self.calls, self.decisions = [], {}
            elif cls is ToolCallsRequested:
                self.calls = list(ev.calls)  # type: ignore[attr-defined]
                self.out_bytes += sum(utf8_size(c.arguments) for c in self.calls)
            elif cls is ApprovalDecided:
                self.decisions[ev.call_id] = ev  # type: ignore[attr-defined]
            elif cls is UsageRecorded:
                self.usage = self.usage + Usage(ev.prompt_tokens, ev.completion_tokens, ev.total_tokens)  # type: ignore[attr-defined]
        self.prior.apply(ev)


async def _stand(engine: Any, conv: str) -> _Stand:
    stand = _Stand(engine.llm.round_trip_reasoning, await inherited_prior(engine.log, conv))
    async for rec in engine.log.iter_stream(conv):
        stand.apply(rec)
    if stand.fold.version == 0:
        raise ConversationNotFound(conv)
    return stand


class _CatchUpSink:
    """The row sink of a turn taken up again: its batches that park, resume or end the turn bring
    the rows up to the log (``Messages.catch_up``), before they are shown. The batch that ends it
    also hands the whole turn to the store's observers (``observe_turn``, where the store has it:
    they never saw the turn's batches, which went to the rows by catch-up)."""

    __slots__ = ("_conv", "_log", "_messages", "_started")

    def __init__(self, messages: Messages, log: EventLog, conv: str, started: int) -> None:
        self._messages, self._log, self._conv, self._started = messages, log, conv, started

    async def committed(self, records: Sequence[Recorded]) -> None:
        if any(type(rec.event) in _ROWS_CHANGE for rec in records):
            await self._messages.catch_up(self._log, self._conv)
        observe = getattr(self._messages, "observe_turn", None)
        if observe is not None and type(records[-1].event) in _TURN_ENDS:
            await observe(self._log, self._conv, self._started)


def _run_of(engine: Any, conv: str, stand: _Stand) -> TurnRun:
    fold, started, history = stand.fold, stand.started, stand.history
    assert fold.turn is not None and started is not None and history is not None
    cfg = engine.config
    turn_id = fold.turn.turn_id
    # What the tools knew of their caller and the log did not keep (a username, a workspace) is
    # not known here: the subject stands for the user, as the server sets it.
    caller = ToolContext(
        conversation_id=conv,
        turn_id=turn_id,
        call_id="",
        permission_level=started.permission_level,
        user_id=started.subject or None,
    )
    budget = OutputBudget(cfg.max_turn_bytes, cfg.max_turn_deltas)
    budget.bytes_left = max(0, budget.bytes_left - stand.out_bytes)
    budget.deltas_left = max(0, budget.deltas_left - stand.deltas)
    sink = _CatchUpSink(engine.messages, engine.log, conv, stand.started_version)
    run = new_run(engine, conv, turn_id, fold.version, sink, fold=fold, history=history, caller=caller, budget=budget)
    run.usage = stand.usage
    run.iteration = fold.turn.iteration
    return run


async def _go_on(
    run: TurnRun,
    calls: list[ToolCall],
    *,
    gate: bool,
    started: frozenset[str] | set[str] = frozenset(),
    fixed: dict[str, str] | None = None,
) -> AsyncIterator[Recorded]:
    """The rest of the current iteration's tools, then the next iterations."""
    iteration = run.iteration
    if calls:
        if gate and iteration >= run.history.started.max_iterations:
            limit = run.history.started.max_iterations
            raise TurnFailure("max_iterations", f"Exceeded maximum tool call iterations ({limit})")
        async for rec in run.tools_of(iteration, calls, gate=gate, started=started, fixed=fixed):
            yield rec
        if run.parked:
            return
    async for rec in run.iterate(iteration + 1):
        yield rec


def _who(tenant: str, subject: str) -> str:
    who = " ".join(f"{k} {v!r}" for k, v in (("tenant", tenant), ("subject", subject)) if v)
    return who or "an anonymous caller"


def denial(name: str, decided: ApprovalDecided) -> str:
    """The result a denied call gets (``success: false``): who denied it, and why."""
    text = f"error: denied by {_who(decided.tenant, decided.subject)}: tool {name} was not run"
    return f"{text}; reason: {decided.reason}" if decided.reason else text


def _parked_why(conv: str, stand: _Stand) -> NotAwaitingApproval:
    turn = stand.fold.turn
    if turn is None:
        return NotAwaitingApproval(conv, "it has no turn yet")
    if not turn.live:
        return NotAwaitingApproval(conv, f"its last turn {turn.turn_id!r} has ended ({turn.state})")
    return NotAwaitingApproval(conv, f"its turn {turn.turn_id!r} is running ({turn.state})")


async def decide_and_continue(
    engine: Any,
    conv: str,
    call_id: str,
    decision: str,
    *,
    reason: str,
    tenant: str,
    subject: str,
    owner: str,
) -> AsyncIterator[Recorded]:
    if decision not in APPROVAL_DECISIONS:
        raise ConfigError(f"a decision is 'approve' or 'deny', not {decision!r}")
    for _ in range(CANCEL_ATTEMPTS):
        stand = await _stand(engine, conv)
        turn = stand.fold.turn
        if turn is None or turn.state != "awaiting_approval":
            raise _parked_why(conv, stand)
        if call_id not in turn.awaiting:
            raise UnknownCall(conv, call_id, [c for c in turn.awaiting if c not in turn.decided])
        if call_id in turn.decided:
            raise AlreadyDecided(conv, call_id, turn.decided[call_id])
        decided = ApprovalDecided(turn.iteration, call_id, decision, reason, tenant, subject)
        run = _run_of(engine, conv, stand)
        run.commit.record(decided)
        complete = len(turn.decided) == len(turn.awaiting)  # the fold counted this decision
        if complete:
            run.commit.record(TurnResumed("approval", owner, tenant, subject))
        try:
            first = await run.commit.flush()
        except ConcurrencyError:
            continue  # someone wrote first (another decision, a cancel): look again
        if not complete:
            for rec in first:
                yield rec
            return
        stand.decisions[call_id] = decided
        fixed = {c.id: denial(c.name, stand.decisions[c.id]) for c in stand.calls if _denied(stand, c.id)}
        async with contextlib.aclosing(drive(run, first, _go_on(run, stand.calls, gate=False, fixed=fixed))) as events:
            async for rec in events:
                yield rec
        return
    raise ConcurrencyError(conv, -1, -1)


def _denied(stand: _Stand, call_id: str) -> bool:
    decided = stand.decisions.get(call_id)
    return decided is not None and decided.decision == "deny"


def unknown_outcome(call: ToolCall) -> str:
    """The result of a call a crash cut off, whose tool is not idempotent: it is not run again."""
    return (
        f"error: outcome unknown: tool {call.name} (call {call.id}) was started and the process running "
        f"the turn stopped before its result was recorded; it is not run again (the tool is not idempotent)"
    )


async def resume_interrupted(
    engine: Any, conv: str, *, owner: str, tenant: str, subject: str
) -> AsyncIterator[Recorded]:
    stand = await _stand(engine, conv)
    turn = stand.fold.turn
    if turn is None or not turn.live:
        raise NoTurnRunning(conv, turn.turn_id if turn is not None else "")
    if turn.state == "awaiting_approval":
        raise TurnAwaitingApproval(conv, turn.turn_id, [c for c in turn.awaiting if c not in turn.decided])
    state = turn.state
    run = _run_of(engine, conv, stand)
    run.commit.record(TurnResumed("recovery", owner, tenant, subject))
    first = await run.commit.flush()  # ConcurrencyError: its process is alive after all
    if state in ("init", "streaming"):
        body = run.iterate(turn.iteration + 1)
    elif state == "tools_pending":
        body = _go_on(run, stand.calls, gate=True)
    else:  # executing: some calls started, some may have results
        remaining = [c for c in stand.calls if c.id not in turn.results]
        fixed: dict[str, str] = {}
        for c in remaining:
            decided = stand.decisions.get(c.id)
            if decided is not None and decided.decision == "deny":
                fixed[c.id] = denial(c.name, decided)
            elif c.id in turn.started:
                tool = engine.tools.get(c.name)
                if tool is None or not tool.idempotent:
                    fixed[c.id] = unknown_outcome(c)
        body = _go_on(run, remaining, gate=False, started=set(turn.started), fixed=fixed)
    async with contextlib.aclosing(drive(run, first, body)) as events:
        async for rec in events:
            yield rec


def parked_calls(log_last: Recorded) -> bool:
    """Whether a conversation whose newest event is ``log_last`` has its turn parked."""
    return type(log_last.event) in (ApprovalRequested, ApprovalDecided)
