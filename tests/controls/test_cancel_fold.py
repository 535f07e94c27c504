"""``CancelRequested`` in the machine and the fold: legal in every live state of its own turn,
changing nothing; refused where no turn is live or when it names another turn; an old log (no
cancels) and a log with cancels replay alike."""

from __future__ import annotations

import msgspec
import pytest
from turnlog.engine import (
    TRANSITIONS,
    CancelRequested,
    ConversationCreated,
    ConversationFold,
    IllegalEvent,
    IterationStarted,
    TextDelta,
    ToolCall,
    ToolCallsRequested,
    ToolCallStarted,
    ToolResultRecorded,
    TurnFailed,
    TurnFinalized,
    Usage,
    load,
)

from ..conftest import turn_started

STARTED = turn_started()
CALL = ToolCall("a", "f", "{}")
#: A turn through every live state, then finalized.
TURN = [
    STARTED,  # init
    IterationStarted(1, "0" * 64),  # streaming
    TextDelta(1, "x"),
    ToolCallsRequested(1, [CALL]),  # tools_pending
    ToolCallStarted(1, "a", "f", "{}"),  # executing
    ToolResultRecorded(1, "a", "f", "ok", True, 1.0),
    IterationStarted(2, "1" * 64),  # streaming
    TurnFinalized("m2", 1, Usage()),
]
CANCEL = CancelRequested(tenant="acme", subject="ann", reason="stop")


def fold_through(events: list, turn_id: str = "t1") -> ConversationFold:
    fold = ConversationFold()
    fold.check(ConversationCreated(), turn_id="", stream_id="c", version=1)
    for version, ev in enumerate(events, 2):
        fold.check(ev, turn_id=turn_id, stream_id="c", version=version)
    return fold


def snapshot(fold: ConversationFold) -> tuple:
    t = fold.turn
    assert t is not None
    return (t.turn_id, t.state, t.iteration, dict(t.calls), set(t.started), set(t.results))


def test_the_machine_has_cancel_requested_in_every_live_state_and_no_state_change() -> None:
    (cancel,) = [t for t in TRANSITIONS if t["trigger"] == "cancel_requested"]
    assert set(cancel["source"]) == {"init", "streaming", "tools_pending", "awaiting_approval", "executing"}
    assert cancel["dest"] is None


@pytest.mark.parametrize("at", range(1, len(TURN)))
def test_a_cancel_anywhere_in_a_live_turn_is_legal_and_changes_nothing(at: int) -> None:
    fold = fold_through(TURN[:at])
    before = snapshot(fold)
    fold.check(CANCEL, turn_id="t1", stream_id="c", version=at + 2)
    assert snapshot(fold) == before
    # The rest of the turn folds as it would have without the cancel, another cancel too.
    for version, ev in enumerate([CANCEL, *TURN[at:]], at + 3):
        fold.check(ev, turn_id="t1", stream_id="c", version=version)
    assert snapshot(fold)[1] == "finalized"


@pytest.mark.parametrize(
    ("events", "turn_id", "why"),
    [
        ([], "t1", "no turn has started"),
        (TURN, "t1", "not legal in state 'finalized'"),
        ([STARTED, TurnFailed("cancelled", "x", 0)], "t1", "not legal in state 'failed'"),
        ([STARTED], "t2", "it belongs to turn 't2' but the current turn is 't1'"),
    ],
)
def test_a_cancel_with_no_live_turn_of_its_own_is_illegal(events: list, turn_id: str, why: str) -> None:
    fold = fold_through(events)
    before = (fold.version, fold.turn and snapshot(fold))
    with pytest.raises(IllegalEvent, match=why):
        fold.check(CANCEL, turn_id=turn_id, stream_id="c", version=len(events) + 2)
    assert (fold.version, fold.turn and snapshot(fold)) == before


def test_fields_are_optional_and_encoded_by_name() -> None:
    payload = b'{"type":"cancel_requested"}'
    rec = load("c", 3, 3, "t1", "2026-01-01T00:00:00Z", "cancel_requested", 1, "0" * 64, "1" * 64, payload)
    assert rec.event == CancelRequested()
    assert msgspec.json.decode(msgspec.json.encode(CANCEL)) == {
        "type": "cancel_requested",
        "tenant": "acme",
        "subject": "ann",
        "reason": "stop",
    }
