"""The scenarios of issue 3, each on every store (memory, SQLite, PostgreSQL).

Every scenario checks the two invariants (live frames == replayed frames, byte for byte; live rows
== rebuilt rows), checks the transcript against its snapshot, and for failures that the partial
output is kept. A scenario's transcript does not depend on the store: one snapshot per scenario
(``__snapshots__/test_scenarios/test_scenario[<scenario>].txt``), checked on every store, and a
test that every store gives the memory log's transcript.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from turnlog.adapters.llm import ScriptedLLM
from turnlog.engine import (
    EngineConfig,
    FixedClock,
    InMemoryEventLog,
    Recorded,
    SequentialIds,
    ToolRegistry,
    TurnEngine,
    TurnFailed,
    TurnFinalized,
    TurnRequest,
    cancel_turn,
    replay,
    verify,
)
from turnlog.projections import MemoryMessageStore, project, rebuild, render, stream_sse
from turnlog.projections._snapshot import TranscriptExtension


def make_tools() -> ToolRegistry:
    tools = ToolRegistry(default_timeout=2.0)

    async def get_weather(city: str) -> dict[str, Any]:
        return {"city": city, "temp_c": len(city) + 10}

    def add(a: int, b: int) -> int:  # a sync tool: runs in a thread
        return a + b

    async def explode() -> str:
        raise RuntimeError("disk full")

    async def slow() -> str:
        await asyncio.sleep(5)
        return "too late"

    tools.register(get_weather, parameters={"type": "object", "properties": {"city": {"type": "string"}}})
    tools.register(
        add, parameters={"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}}
    )
    tools.register(explode)
    tools.register(slow, timeout=0.05)
    return tools


ALL_TOOLS = ["get_weather", "add", "explode", "slow"]

SCENARIOS: dict[str, list[list[dict[str, Any]]]] = {
    "plain_answer": [[{"text": "Hello there, how can I help?", "split": 3}, {"usage": [12, 7, 19]}]],
    "reasoning_then_answer": [
        [
            {"reasoning": "The user greets me. I should greet back.", "split": 5},
            {"text": "Hi! 👋 Nice to meet you.", "split": 2},
            {"usage": [20, 30, 50]},
        ]
    ],
    "one_tool_call": [
        [{"tool": "get_weather", "arguments": {"city": "Paris"}}, {"usage": [15, 5, 20]}],
        [{"text": "It is 15°C in Paris.", "split": 4}, {"usage": [40, 9, 49]}],
    ],
    "three_parallel_tool_calls_split_args": [
        [
            {"text": "Let me check.", "split": 4},
            {"tool": "get_weather", "arguments": {"city": "Paris"}, "id": "call_a", "split": 2},
            {"tool": "get_weather", "arguments": {"city": "Rome"}, "id": "call_b", "split": 3},
            {"tool": "add", "arguments": {"a": 40, "b": 2}, "id": "call_c", "split": 1},
            {"usage": [30, 25, 55]},
        ],
        [{"text": "Paris 15°C, Rome 14°C, and 40+2=42.", "split": 6}, {"usage": [90, 15, 105]}],
    ],
    "three_iterations": [
        [{"tool": "add", "arguments": {"a": 1, "b": 2}}, {"usage": [10, 3, 13]}],
        [
            {"reasoning": "Now add 3.", "split": 4},
            {"tool": "add", "arguments": {"a": 3, "b": 3}},
            {"usage": [20, 3, 23]},
        ],
        [{"text": "The answer is 6.", "split": 5}, {"usage": [30, 5, 35]}],
    ],
    "max_iterations_exceeded": [
        [{"tool": "add", "arguments": {"a": 1, "b": 1}}, {"usage": [10, 3, 13]}],
        [{"text": "Again.", "split": 2}, {"tool": "add", "arguments": {"a": 2, "b": 2}}, {"usage": [20, 3, 23]}],
        [{"tool": "add", "arguments": {"a": 3, "b": 3}}, {"usage": [30, 3, 33]}],
    ],
    "llm_error_mid_stream": [
        [{"text": "Partial answer that gets cut", "split": 5}, {"error": "upstream overloaded (503)"}]
    ],
    "tool_exception": [
        [{"tool": "explode"}, {"usage": [10, 2, 12]}],
        [{"text": "The tool failed, sorry.", "split": 8}, {"usage": [20, 5, 25]}],
    ],
    "tool_timeout": [
        [{"tool": "slow"}, {"usage": [10, 2, 12]}],
        [{"text": "The tool timed out.", "split": 8}, {"usage": [20, 5, 25]}],
    ],
    "unknown_tool": [
        [{"tool": "launch_rockets", "arguments": {"count": 3}}],
        [{"text": "I cannot do that.", "split": 8}],
    ],
    "invalid_argument_json": [
        [{"tool": "get_weather", "arguments": '{"city": "Par', "split": 4}],
        [{"text": "Bad arguments, retrying is needed.", "split": 8}],
    ],
    # The model stalls after its first words; someone cancels the turn (``CANCELS``).
    "cancelled_mid_answer": [[{"text": "Partial answer before the stop", "split": 6}, {"sleep": 30.0}, {"text": "x"}]],
}

MAX_ITERATIONS = {"max_iterations_exceeded": 3}
#: Scenarios cancelled by someone once the client has seen this text: (text, who asks and why).
CANCELS = {
    "cancelled_mid_answer": (
        "Partial answer before the stop",
        {"tenant": "acme", "subject": "alice", "reason": "changed my mind"},
    )
}
FAILED = ("max_iterations_exceeded", "llm_error_mid_stream", "cancelled_mid_answer")


async def run_scenario(
    store, script, *, mode: str = "delta", max_iterations: int | None = None, cancel: tuple[str, dict] | None = None
):
    llm = ScriptedLLM(script)
    engine = TurnEngine(
        store.log,
        llm,
        tools=make_tools(),
        messages=store.messages,
        clock=FixedClock(),
        ids=SequentialIds(),
        config=EngineConfig(flush_events=4, flush_ms=50.0),
    )
    conv = await engine.create_conversation(system_prompt="You are a test assistant.", model="test-model")
    request = TurnRequest("What is the weather?", enabled_tools=ALL_TOOLS, max_iterations=max_iterations)
    live = []
    cancel_at, actor = cancel or (None, {})
    seen = ""
    async for frame in stream_sse(engine, conv, request, mode=mode):  # type: ignore[arg-type]
        live.append(frame)
        if cancel_at is not None and b'"type":"text"' in frame:
            seen += json.loads(frame.split(b"data: ", 1)[1])["step"]["content"]
            if seen == cancel_at:
                # Every word is committed and the model stalls: the cancel lands at one place.
                await cancel_turn(store.log, conv, **actor)
    return engine, conv, live, llm


async def check_invariants(store, conv: str, live: list[bytes], mode: str = "delta") -> list[Recorded]:
    events = [rec async for rec in replay(store.log, conv)]
    assert project(events, mode) == live, "live frames differ from the replayed frames"  # type: ignore[arg-type]
    live_rows = await store.messages.rows(conv)
    fresh = store.fresh_messages()
    await rebuild(store.log, fresh)
    assert await fresh.rows(conv) == live_rows, "live rows differ from the rebuilt rows"
    assert (await verify(store.log)).ok
    return events


def assistant_content(rows) -> dict[str, Any]:
    return json.loads(rows[-1].content)


class ScenarioTranscript(TranscriptExtension):
    """One transcript snapshot per scenario, whatever the store: ``test_scenario[<scenario>].txt``,
    named by ``scenario_snapshot(name=<scenario>)``, not by the test id (which names the store)."""

    @classmethod
    def get_snapshot_name(cls, *, test_location: Any, index: Any = 0) -> str:
        if not isinstance(index, str):
            raise TypeError("name the scenario: `== scenario_snapshot(name=...)`")
        return f"{test_location.methodname}[{index}]"


@pytest.fixture
def scenario_snapshot(transcript_snapshot: Any) -> Any:
    return transcript_snapshot.use_extension(ScenarioTranscript)


@pytest.mark.parametrize("name", list(SCENARIOS))
async def test_scenario(store, name: str, scenario_snapshot) -> None:
    _, conv, live, _ = await run_scenario(
        store, SCENARIOS[name], max_iterations=MAX_ITERATIONS.get(name), cancel=CANCELS.get(name)
    )
    events = await check_invariants(store, conv, live)
    assert render(events) == scenario_snapshot(name=name)
    rows = await store.messages.rows(conv)
    assert [r.role for r in rows] == ["user", "assistant"]
    terminal = events[-1].event
    content = assistant_content(rows)
    if name in FAILED:
        assert isinstance(terminal, TurnFailed)
        assert rows[-1].status == "failed" and rows[0].status == "failed"
        assert live[-1].startswith(b"id: %d\nevent: error\n" % events[-1].version)
        assert content["error"]["reason"] == terminal.reason
    else:
        assert isinstance(terminal, TurnFinalized)
        assert live[-1].startswith(b"id: %d\nevent: done\n" % events[-1].version)
        done = json.loads(live[-1].split(b"data: ", 1)[1])
        assert done["message_id"] == rows[-1].id  # the seed sent a fresh random id here
        assert rows[-1].status == "finalized"


async def transcript(store, name: str) -> str:
    _, conv, _, _ = await run_scenario(
        store, SCENARIOS[name], max_iterations=MAX_ITERATIONS.get(name), cancel=CANCELS.get(name)
    )
    return render([rec async for rec in replay(store.log, conv)])


@pytest.mark.parametrize("name", list(SCENARIOS))
@pytest.mark.parametrize("store", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)
async def test_every_store_gives_the_memory_logs_transcript(store, name: str) -> None:
    # Independent of the snapshot file: with --snapshot-update, two stores that disagree would
    # each rewrite the one snapshot and both pass; this still fails.
    reference = type(store)("memory", InMemoryEventLog(), MemoryMessageStore())
    assert await transcript(store, name) == await transcript(reference, name)


async def test_llm_error_keeps_partial_output(store) -> None:
    _, conv, live, _ = await run_scenario(store, SCENARIOS["llm_error_mid_stream"])
    await check_invariants(store, conv, live)
    rows = await store.messages.rows(conv)
    content = assistant_content(rows)
    assert content["text"] == "Partial answer that gets cut"
    assert content["error"] == {"reason": "llm_error", "message": "upstream overloaded (503)"}
    assert b"upstream overloaded (503)" in live[-1]


async def test_max_iterations_is_counted_and_reported(store) -> None:
    _, conv, live, llm = await run_scenario(store, SCENARIOS["max_iterations_exceeded"], max_iterations=3)
    events = await check_invariants(store, conv, live)
    failed = events[-1].event
    assert isinstance(failed, TurnFailed) and failed.reason == "max_iterations" and failed.iteration == 3
    assert llm.calls == 3
    # The third request's tool calls are recorded but not run: nothing would read their results.
    assert [e.event.iteration for e in events if e.type == "tool_result_recorded"] == [1, 2]
    assert assistant_content(await store.messages.rows(conv))["text"] == ""


@pytest.mark.parametrize(
    ("name", "needle"),
    [
        ("tool_exception", "tool explode failed: RuntimeError: disk full"),
        ("tool_timeout", "timed out after 0.05 s"),
        ("unknown_tool", "unknown tool 'launch_rockets'"),
        ("invalid_argument_json", "are not valid JSON"),
    ],
)
async def test_tool_failures_become_unsuccessful_results(store, name: str, needle: str) -> None:
    _, conv, live, llm = await run_scenario(store, SCENARIOS[name])
    events = await check_invariants(store, conv, live)
    results = [e.event for e in events if e.type == "tool_result_recorded"]
    assert len(results) == 1 and not results[0].success and needle in results[0].content
    # The model saw the failure in its next request.
    second = json.loads(llm.bodies[1])
    assert second["messages"][-1]["role"] == "tool" and needle in second["messages"][-1]["content"]


async def test_parallel_calls_run_at_once_and_keep_call_order(store) -> None:
    _, conv, live, llm = await run_scenario(store, SCENARIOS["three_parallel_tool_calls_split_args"])
    events = await check_invariants(store, conv, live)
    requested = next(e.event for e in events if e.type == "tool_calls_requested")
    assert [(c.id, c.arguments) for c in requested.calls] == [
        ("call_a", '{"city": "Paris"}'),
        ("call_b", '{"city": "Rome"}'),
        ("call_c", '{"a": 40, "b": 2}'),
    ]
    results = [e.event.call_id for e in events if e.type == "tool_result_recorded"]
    assert results == ["call_a", "call_b", "call_c"]
    body = json.loads(llm.bodies[1])
    assert [m.get("tool_call_id") for m in body["messages"][-3:]] == ["call_a", "call_b", "call_c"]
    assert body["messages"][-4]["tool_calls"][2]["function"]["arguments"] == '{"a": 40, "b": 2}'


async def test_full_mode_frames_carry_the_whole_text_so_far(store) -> None:
    _, conv, live, _ = await run_scenario(store, SCENARIOS["plain_answer"], mode="full")
    await check_invariants(store, conv, live, mode="full")
    contents = [json.loads(f.split(b"data: ", 1)[1])["step"]["content"] for f in live[:-1]]
    assert contents[-1] == "Hello there, how can I help?"
    assert all(contents[-1].startswith(c) for c in contents)


async def test_usage_is_summed_across_iterations(store) -> None:
    _, conv, live, _ = await run_scenario(store, SCENARIOS["three_iterations"])
    events = await check_invariants(store, conv, live)
    final = events[-1].event
    assert isinstance(final, TurnFinalized)
    assert (final.usage.prompt_tokens, final.usage.completion_tokens, final.usage.total_tokens) == (60, 11, 71)
    assert final.token_count == 11


async def test_client_cancellation_mid_stream_is_recorded(store) -> None:
    script = [[{"text": "one two three four five six", "split": 4}, {"sleep": 5.0}, {"text": "never"}]]
    llm = ScriptedLLM(script)
    engine = TurnEngine(
        store.log,
        llm,
        messages=store.messages,
        clock=FixedClock(),
        ids=SequentialIds(),
        config=EngineConfig(flush_ms=1.0),
    )
    conv = await engine.create_conversation(model="m")
    stream = stream_sse(engine, conv, TurnRequest("hi"))
    live = []
    async for frame in stream:
        live.append(frame)
        if len(live) == 3:
            break
    await stream.aclose()
    events = [rec async for rec in replay(store.log, conv)]
    failed = events[-1].event
    assert isinstance(failed, TurnFailed) and failed.reason == "cancelled"
    # What the client saw is a prefix of the replay; the replay adds what it missed.
    assert project(events)[: len(live)] == live
    rows = await store.messages.rows(conv)
    assert rows[-1].status == "failed"
    assert json.loads(rows[-1].content)["text"] == "one two three four five six"
    fresh = store.fresh_messages()
    await rebuild(store.log, fresh)
    assert await fresh.rows(conv) == rows


async def test_second_turn_uses_history_and_refuses_overlap(store) -> None:
    llm = ScriptedLLM(
        [
            [{"text": "First answer."}],
            [{"text": "slow", "split": 1}, {"sleep": 0.3}, {"text": " answer."}],
        ]
    )
    engine = TurnEngine(store.log, llm, messages=store.messages, clock=FixedClock(), ids=SequentialIds())
    conv = await engine.create_conversation(system_prompt="Be brief.", model="m")
    [f async for f in stream_sse(engine, conv, TurnRequest("one"))]
    second = engine.run_turn(conv, TurnRequest("two"))
    await anext(second)  # TurnStarted is committed: the turn is live
    from turnlog.engine import TurnInProgress

    with pytest.raises(TurnInProgress, match="already has a live turn"):
        await anext(engine.run_turn(conv, TurnRequest("three")))
    async for _ in second:
        pass
    body = json.loads(llm.bodies[1])
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "one"},
        {"role": "assistant", "content": "First answer."},
        {"role": "user", "content": "two"},
    ]
