"""Shared by the performance-behaviour tests: a log that records its reads, a long conversation."""

from __future__ import annotations

from turnlog.engine import (
    ConversationCreated,
    InMemoryEventLog,
    IterationStarted,
    NewEvent,
    Recorded,
    TextDelta,
    TurnFinalized,
    TurnStarted,
    Usage,
    UsageRecorded,
)

AT = "2026-01-01T00:00:00.000000Z"


def turn_started(user_id: str = "m1", assistant_id: str = "m2", *, thinking: bool = False) -> TurnStarted:
    """A turn's start with the message ids given: the scripted model "m", no tools."""
    return TurnStarted(
        user_message="go",
        user_message_id=user_id,
        assistant_message_id=assistant_id,
        provider="scripted",
        model="m",
        temperature=None,
        max_tokens=None,
        thinking=thinking,
        tools=[],
        system_prompt=None,
        max_iterations=5,
    )


def turn_events(deltas: int, turn: str = "t1") -> list[NewEvent]:
    """A conversation of one finished turn of ``deltas`` text deltas (deltas + 5 events)."""
    return [
        NewEvent(ConversationCreated(model="m")),
        NewEvent(turn_started(), turn),
        NewEvent(IterationStarted(1, "0" * 64, "m"), turn),
        *[NewEvent(TextDelta(1, f"w{i} "), turn) for i in range(deltas)],
        NewEvent(UsageRecorded(1, 1, deltas, deltas + 1), turn),
        NewEvent(TurnFinalized("m2", deltas, Usage(1, deltas, deltas + 1)), turn),
    ]


class CountingLog(InMemoryEventLog):
    """The reference log, recording each ``read``: (after_version, limit, rows returned), and
    what the reader had received when the read was made (``handed``: the last version a test's
    consumer noted)."""

    def __init__(self) -> None:
        super().__init__()
        self.reads: list[tuple[int, int, int, int]] = []
        self.handed = 0

    async def read(self, stream_id: str, after_version: int = 0, limit: int = 1000) -> list[Recorded]:
        page = await super().read(stream_id, after_version, limit)
        self.reads.append((after_version, limit, len(page), self.handed))
        return page
