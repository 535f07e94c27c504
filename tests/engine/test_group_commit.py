"""Durable before visible, and group commit by count and by time."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Sequence

from turnlog.adapters.llm import ScriptedLLM
from turnlog.engine import EngineConfig, InMemoryEventLog, NewEvent, Recorded, TurnEngine, TurnFinalized, TurnRequest
from turnlog.projections import MemoryMessageStore, MessageRow, stream_sse


class SpyLog(InMemoryEventLog):
    """Remembers each append's batch size and the highest committed version per stream."""

    def __init__(self) -> None:
        super().__init__()
        self.committed: dict[str, int] = {}
        self.batches: list[int] = []

    async def append(
        self, stream_id: str, events: Sequence[NewEvent], expected_version: int, *, recorded_at: str
    ) -> list[Recorded]:
        await asyncio.sleep(0.001)  # a commit takes time: frames must wait for it
        recs = await super().append(stream_id, events, expected_version, recorded_at=recorded_at)
        self.committed[stream_id] = recs[-1].version
        self.batches.append(len(recs))
        return recs


async def test_no_frame_is_yielded_before_its_event_is_committed() -> None:
    log = SpyLog()
    script = [[{"reasoning": "r" * 300, "split": 1}, {"text": "t" * 2000, "split": 1}]]
    engine = TurnEngine(log, ScriptedLLM(script), config=EngineConfig(flush_events=64, flush_ms=1000))
    conv = await engine.create_conversation(model="m")
    seen = 0
    async for frame in stream_sse(engine, conv, TurnRequest("go")):
        version = int(frame.split(b"\n", 1)[0].removeprefix(b"id: "))
        assert version <= log.committed[conv], f"frame {version} left before its event was committed"
        seen += 1
    assert seen == 2301
    # Group commit did group: far fewer appends than events, none larger than flush_events.
    assert max(log.batches) <= 64
    assert len(log.batches) < 2400 / 32


async def test_a_slow_model_gets_its_deltas_committed_within_flush_ms() -> None:
    """With a model that pauses between tokens, each token is committed and shown without waiting
    for flush_events more tokens."""
    log = SpyLog()
    script = [[step for i in range(5) for step in ({"text": f"tok{i} "}, {"sleep": 0.05})]]
    engine = TurnEngine(log, ScriptedLLM(script), config=EngineConfig(flush_events=1000, flush_ms=5))
    conv = await engine.create_conversation(model="m")
    loop = asyncio.get_running_loop()
    arrivals = []
    async for rec in engine.run_turn(conv, TurnRequest("go")):
        if rec.type == "text_delta":
            arrivals.append(loop.time())
    assert len(arrivals) == 5
    # Each token arrived on its own, not all at the end: the pauses between them are visible.
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    assert min(gaps) > 0.02


class _FlakyRows(MemoryMessageStore):
    """Row saves of a turn's end fail while ``broken`` (a row database gone while the log is fine)."""

    def __init__(self) -> None:
        super().__init__()
        self.broken = True

    async def save(self, conversation_id: str, rows: Sequence[MessageRow], version: int) -> None:
        if self.broken and any(r.status != "live" for r in rows):
            raise OSError("row database unreachable")
        await super().save(conversation_id, rows, version)


async def test_a_failing_row_store_does_not_fail_the_turn_and_the_rows_catch_up(caplog) -> None:
    log = InMemoryEventLog()
    rows = _FlakyRows()
    engine = TurnEngine(log, ScriptedLLM([[{"text": "t" * 50, "split": 5}]]), messages=rows)
    conv = await engine.create_conversation(model="m")
    live = [rec async for rec in engine.run_turn(conv, TurnRequest("go"))]
    stored = [rec async for rec in log.iter_stream(conv)]
    # Every committed event is shown, the turn ends as the model ended it, the operator is told.
    assert [r.version for r in live] == [r.version for r in stored[1:]]
    assert type(stored[-1].event) is TurnFinalized
    assert "was not projected" in caplog.text and "row database unreachable" in caplog.text
    assert [r.status for r in await rows.rows(conv)] == ["live"]  # the finalized rows were lost...
    rows.broken = False  # ...the row database is back
    await rows.history(log, conv, stored[-1].version)  # the next turn's start catches them up
    assert [r.status for r in await rows.rows(conv)] == ["finalized", "finalized"]
