"""The turn state machine, and the fold that checks every event of a conversation against it.

One ``transitions.Machine`` is built at import time with ``model=None`` and shared by every turn:
building a Machine per turn costs ~0.2 ms (measured in bench/turn_throughput.py), a shared one
nothing. A turn is a plain object with a ``state`` attribute; phase changes fire
``MACHINE.events[trigger].trigger(turn)``. Per-token events (deltas, usage, tool results) do not
change the state: they are checked against the same machine's transition table (``LEGAL``) without
going through ``trigger``, which keeps per-token work O(1) and cheap.

The same fold runs live (the engine applies each event before it is written) and on replay, so a
reordered, truncated-in-the-middle or forged log fails with ``IllegalEvent`` naming the state,
the event and its version, instead of being silently folded.

Controls (``CancelRequested``) are events of the turn they act on, written by whoever asked, from
any process: legal in every live state, changing no state, so the fold accepts them wherever
they landed between the turn's own events.

Approvals: a tool call that needs a person's decision is recorded as ``ApprovalRequested`` (one
per call) and parks the turn in ``awaiting_approval``: a live state no process runs. Decisions
(``ApprovalDecided``) are internal there; ``TurnResumed`` takes the turn up again, legal there only
once every call awaiting approval is decided. Recovery's resume of an interrupted turn is the same
event from a running state (a model call cut off, ``streaming``, goes on from ``executing``: the
call is made again as the next iteration). The fold's bookkeeping stays O(1) per event.

Erasure (``ConversationErased``) is a conversation-level event like ``ConversationCreated``, not a
turn's: the fold accepts it once, when no turn is live, and refuses any ``TurnStarted`` after it.
"""

from __future__ import annotations

from transitions import Machine

from ._errors import IllegalEvent
from ._events import (
    APPROVAL_DECISIONS,
    GENESIS_HASH,
    ApprovalDecided,
    ApprovalRequested,
    CancelRequested,
    ConversationCreated,
    ConversationErased,
    Event,
    IterationStarted,
    ReasoningDelta,
    Recorded,
    TextDelta,
    ToolCallsRequested,
    ToolCallStarted,
    ToolResultRecorded,
    TurnFailed,
    TurnFinalized,
    TurnResumed,
    TurnStarted,
    UsageRecorded,
    event_type,
)

STATES = ["init", "streaming", "tools_pending", "awaiting_approval", "executing", "finalized", "failed"]
LIVE_STATES = ("init", "streaming", "tools_pending", "awaiting_approval", "executing")
#: Live states a process runs (a parked turn, ``awaiting_approval``, is run by nobody).
RUNNING_STATES = ("init", "streaming", "tools_pending", "executing")
TERMINAL_STATES = ("finalized", "failed")

# Triggers are the event type tags. dest None = internal transition (state unchanged).
TRANSITIONS = [
    {"trigger": "iteration_started", "source": ["init", "executing"], "dest": "streaming"},
    {"trigger": "reasoning_delta", "source": "streaming", "dest": None},
    {"trigger": "text_delta", "source": "streaming", "dest": None},
    {"trigger": "usage_recorded", "source": "streaming", "dest": None},
    {"trigger": "tool_calls_requested", "source": "streaming", "dest": "tools_pending"},
    {"trigger": "tool_call_started", "source": ["tools_pending", "executing"], "dest": "executing"},
    # Approvals: calls that need a person's decision park the turn; each decision is recorded
    # there; the event that takes the turn up again (``turn_resumed``) needs every call decided.
    {"trigger": "approval_requested", "source": ["tools_pending", "awaiting_approval"], "dest": "awaiting_approval"},
    {"trigger": "approval_decided", "source": "awaiting_approval", "dest": None},
    {"trigger": "turn_resumed", "source": "awaiting_approval", "dest": "executing"},
    # Recovery's resume of an interrupted turn: a model call cut off is made again (the next
    # iteration starts from ``executing``); elsewhere the turn goes on from where it stood.
    {"trigger": "turn_resumed", "source": "streaming", "dest": "executing"},
    {"trigger": "turn_resumed", "source": ["init", "tools_pending", "executing"], "dest": None},
    {"trigger": "tool_result_recorded", "source": "executing", "dest": None},
    {"trigger": "turn_finalized", "source": "streaming", "dest": "finalized"},
    {"trigger": "turn_failed", "source": list(LIVE_STATES), "dest": "failed"},
    # A control, not a phase: legal whenever the turn is live, and it changes nothing here. The
    # process running the turn reads it and ends the turn (``TurnFailed(cancelled)``) itself.
    {"trigger": "cancel_requested", "source": list(LIVE_STATES), "dest": None},
]

MACHINE = Machine(
    model=None,
    states=STATES,
    transitions=TRANSITIONS,
    initial="init",
    auto_transitions=False,
    send_event=False,
)

#: trigger -> the states it may fire from, read off the machine itself.
LEGAL: dict[str, frozenset[str]] = {name: frozenset(ev.transitions) for name, ev in MACHINE.events.items()}
#: triggers that change the state: only these go through ``Machine.trigger``.
PHASE_TRIGGERS = frozenset(t["trigger"] for t in TRANSITIONS if t["dest"] is not None)


def mermaid() -> str:
    """The state diagram as Mermaid text (rendered into docs/architecture.md)."""
    lines = ["stateDiagram-v2", "    [*] --> init: turn_started"]
    for t in TRANSITIONS:
        sources = t["source"] if isinstance(t["source"], list) else [t["source"]]
        for s in sources:
            lines.append(f"    {s} --> {t['dest'] or s}: {t['trigger']}")
    lines += ["    finalized --> [*]", "    failed --> [*]"]
    return "\n".join(lines)


class Turn:
    """One turn's machine model plus the bookkeeping the machine cannot express (iteration
    numbers, which tool calls are owed a result)."""

    __slots__ = ("awaiting", "calls", "decided", "iteration", "results", "started", "state", "turn_id")

    def __init__(self, turn_id: str) -> None:
        self.turn_id = turn_id
        self.state = "init"
        self.iteration = 0
        self.calls: dict[str, str] = {}  # requested call id -> name, this iteration
        self.started: set[str] = set()
        self.results: set[str] = set()
        #: Calls of this iteration awaiting approval (call id -> name), and their decisions.
        self.awaiting: dict[str, str] = {}
        self.decided: dict[str, str] = {}

    @property
    def live(self) -> bool:
        return self.state in LIVE_STATES


class ConversationFold:
    """Checks a conversation's events in order: versions gapless, hashes chained, each event legal
    in its turn's state. ``apply`` raises ``IllegalEvent`` and leaves the fold unchanged."""

    __slots__ = ("created", "erased", "last_hash", "turn", "turns", "version")

    def __init__(self) -> None:
        self.version = 0
        self.last_hash = GENESIS_HASH
        self.created: ConversationCreated | None = None
        #: The conversation's content was erased (``ConversationErased``): no turn may start.
        self.erased: ConversationErased | None = None
        self.turn: Turn | None = None  # the newest turn
        self.turns = 0

    @property
    def live_turn(self) -> Turn | None:
        t = self.turn
        return t if t is not None and t.state in LIVE_STATES else None

    def apply(self, rec: Recorded) -> None:
        # Fast path for the common case, deltas in a streaming turn: the same checks as below
        # (version, hash link, turn, state, iteration), without the general dispatch.
        ev = rec.event
        if type(ev) is TextDelta or type(ev) is ReasoningDelta:
            turn = self.turn
            version = rec.version
            if (
                version == self.version + 1
                and rec.prev_hash == self.last_hash
                and turn is not None
                and turn.state == "streaming"
                and rec.turn_id == turn.turn_id
                and ev.iteration == turn.iteration
            ):
                self.version = version
                self.last_hash = rec.hash
                return
        if rec.version != self.version + 1:
            why = "duplicated or reordered" if rec.version <= self.version else "events are missing before it"
            raise IllegalEvent(
                stream_id=rec.stream_id,
                version=rec.version,
                event_type=rec.type,
                state=self._state(),
                why=f"expected version {self.version + 1} ({why})",
            )
        if rec.prev_hash != self.last_hash:
            raise IllegalEvent(
                stream_id=rec.stream_id,
                version=rec.version,
                event_type=rec.type,
                state=self._state(),
                why="prev_hash does not link to the previous event's hash",
            )
        self.check(rec.event, turn_id=rec.turn_id, stream_id=rec.stream_id, version=rec.version)
        self.version = rec.version
        self.last_hash = rec.hash

    def _state(self) -> str:
        return self.turn.state if self.turn is not None else "no turn"

    def check(self, ev: Event, *, turn_id: str, stream_id: str, version: int) -> None:
        """Apply one event's state change, raising ``IllegalEvent`` if it is not legal."""
        turn = self.turn
        if (
            (type(ev) is TextDelta or type(ev) is ReasoningDelta)
            and turn is not None
            and turn.state == "streaming"
            and turn_id == turn.turn_id
            and ev.iteration == turn.iteration
        ):
            return  # the hot path: a delta where deltas are legal (the full checks below agree)
        name = event_type(ev)

        def illegal(why: str = "", state: str | None = None) -> IllegalEvent:
            return IllegalEvent(
                stream_id=stream_id, version=version, event_type=name, state=state or self._state(), why=why
            )

        if isinstance(ev, ConversationCreated):
            if version != 1:
                raise illegal("a conversation is created only by its first event")
            self.created = ev
            return
        if isinstance(ev, ConversationErased):
            # A conversation-level event, outside any turn: legal once, with no turn live.
            if self.erased is not None:
                raise illegal("the conversation is already erased")
            if self.live_turn is not None:
                raise illegal(f"turn {self.turn.turn_id!r} is still live")  # type: ignore[union-attr]
            self.erased = ev
            return
        if isinstance(ev, TurnStarted):
            if self.erased is not None:
                raise illegal("the conversation was erased: no turn may start")
            if self.live_turn is not None:
                raise illegal(f"turn {self.turn.turn_id!r} is still live")  # type: ignore[union-attr]
            self.turn = Turn(turn_id)
            self.turns += 1
            return

        turn = self.turn
        if turn is None:
            raise illegal("no turn has started", state="no turn")
        if turn_id != turn.turn_id:
            raise illegal(f"it belongs to turn {turn_id!r} but the current turn is {turn.turn_id!r}")
        state = turn.state
        if state not in LEGAL[name]:
            raise illegal()

        # Bookkeeping the machine cannot express. Cheapest checks first: deltas are the hot path.
        if isinstance(ev, (TextDelta, ReasoningDelta, UsageRecorded)):
            if ev.iteration != turn.iteration:
                raise illegal(f"it names iteration {ev.iteration} during iteration {turn.iteration}")
            return
        if isinstance(ev, CancelRequested):
            return  # no state change, no bookkeeping: the running process acts on it
        if isinstance(ev, ApprovalDecided):
            if ev.call_id not in turn.awaiting:
                raise illegal(f"no tool call {ev.call_id!r} awaits approval")
            if ev.call_id in turn.decided:
                raise illegal(f"tool call {ev.call_id!r} was already decided")
            if ev.decision not in APPROVAL_DECISIONS or ev.iteration != turn.iteration:
                raise illegal(f"a decision is approve or deny, for iteration {turn.iteration}")
            turn.decided[ev.call_id] = ev.decision
            return
        if isinstance(ev, ToolResultRecorded):
            if ev.call_id not in turn.started or ev.call_id in turn.results:
                raise illegal(f"no started tool call {ev.call_id!r} is waiting for a result")
            turn.results.add(ev.call_id)
            return
        if isinstance(ev, IterationStarted):
            if ev.iteration != turn.iteration + 1:
                raise illegal(f"iteration {ev.iteration} follows iteration {turn.iteration}")
            if len(turn.results) != len(turn.calls):
                raise illegal("tool calls of the previous iteration are still owed a result")
            turn.iteration = ev.iteration
            turn.calls = {}
            turn.started = set()
            turn.results = set()
            turn.awaiting = {}
            turn.decided = {}
        elif isinstance(ev, ToolCallsRequested):
            if ev.iteration != turn.iteration or not ev.calls:
                raise illegal("a tool-call request needs the current iteration and at least one call")
            calls = {c.id: c.name for c in ev.calls}
            if len(calls) != len(ev.calls):
                raise illegal("tool call ids repeat")
            turn.calls = calls
        elif isinstance(ev, ToolCallStarted):
            if ev.call_id not in turn.calls or ev.call_id in turn.started:
                raise illegal(f"tool call {ev.call_id!r} was not requested or already started")
            turn.started.add(ev.call_id)
        elif isinstance(ev, ApprovalRequested):
            if ev.iteration != turn.iteration or turn.calls.get(ev.call_id) != ev.name:
                raise illegal(f"tool call {ev.call_id!r} was not requested in iteration {turn.iteration}")
            if ev.call_id in turn.awaiting:
                raise illegal(f"tool call {ev.call_id!r} already awaits approval")
            turn.awaiting[ev.call_id] = ev.name
        elif isinstance(ev, TurnResumed):
            if state == "awaiting_approval" and len(turn.decided) != len(turn.awaiting):
                raise illegal("tool calls awaiting approval are still undecided")
        elif isinstance(ev, TurnFinalized | TurnFailed):
            pass
        MACHINE.events[name].trigger(turn)
