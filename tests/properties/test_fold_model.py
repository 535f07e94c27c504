"""The fold against a small reference model of a turn (hypothesis, stateful).

Random sequences of legal and illegal events: every event the reference model calls illegal is
refused with ``IllegalEvent`` and leaves the fold exactly as it was; every legal one is accepted.
The model is written from the brief's state table, not from the fold's code: the two agreeing
over thousands of sequences is the point."""

from __future__ import annotations

from dataclasses import dataclass, field

import hypothesis.strategies as st
from hypothesis import settings
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule
from turnlog.engine import (
    ConversationCreated,
    ConversationFold,
    IllegalEvent,
    IterationStarted,
    ReasoningDelta,
    TextDelta,
    ToolCall,
    ToolCallsRequested,
    ToolCallStarted,
    ToolResultRecorded,
    TurnFailed,
    TurnFinalized,
    TurnStarted,
    Usage,
    UsageRecorded,
)

from ..conftest import turn_started

LIVE = {"init", "streaming", "tools_pending", "executing"}
CALL_IDS = ["a", "b", "c"]


@dataclass
class Model:
    """The brief's turn: states, iterations counted from 1, calls requested, started, answered."""

    turn: str | None = None
    state: str = "none"
    iteration: int = 0
    requested: list[str] = field(default_factory=list)
    started: set[str] = field(default_factory=set)
    answered: set[str] = field(default_factory=set)

    def legal(self, ev: object, turn_id: str) -> bool:
        if isinstance(ev, TurnStarted):
            return self.state not in LIVE
        if self.turn is None or turn_id != self.turn:
            return False
        s = self.state
        if isinstance(ev, IterationStarted):
            owed = set(self.requested) - self.answered
            return s in ("init", "executing") and ev.iteration == self.iteration + 1 and not owed
        if isinstance(ev, (TextDelta, ReasoningDelta, UsageRecorded)):
            return s == "streaming" and ev.iteration == self.iteration
        if isinstance(ev, ToolCallsRequested):
            ids = [c.id for c in ev.calls]
            return s == "streaming" and ev.iteration == self.iteration and bool(ids) and len(set(ids)) == len(ids)
        if isinstance(ev, ToolCallStarted):
            return (
                s in ("tools_pending", "executing") and ev.call_id in self.requested and ev.call_id not in self.started
            )
        if isinstance(ev, ToolResultRecorded):
            return s == "executing" and ev.call_id in self.started and ev.call_id not in self.answered
        if isinstance(ev, TurnFinalized):
            return s == "streaming"
        if isinstance(ev, TurnFailed):
            return s in LIVE
        raise AssertionError(ev)

    def apply(self, ev: object, turn_id: str) -> None:
        if isinstance(ev, TurnStarted):
            self.turn, self.state, self.iteration = turn_id, "init", 0
            self.requested, self.started, self.answered = [], set(), set()
        elif isinstance(ev, IterationStarted):
            self.state, self.iteration = "streaming", ev.iteration
            self.requested, self.started, self.answered = [], set(), set()
        elif isinstance(ev, ToolCallsRequested):
            self.state, self.requested = "tools_pending", [c.id for c in ev.calls]
        elif isinstance(ev, ToolCallStarted):
            self.state = "executing"
            self.started.add(ev.call_id)
        elif isinstance(ev, ToolResultRecorded):
            self.answered.add(ev.call_id)
        elif isinstance(ev, TurnFinalized):
            self.state = "finalized"
        elif isinstance(ev, TurnFailed):
            self.state = "failed"


KINDS = [
    "started",
    "iteration",
    "text",
    "reasoning",
    "usage",
    "calls",
    "call_started",
    "result",
    "finalized",
    "failed",
]

#: What usually comes next in each state (drawn 80% of the time; the rest is any event at all).
NEXT = {
    "none": ["started"],
    "init": ["iteration", "failed"],
    "streaming": ["text", "reasoning", "usage", "calls", "calls", "finalized", "failed"],
    "tools_pending": ["call_started", "call_started", "failed"],
    "executing": ["call_started", "result", "result", "iteration", "failed"],
    "finalized": ["started"],
    "failed": ["started"],
}


def draw_event(data: st.DataObject, model: Model) -> object:
    """Mostly plausible events (the current iteration, a requested call), sometimes anything: so
    sequences reach every state, and every state meets illegal events too."""
    plausible = NEXT[model.state]
    kind = data.draw(st.sampled_from(plausible) if data.draw(st.integers(0, 9)) < 8 else st.sampled_from(KINDS))
    near = model.iteration + 1 if kind == "iteration" else model.iteration
    it = data.draw(st.sampled_from([near, near, near, model.iteration + 1, 0, 7]))
    known = model.requested or CALL_IDS
    cid = data.draw(st.sampled_from([*known, *known, "zz"]))
    if kind == "started":
        return turn_started()
    if kind == "iteration":
        return IterationStarted(it, "0" * 64)
    if kind == "text":
        return TextDelta(it, "t")
    if kind == "reasoning":
        return ReasoningDelta(it, "r")
    if kind == "usage":
        return UsageRecorded(it, 1, 1, 2)
    if kind == "calls":
        unique = data.draw(st.booleans()) or data.draw(st.booleans())
        ids = data.draw(st.lists(st.sampled_from(CALL_IDS), min_size=0 if not unique else 1, max_size=3, unique=unique))
        return ToolCallsRequested(it, [ToolCall(c, "f", "{}") for c in ids], "tool_calls")
    if kind == "call_started":
        return ToolCallStarted(it, cid, "f", "{}")
    if kind == "result":
        return ToolResultRecorded(it, cid, "f", "ok", True, 1.0)
    if kind == "finalized":
        return TurnFinalized("a", 1, Usage(), "stop")
    return TurnFailed("internal", "x", 0)


class FoldAgainstModel(RuleBasedStateMachine):
    @initialize()
    def create(self) -> None:
        self.fold = ConversationFold()
        self.model = Model()
        self.version = 1
        self.turns = 0
        self.fold.check(ConversationCreated(), turn_id="", stream_id="c", version=1)

    def snapshot(self) -> tuple:
        t = self.fold.turn
        if t is None:
            return (None,)
        return (t.turn_id, t.state, t.iteration, dict(t.calls), set(t.started), set(t.results))

    @rule(data=st.data())
    def append(self, data: st.DataObject) -> None:
        ev = draw_event(data, self.model)
        wrong_turn = data.draw(st.booleans().map(lambda b: b and data.draw(st.booleans())))
        if isinstance(ev, TurnStarted):
            turn_id = f"turn-{self.turns + 1}"
        else:
            turn_id = "turn-other" if wrong_turn else (self.model.turn or "turn-none")
        legal = self.model.legal(ev, turn_id)
        before = self.snapshot()
        try:
            self.fold.check(ev, turn_id=turn_id, stream_id="c", version=self.version + 1)  # type: ignore[arg-type]
        except IllegalEvent as exc:
            assert not legal, f"refused a legal {type(ev).__name__}: {exc}"
            assert self.snapshot() == before, "a refused event changed the fold"
            assert exc.stream_id == "c" and exc.version == self.version + 1
            return
        assert legal, f"accepted an illegal {type(ev).__name__} in state {self.model.state!r}"
        self.version += 1
        if isinstance(ev, TurnStarted):
            self.turns += 1
        self.model.apply(ev, turn_id)

    @rule()
    def a_second_conversation_created_is_refused(self) -> None:
        before = self.snapshot()
        try:
            self.fold.check(ConversationCreated(), turn_id="", stream_id="c", version=self.version + 1)
        except IllegalEvent:
            assert self.snapshot() == before
            return
        raise AssertionError("ConversationCreated accepted after version 1")

    @invariant()
    def states_agree(self) -> None:
        t = self.fold.turn
        assert (t.state if t is not None else "none") == self.model.state

    @invariant()
    def every_state_is_reached_over_the_run(self) -> None:
        REACHED.add(self.model.state)


REACHED: set[str] = set()
FoldAgainstModel.TestCase.settings = settings(max_examples=300, stateful_step_count=40, deadline=None)
test_the_fold_agrees_with_the_reference_model = FoldAgainstModel.TestCase


def test_the_runs_reached_every_state() -> None:
    # Guards the generator: a model test that never reaches 'executing' proves nothing there.
    assert {"init", "streaming", "tools_pending", "executing", "finalized", "failed"} <= REACHED
