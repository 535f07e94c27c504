"""What the model was sent, rebuilt from the log: ``rebuild_requests`` gives the exact bodies with
their recorded and recomputed digests; the model a call named is recorded per call; a log that
does not explain the bodies (re-sealed, so its chain is valid) is exposed."""

from __future__ import annotations

import hashlib
from typing import Any

import msgspec
import pytest
from turnlog.adapters.llm import ScriptedLLM
from turnlog.engine import (
    FixedClock,
    InMemoryEventLog,
    IterationStarted,
    LLMRequest,
    NewEvent,
    RebuiltRequest,
    SequentialIds,
    ToolRegistry,
    TurnEngine,
    TurnRequest,
    TurnStarted,
    check_requests,
    rebuild_requests,
    replay,
    verify,
)
from turnlog.projections import MemoryMessageStore, project, rebuild, render, stream_sse

SCRIPT: list[list[dict[str, Any]]] = [
    [
        {"reasoning": "Two cities: ask for both.", "split": 6},
        {"tool": "weather", "arguments": {"city": "Paris"}, "id": "c1", "split": 5},
        {"tool": "weather", "arguments": {"city": "Oslo"}, "id": "c2"},
    ],
    [{"text": "Paris 12, Oslo 2.", "split": 4}],
    [{"reasoning": "Short."}, {"text": "Take a coat.", "split": 3}],
]


class DefaultModelLLM(ScriptedLLM):
    """A scripted model whose adapter names a default model, as ``OpenAILLM`` does."""

    model = "adapter-default"


def weather_tools() -> ToolRegistry:
    tools = ToolRegistry()

    @tools.tool()
    async def weather(city: str) -> dict[str, Any]:
        return {"city": city, "temp_c": len(city) * 2}

    return tools


async def run(llm: ScriptedLLM, *, conv_model: str = "", turn_model: str | None = None):
    log, rows = InMemoryEventLog(), MemoryMessageStore()
    engine = TurnEngine(log, llm, tools=weather_tools(), messages=rows, clock=FixedClock(), ids=SequentialIds())
    conv = await engine.create_conversation(system_prompt="Be brief.", model=conv_model)
    live: list[bytes] = []
    for text in ("Weather in Paris and Oslo?", "What should I wear?"):
        request = TurnRequest(text, enabled_tools=["weather"], thinking=True, model=turn_model)
        live += [f async for f in stream_sse(engine, conv, request, "delta")]
    # The invariants every scenario keeps: live == replayed frames, live rows == rebuilt rows.
    events = [rec async for rec in replay(log, conv)]
    assert project(events, "delta") == live
    fresh = MemoryMessageStore()
    await rebuild(log, fresh)
    assert await fresh.rows(conv) == await rows.rows(conv)
    return log, conv, events


async def test_the_rebuilt_bodies_are_the_bytes_the_model_received() -> None:
    llm = ScriptedLLM(SCRIPT)
    log, conv, _ = await run(llm, conv_model="m-1")
    rebuilt = await rebuild_requests(log, conv, ScriptedLLM([]))
    assert [r.body for r in rebuilt] == llm.bodies
    assert all(isinstance(r, RebuiltRequest) and r.ok and r.model_ok for r in rebuilt)
    assert [(r.iteration, r.model, r.recorded_model) for r in rebuilt] == [
        (1, "m-1", "m-1"),
        (2, "m-1", "m-1"),
        (1, "m-1", "m-1"),
    ]
    assert [r.recorded_sha256 for r in rebuilt] == [hashlib.sha256(b).hexdigest() for b in llm.bodies]
    assert [r.sha256 for r in rebuilt] == [r.recorded_sha256 for r in rebuilt]
    # The second call carried the tool round trip; the third, turn 1 in full (since issue 12).
    second = msgspec.json.decode(rebuilt[1].body)
    assert [m["role"] for m in second["messages"]] == ["system", "user", "assistant", "tool", "tool"]
    third = msgspec.json.decode(rebuilt[2].body)
    assert [m["role"] for m in third["messages"]] == [
        "system",
        "user",
        "assistant",
        "tool",
        "tool",
        "assistant",
        "user",
    ]
    assert third["messages"][2]["tool_calls"] == second["messages"][2]["tool_calls"]
    assert third["messages"][3:5] == second["messages"][3:5]
    # check_requests is the same rebuild without the bodies.
    checks = await check_requests(log, conv, ScriptedLLM([]))
    assert [(c.turn_id, c.iteration, c.version, c.recomputed_sha256, c.ok) for c in checks] == [
        (r.turn_id, r.iteration, r.version, r.sha256, True) for r in rebuilt
    ]


@pytest.mark.parametrize(
    ("conv_model", "turn_model", "expected"),
    [
        ("", None, "adapter-default"),  # nothing named: the adapter's default, recorded
        ("conv-model", None, "conv-model"),
        ("conv-model", "turn-model", "turn-model"),
    ],
)
async def test_the_model_called_is_recorded_at_the_start_of_the_turn_and_in_every_call(
    conv_model: str, turn_model: str | None, expected: str
) -> None:
    llm = DefaultModelLLM(SCRIPT)
    log, conv, events = await run(llm, conv_model=conv_model, turn_model=turn_model)
    assert [e.event.model for e in events if isinstance(e.event, TurnStarted)] == [expected] * 2
    assert [e.event.model for e in events if isinstance(e.event, IterationStarted)] == [expected] * 3
    # ...and it is the model the bodies named.
    assert [msgspec.json.decode(b, type=LLMRequest).model for b in llm.bodies] == [expected] * 3
    assert all(r.ok and r.model == expected for r in await rebuild_requests(log, conv, DefaultModelLLM([])))


async def test_an_adapter_without_a_default_model_records_none() -> None:
    *_, events = await run(ScriptedLLM(SCRIPT))
    assert {e.event.model for e in events if isinstance(e.event, (TurnStarted, IterationStarted))} == {""}
    assert "sent: model=- " in render(events)


async def resealed(log: InMemoryEventLog, conv: str, change) -> InMemoryEventLog:  # type: ignore[no-untyped-def]
    """The conversation with ``change`` applied to each event and the chain sealed again, as a
    forger with write access would do: verify and replay accept it."""
    forged = InMemoryEventLog()
    events = [NewEvent(change(rec.event), rec.turn_id) async for rec in log.iter_stream(conv)]
    await forged.append(conv, events, 0, recorded_at="2026-01-01T00:00:00Z")
    assert (await verify(forged)).ok
    assert len([rec async for rec in replay(forged, conv)]) == len(events)
    return forged


async def test_a_resealed_log_with_another_system_prompt_does_not_explain_the_bodies() -> None:
    log, conv, _ = await run(ScriptedLLM(SCRIPT), conv_model="m-1")

    def prompt(ev: object) -> object:
        return msgspec.structs.replace(ev, system_prompt="Be verbose.") if isinstance(ev, TurnStarted) else ev

    forged = await resealed(log, conv, prompt)
    rebuilt = await rebuild_requests(forged, conv, ScriptedLLM([]))
    assert [r.ok for r in rebuilt] == [False, False, False]
    assert all(r.sha256 != r.recorded_sha256 for r in rebuilt)
    assert b"Be verbose." in rebuilt[0].body
    assert [c.ok for c in await check_requests(forged, conv, ScriptedLLM([]))] == [False, False, False]


async def test_a_recorded_model_that_is_not_the_body_s_is_a_mismatch() -> None:
    log, conv, _ = await run(ScriptedLLM(SCRIPT), conv_model="m-1")

    def claim(ev: object) -> object:
        return msgspec.structs.replace(ev, model="m-cheaper") if isinstance(ev, IterationStarted) else ev

    forged = await resealed(log, conv, claim)
    rebuilt = await rebuild_requests(forged, conv, ScriptedLLM([]))
    # The bodies still hash to the recorded digests, but the log's claim about them is false.
    assert all(r.sha256 == r.recorded_sha256 for r in rebuilt)
    assert [(r.ok, r.model_ok, r.model, r.recorded_model) for r in rebuilt] == [(False, False, "m-1", "m-cheaper")] * 3
    assert not any(c.ok for c in await check_requests(forged, conv, ScriptedLLM([])))


async def test_a_log_from_before_the_model_was_recorded_still_rebuilds() -> None:
    log, conv, _ = await run(ScriptedLLM(SCRIPT), conv_model="m-1")

    def old(ev: object) -> object:
        return msgspec.structs.replace(ev, model="") if isinstance(ev, IterationStarted) else ev

    rebuilt = await rebuild_requests(await resealed(log, conv, old), conv, ScriptedLLM([]))
    assert [(r.ok, r.model, r.recorded_model) for r in rebuilt] == [(True, "m-1", "")] * 3
