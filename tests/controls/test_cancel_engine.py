"""Stop, in process, on every store: ``cancel_turn`` appends a ``CancelRequested`` to the turn's
stream; the engine running the turn reads it (through its commits while it streams, through its
watch while it waits on the model or a tool) and ends the turn ``failed`` / ``cancelled``,
keeping its partial output and the results of the tools that finished.

Every test checks the invariants of the scenarios: live frames == replayed frames, live rows ==
rebuilt rows, the chain verifies; and that the cancel names who asked."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest
from turnlog.adapters.llm import ScriptedLLM
from turnlog.engine import (
    CancelRequested,
    ConcurrencyError,
    ConversationNotFound,
    EngineConfig,
    FixedClock,
    InMemoryEventLog,
    NoTurnRunning,
    Recorded,
    SequentialIds,
    TextDelta,
    ToolRegistry,
    TurnEngine,
    TurnFailed,
    TurnFinalized,
    TurnRequest,
    cancel_turn,
    recover,
    replay,
    verify,
)
from turnlog.engine import _cancel as cancel_module
from turnlog.projections import project, rebuild, stream_sse

ACTOR = {"tenant": "acme", "subject": "alice", "reason": "changed my mind"}


def engine_for(store: Any, script: list, *, tools: ToolRegistry | None = None, **config: Any) -> TurnEngine:
    return TurnEngine(
        store.log,
        ScriptedLLM(script),
        tools=tools,
        messages=store.messages,
        clock=FixedClock(),
        ids=SequentialIds(),
        config=EngineConfig(**{"flush_ms": 1.0, **config}),
    )


class Turn:
    """A turn streamed as SSE by a task, as a client (or the server's driver) would."""

    def __init__(self, engine: TurnEngine, conv: str, request: TurnRequest) -> None:
        self.frames: list[bytes] = []
        self.task = asyncio.get_running_loop().create_task(self._run(engine, conv, request))

    async def _run(self, engine: TurnEngine, conv: str, request: TurnRequest) -> None:
        async for frame in stream_sse(engine, conv, request):
            self.frames.append(frame)

    def text(self) -> str:
        return "".join(
            json.loads(f.split(b"data: ", 1)[1])["step"]["content"] for f in self.frames if b'"type":"text"' in f
        )

    async def until(self, ready: Callable[[], bool], timeout: float = 10.0) -> None:
        async with asyncio.timeout(timeout):
            while not ready():
                assert not self.task.done(), "the turn ended before the point the test waits for"
                await asyncio.sleep(0.005)

    async def ended(self, timeout: float = 5.0) -> float:
        """Seconds until the turn's task ended."""
        loop = asyncio.get_running_loop()
        start = loop.time()
        await asyncio.wait_for(self.task, timeout)
        return loop.time() - start


async def check_invariants(store: Any, conv: str, live: list[bytes]) -> list[Recorded]:
    events = [rec async for rec in replay(store.log, conv)]  # checked, and folded by the machine
    assert project(events) == live, "live frames differ from the replayed frames"
    rows = await store.messages.rows(conv)
    fresh = store.fresh_messages()
    await rebuild(store.log, fresh)
    assert await fresh.rows(conv) == rows, "live rows differ from the rebuilt rows"
    assert (await verify(store.log)).ok
    return events


def cancelled_by_alice(events: list[Recorded]) -> tuple[Recorded, TurnFailed]:
    """The one cancel and the failure it caused: who asked is recorded in both."""
    (cancel,) = [e for e in events if e.type == "cancel_requested"]
    assert cancel.event == CancelRequested(**ACTOR)
    assert cancel.turn_id == events[-1].turn_id
    failed = events[-1].event
    assert isinstance(failed, TurnFailed) and failed.reason == "cancelled"
    assert failed.message == (
        f"cancelled by tenant 'acme' subject 'alice' (cancel_requested at version {cancel.version}): changed my mind"
    )
    return cancel, failed


def assistant(rows: list) -> dict[str, Any]:
    assert rows[-1].role == "assistant" and rows[-1].status == "failed"
    return json.loads(rows[-1].content)


async def test_cancel_while_streaming_keeps_the_partial_answer(store) -> None:
    # The model streams without pause (a delta every 10 ms): the turn's own commits meet the cancel.
    script = [[step for i in range(300) for step in ({"text": f"w{i} "}, {"sleep": 0.01})]]
    engine = engine_for(store, script)
    conv = await engine.create_conversation(model="m")
    turn = Turn(engine, conv, TurnRequest("talk"))
    await turn.until(lambda: len(turn.frames) >= 5)
    await cancel_turn(store.log, conv, **ACTOR)
    assert await turn.ended() < 2.0
    events = await check_invariants(store, conv, turn.frames)
    cancelled_by_alice(events)
    assert b"event: error" in turn.frames[-1] and b'"reason":"cancelled"' in turn.frames[-1]
    rows = await store.messages.rows(conv)
    streamed = "".join(e.event.text for e in events if e.type == "text_delta")
    assert streamed and assistant(rows)["text"] == streamed == turn.text()
    assert assistant(rows)["error"]["reason"] == "cancelled"
    assert len(streamed.split()) < 300, "the model was not read to its end"


async def test_a_streaming_turn_meets_the_cancel_at_its_next_commit(store, monkeypatch) -> None:
    # No watch at all: the group commit alone finds the cancel ahead of its batch, puts the batch
    # after it (nothing buffered is lost) and ends the turn.
    monkeypatch.setattr(cancel_module, "QUIET_S", 3600.0)
    script = [[step for i in range(300) for step in ({"text": f"w{i} "}, {"sleep": 0.01})]]
    engine = engine_for(store, script)
    conv = await engine.create_conversation(model="m")
    turn = Turn(engine, conv, TurnRequest("talk"))
    await turn.until(lambda: len(turn.frames) >= 3)
    cancel = await cancel_turn(store.log, conv, **ACTOR)
    assert await turn.ended() < 2.0
    events = await check_invariants(store, conv, turn.frames)
    assert cancelled_by_alice(events)[0].version == cancel.version
    # What the engine had buffered when the cancel landed was committed after it.
    assert events[cancel.version].type in ("text_delta", "turn_failed")


async def test_cancel_during_a_slow_model_call(store) -> None:
    # The model is silent (a provider that has not answered yet): the watch hears the cancel.
    engine = engine_for(store, [[{"sleep": 30.0}, {"text": "never"}]])
    conv = await engine.create_conversation(model="m")
    turn = Turn(engine, conv, TurnRequest("think hard"))
    await asyncio.sleep(0.3)  # the turn is quiet: its watch follows the stream
    await cancel_turn(store.log, conv, **ACTOR)
    assert await turn.ended() < 2.0
    events = await check_invariants(store, conv, turn.frames)
    cancelled_by_alice(events)
    assert [e.type for e in events] == [
        "conversation_created",
        "turn_started",
        "iteration_started",
        "cancel_requested",
        "turn_failed",
    ]
    assert turn.frames == project(events) and len(turn.frames) == 1  # the error frame


async def test_cancel_right_after_the_turn_started(store) -> None:
    # The cancel lands before the turn has called the model: the turn's first commit after it
    # (the iteration's start, the barrier before the call) meets it, and the model is not called.
    engine = engine_for(store, [[{"text": "never"}]])
    conv = await engine.create_conversation(model="m")
    turn = engine.run_turn(conv, TurnRequest("hi"))
    started = await anext(turn)
    cancel = await cancel_turn(store.log, conv, **ACTOR)
    assert cancel.turn_id == started.turn_id
    rest = [rec async for rec in turn]
    assert [r.type for r in rest] == ["cancel_requested", "iteration_started", "turn_failed"]
    assert engine.llm.calls == 0  # type: ignore[attr-defined]
    cancelled_by_alice([started, *rest])


def slow_tools(stopped: list[str]) -> ToolRegistry:
    tools = ToolRegistry(default_timeout=60.0)

    async def slow() -> str:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            stopped.append("slow")
            raise
        return "too late"

    async def quick(n: int) -> dict[str, int]:
        return {"n": n * 2}

    tools.register(slow)
    tools.register(quick, parameters={"type": "object", "properties": {"n": {"type": "integer"}}})
    return tools


async def test_cancel_during_a_slow_tool_keeps_the_finished_results(store) -> None:
    # Three calls: quick, slow, quick. The results are recorded in call order, so the second quick
    # one is finished but not yet recorded when the cancel comes: it is kept all the same.
    script = [
        [
            {"text": "Let me look.", "split": 4},
            {"tool": "quick", "arguments": {"n": 1}, "id": "call_a"},
            {"tool": "slow", "id": "call_b"},
            {"tool": "quick", "arguments": {"n": 3}, "id": "call_c"},
        ],
        [{"text": "never"}],
    ]
    stopped: list[str] = []
    engine = engine_for(store, script, tools=slow_tools(stopped))
    conv = await engine.create_conversation(model="m")
    turn = Turn(engine, conv, TurnRequest("go", enabled_tools=["quick", "slow"]))
    await turn.until(lambda: sum(b'"type":"tool_result"' in f for f in turn.frames) == 1)
    await asyncio.sleep(0.3)  # quiet: waiting on the slow call
    await cancel_turn(store.log, conv, **ACTOR)
    assert await turn.ended() < 2.0
    events = await check_invariants(store, conv, turn.frames)
    cancelled_by_alice(events)
    results = [e.event for e in events if e.type == "tool_result_recorded"]
    assert [(r.call_id, r.content) for r in results] == [("call_a", '{"n": 2}'), ("call_c", '{"n": 6}')]
    assert stopped == ["slow"], "the running tool was stopped"
    assert engine.llm.calls == 1  # type: ignore[attr-defined]
    content = assistant(await store.messages.rows(conv))
    assert content["text"] == "Let me look."
    assert [s["type"] for s in content["steps"]] == ["text", "tool_call", "tool_call", "tool_call"] + [
        "tool_result"
    ] * 2


async def test_no_turn_running_is_refused_and_writes_nothing(store) -> None:
    engine = engine_for(store, [[{"text": "Hello."}]])
    conv = await engine.create_conversation(model="m")
    with pytest.raises(NoTurnRunning, match="has no running turn to cancel: it has no turn yet") as no_turn:
        await cancel_turn(store.log, conv, **ACTOR)
    assert no_turn.value.code == "no_turn_running"
    [rec async for rec in engine.run_turn(conv, TurnRequest("hi"))]
    head = await store.log.last(conv)
    with pytest.raises(NoTurnRunning, match=f"its last turn '{head.turn_id}' has already ended"):
        await cancel_turn(store.log, conv, **ACTOR)
    assert (await store.log.last(conv)).version == head.version
    assert isinstance(head.event, TurnFinalized)
    with pytest.raises(ConversationNotFound):
        await cancel_turn(store.log, "conv-nope")


async def test_two_cancels_racing_end_the_turn_once(store) -> None:
    engine = engine_for(store, [[{"text": "partial "}, {"sleep": 30.0}]])
    conv = await engine.create_conversation(model="m")
    turn = Turn(engine, conv, TurnRequest("hi"))
    await turn.until(lambda: len(turn.frames) >= 1)
    outcomes = await asyncio.gather(
        cancel_turn(store.log, conv, **ACTOR),
        cancel_turn(store.log, conv, tenant="acme", subject="bob", reason="me too"),
        return_exceptions=True,
    )
    await turn.ended()
    events = await check_invariants(store, conv, turn.frames)
    cancels = [e for e in events if e.type == "cancel_requested"]
    # Each cancel is recorded, or found the turn ended; the first one recorded is the one reported.
    assert len(cancels) == sum(isinstance(o, Recorded) for o in outcomes) >= 1
    assert all(isinstance(o, Recorded | NoTurnRunning) for o in outcomes)
    assert [e.type for e in events].count("turn_failed") == 1
    failed = events[-1].event
    assert failed.reason == "cancelled" and f"at version {cancels[0].version}" in failed.message


async def test_the_next_turn_starts_and_sees_the_partial_answer(store) -> None:
    engine = engine_for(store, [[{"text": "half an ans"}, {"sleep": 30.0}], [{"text": "Full answer."}]])
    conv = await engine.create_conversation(model="m")
    turn = Turn(engine, conv, TurnRequest("one"))
    await turn.until(lambda: len(turn.frames) >= 1)
    await cancel_turn(store.log, conv, **ACTOR)
    await turn.ended()
    frames = [f async for f in stream_sse(engine, conv, TurnRequest("two"))]
    assert b"event: done" in frames[-1]
    body = json.loads(engine.llm.bodies[1])  # type: ignore[attr-defined]
    assert body["messages"][-3:] == [
        {"role": "user", "content": "one"},
        {"role": "assistant", "content": "half an ans"},
        {"role": "user", "content": "two"},
    ]
    await check_invariants(store, conv, project([r async for r in replay(store.log, conv)]))


async def test_a_cancel_for_an_orphaned_turn_is_recorded_and_recovery_ends_it(store) -> None:
    # The process running the turn is gone (here: its generator is never resumed). The cancel is
    # recorded (the log says the turn is live); recovery ends the turn as interrupted.
    engine = engine_for(store, [[{"text": "never"}]])
    conv = await engine.create_conversation(model="m")
    orphan = engine.run_turn(conv, TurnRequest("hi"))
    started = await anext(orphan)
    cancel = await cancel_turn(store.log, conv, **ACTOR)
    assert cancel.turn_id == started.turn_id
    recovered = await recover(store.log, messages=store.messages)
    assert [r.turn_id for r in recovered] == [started.turn_id]
    events = [rec async for rec in replay(store.log, conv)]
    assert [e.type for e in events][-2:] == ["cancel_requested", "turn_failed"]
    assert events[-1].event.reason == "interrupted"
    await orphan.aclose()  # the "dead" process's generator: nothing more is written
    assert (await store.log.last(conv)).version == events[-1].version


class CancelBefore(InMemoryEventLog):
    """A log where a cancel (or a recovery) lands just before the turn's batch that holds an event
    of type ``before``: deterministic, where a race would be luck."""

    def __init__(self, before: type, *, recovery: bool = False) -> None:
        super().__init__()
        self.before = before
        self.recovery = recovery
        self.done = False

    async def append(self, stream_id, events, expected_version, *, recorded_at):  # type: ignore[no-untyped-def]
        if not self.done and any(type(e.event) is self.before for e in events):
            self.done = True
            if self.recovery:
                await recover(self)
            else:
                await cancel_turn(self, stream_id, **ACTOR)
        return await super().append(stream_id, events, expected_version, recorded_at=recorded_at)


async def test_the_batch_in_flight_goes_after_the_cancel_and_nothing_is_lost() -> None:
    log = CancelBefore(TextDelta)
    engine = TurnEngine(log, ScriptedLLM([[{"text": "abcdef", "split": 2}, {"sleep": 30.0}]]), ids=SequentialIds())
    conv = await engine.create_conversation(model="m")
    live = [rec async for rec in engine.run_turn(conv, TurnRequest("hi"))]
    stored = [rec async for rec in replay(log, conv)]
    assert live == stored[1:], "every event yielded, the cancel in its place"
    assert [r.type for r in stored] == [
        "conversation_created",
        "turn_started",
        "iteration_started",
        "cancel_requested",
        *["text_delta"] * 3,
        "turn_failed",
    ]
    cancelled_by_alice(stored)


async def test_a_cancel_after_the_answer_was_complete_changes_nothing() -> None:
    log = CancelBefore(TurnFinalized)
    engine = TurnEngine(log, ScriptedLLM([[{"text": "All done."}]]), ids=SequentialIds())
    conv = await engine.create_conversation(model="m")
    live = [rec async for rec in engine.run_turn(conv, TurnRequest("hi"))]
    # The last batch (the answer and TurnFinalized) was in flight when the cancel landed.
    assert [r.type for r in live] == [
        "turn_started",
        "iteration_started",
        "cancel_requested",
        "text_delta",
        "turn_finalized",
    ]
    assert live == [rec async for rec in replay(log, conv)][1:]


async def test_anything_else_ahead_of_the_turn_is_still_a_conflict() -> None:
    # A recovery (another server took the turn for dead) is not a cancel: nothing is written over
    # it, and the log's error escapes the engine as before.
    log = CancelBefore(TextDelta, recovery=True)
    script = [[{"text": "ab"}, {"sleep": 0.05}, {"text": "cd"}, {"sleep": 0.05}]]
    engine = TurnEngine(log, ScriptedLLM(script), ids=SequentialIds(), config=EngineConfig(flush_ms=1.0))
    conv = await engine.create_conversation(model="m")
    with pytest.raises(ConcurrencyError):
        [rec async for rec in engine.run_turn(conv, TurnRequest("hi"))]
    stored = [rec async for rec in replay(log, conv)]
    assert [r.type for r in stored][-1] == "turn_failed" and stored[-1].event.reason == "interrupted"


async def test_cancelling_the_consumers_task_still_records_the_failure_and_ends_the_watch(store) -> None:
    # The server's shutdown path: the task driving the turn is cancelled while the turn is quiet
    # (its watch following the stream). The cancellation goes on; nothing is left running.
    engine = engine_for(store, [[{"text": "some words"}, {"sleep": 30.0}]])
    conv = await engine.create_conversation(model="m")
    turn = Turn(engine, conv, TurnRequest("hi"))
    await turn.until(lambda: len(turn.frames) >= 1)
    await asyncio.sleep(0.3)
    before = asyncio.all_tasks()
    turn.task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await turn.task
    events = [rec async for rec in replay(store.log, conv)]
    failed = events[-1].event
    assert isinstance(failed, TurnFailed) and (failed.reason, failed.message) == (
        "cancelled",
        "the turn was cancelled",
    )
    watches = [t for t in before if "CancelWatch" in t.get_coro().__qualname__]
    assert len(watches) == 1 and watches[0].done()
