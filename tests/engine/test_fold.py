"""The fold refuses an illegal event and stays exactly as it was, so a reader can report the event
and keep folding nothing further, and the live engine never half-applies a refused event."""

from __future__ import annotations

import pytest
from turnlog.engine import (
    ConversationCreated,
    ConversationFold,
    IllegalEvent,
    IterationStarted,
    ToolCall,
    ToolCallsRequested,
    ToolCallStarted,
    ToolResultRecorded,
)

from ..conftest import turn_started


def fold_at_tools_pending() -> ConversationFold:
    fold = ConversationFold()
    events = [
        ConversationCreated(system_prompt=None, provider="p", model="m", temperature=None, max_tokens=None),
        turn_started(),
        IterationStarted(1, "0" * 64),
        ToolCallsRequested(1, [ToolCall("a", "f", "{}"), ToolCall("b", "g", "{}")], "tool_calls"),
        ToolCallStarted(1, "a", "f", "{}"),
    ]
    for version, ev in enumerate(events, 1):
        fold.check(ev, turn_id="t1", stream_id="c", version=version)
    return fold


def state(fold: ConversationFold) -> tuple:
    t = fold.turn
    assert t is not None
    return (fold.version, fold.last_hash, t.state, t.iteration, dict(t.calls), set(t.started), set(t.results))


@pytest.mark.parametrize(
    ("event", "why"),
    [
        (ToolResultRecorded(1, "b", "g", "x", True, 1), "no started tool call 'b'"),
        (ToolCallStarted(1, "zz", "f", "{}"), "was not requested"),
        (IterationStarted(2, "0" * 64), "still owed a result"),
        (ToolCallsRequested(1, [ToolCall("x", "f", "{}")], "tool_calls"), "not legal in state 'executing'"),
    ],
)
def test_a_refused_event_leaves_the_fold_unchanged(event: object, why: str) -> None:
    fold = fold_at_tools_pending()
    fold.check(ToolResultRecorded(1, "a", "f", "ok", True, 1), turn_id="t1", stream_id="c", version=6)
    before = state(fold)
    with pytest.raises(IllegalEvent, match=why):
        fold.check(event, turn_id="t1", stream_id="c", version=7)  # type: ignore[arg-type]
    assert state(fold) == before


def test_repeated_tool_call_ids_are_refused_without_replacing_the_requested_calls() -> None:
    fold = ConversationFold()
    fold.check(
        ConversationCreated(system_prompt=None, provider="p", model="m", temperature=None, max_tokens=None),
        turn_id="",
        stream_id="c",
        version=1,
    )
    fold.check(turn_started(), turn_id="t1", stream_id="c", version=2)
    fold.check(IterationStarted(1, "0" * 64), turn_id="t1", stream_id="c", version=3)
    with pytest.raises(IllegalEvent, match="tool call ids repeat"):
        fold.check(
            ToolCallsRequested(1, [ToolCall("x", "f", "{}"), ToolCall("x", "g", "{}")], "tool_calls"),
            turn_id="t1",
            stream_id="c",
            version=4,
        )
    assert fold.turn is not None and fold.turn.calls == {} and fold.turn.state == "streaming"
