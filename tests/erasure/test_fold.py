"""``ConversationErased`` in the fold: legal once, with no turn live; no turn after it. A log that
breaks this (forged, or written around the engine) fails replay with ``IllegalEvent``."""

from __future__ import annotations

import pytest
from turnlog.engine import (
    ConversationCreated,
    ConversationErased,
    ConversationFold,
    IllegalEvent,
    InMemoryEventLog,
    NewEvent,
    TurnFailed,
    replay,
)

from ..conftest import turn_started

AT = "2026-01-01T00:00:00Z"


async def fold(*events: NewEvent) -> list:
    log = InMemoryEventLog()
    await log.append("c", list(events), 0, recorded_at=AT)
    return [rec async for rec in replay(log, "c")]


def erased() -> NewEvent:
    return NewEvent(ConversationErased(tenant="t", subject="s", reason="r"))


async def test_erased_after_ended_turns_replays_and_marks_the_fold() -> None:
    finished = NewEvent(TurnFailed(reason="cancelled", message="", iteration=0), "turn-1")
    recs = await fold(NewEvent(ConversationCreated()), NewEvent(turn_started(), "turn-1"), finished, erased())
    f = ConversationFold()
    for rec in recs:
        f.apply(rec)
    assert f.erased == ConversationErased(tenant="t", subject="s", reason="r") and f.live_turn is None


@pytest.mark.parametrize(
    ("events", "why"),
    [
        ([NewEvent(turn_started(), "turn-1"), erased()], "still live"),
        ([erased(), NewEvent(turn_started(), "turn-1")], "was erased"),
        ([erased(), erased()], "already erased"),
    ],
)
async def test_an_erase_out_of_place_is_an_illegal_event(events: list[NewEvent], why: str) -> None:
    with pytest.raises(IllegalEvent, match=why):
        await fold(NewEvent(ConversationCreated()), *events)
