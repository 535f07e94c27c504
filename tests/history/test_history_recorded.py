"""History fidelity against the recorded provider streams (``tests/adapters/corpus``): a turn after
one that called tools sends the model that turn as it happened (the assistant message with its
``tool_calls``, one ``tool`` message per result with the matching ``tool_call_id``, then the
answer), and the reasoning only where the provider requires it (DeepSeek's thinking mode:
``reasoning_content`` of every message that made tool calls, in all later requests; nobody's plain
answer). Each request goes through the real client to a 127.0.0.1 server replaying the recording,
and the log alone rebuilds every body byte for byte."""

from __future__ import annotations

import json
from typing import Any

import pytest
from turnlog.adapters.llm import PRESETS, RecordedLLM
from turnlog.adapters.stores import open_store
from turnlog.engine import (
    FixedClock,
    InMemoryEventLog,
    LogHistory,
    ReasoningDelta,
    SequentialIds,
    ToolCallsRequested,
    TurnEngine,
    TurnRequest,
    check_requests,
)
from turnlog.projections import MemoryMessageStore

from ..adapters.conftest import CORPUS
from ..adapters.test_corpus import FOLLOW_UP

pytestmark = pytest.mark.skipif(not CORPUS.is_dir(), reason=f"the recorded-stream corpus is not at {CORPUS}")

#: Recordings whose answer asks for tools, and the provider each comes from.
TOOL_RECORDINGS = [
    ("deepseek-tool-call-1.sse", "deepseek"),
    ("xai-reasoning-tool-call-1.sse", "xai"),
    ("cerebras-reasoning-tool-call-1.sse", "cerebras"),
    ("openai-parallel-tool-calls-1.sse", "openai"),
    ("groq-tool-call-whole-1.sse", "groq"),
    ("mistral-tool-call-no-index-1.sse", "mistral"),
    ("tetrate-claude-tool-call-1.sse", "tetrate"),
]


def round_trips(provider: str) -> bool:
    """The provider's capability as configured: the presets' (DeepSeek's is on), else off."""
    return PRESETS[provider].round_trip_reasoning if provider in PRESETS else False


async def two_turns(name: str, provider: str, messages: Any = None, log: Any = None) -> tuple[Any, str, RecordedLLM]:
    log = log or InMemoryEventLog()
    rtr = round_trips(provider)
    recordings = [CORPUS / name, FOLLOW_UP, FOLLOW_UP]
    llm = RecordedLLM(recordings, provider=provider, round_trip_reasoning=rtr)
    async with llm:
        engine = TurnEngine(log, llm, messages=messages, clock=FixedClock(), ids=SequentialIds())
        conv = await engine.create_conversation(system_prompt="Be brief.", model="m")
        [r async for r in engine.run_turn(conv, TurnRequest("first", thinking=True))]
        [r async for r in engine.run_turn(conv, TurnRequest("second", thinking=True))]
        checks = await check_requests(log, conv, llm)
    assert len(checks) == 3 and all(c.ok for c in checks), checks
    return log, conv, llm


@pytest.mark.parametrize(("name", "provider"), TOOL_RECORDINGS)
async def test_a_later_turn_repeats_the_tool_round_trip_as_it_happened(name: str, provider: str) -> None:
    log, conv, llm = await two_turns(name, provider)
    events = [r.event async for r in log.iter_stream(conv)]
    (asked,) = [e for e in events if isinstance(e, ToolCallsRequested)]
    reasoning = "".join(e.text for e in events if isinstance(e, ReasoningDelta) and e.iteration == 1)
    within = json.loads(llm.bodies[1])["messages"]  # turn 1's second call
    later = json.loads(llm.bodies[2])["messages"]  # turn 2's call
    calls = [c.id for c in asked.calls]
    # Turn 2 sends turn 1 as it happened: the same assistant message and tool results the second
    # call of turn 1 sent (same ids, same order), then turn 1's answer, then the new message.
    assert later[:-2] == within
    assert later[-2:] == [{"role": "assistant", "content": "Done."}, {"role": "user", "content": "second"}]
    assistant = within[2]
    assert [c["id"] for c in assistant["tool_calls"]] == calls
    assert [c["function"]["arguments"] for c in assistant["tool_calls"]] == [c.arguments for c in asked.calls]
    assert [m["tool_call_id"] for m in within[3:]] == calls and all(m["role"] == "tool" for m in within[3:])
    if round_trips(provider) and reasoning:
        assert assistant["reasoning_content"] == reasoning
    else:
        assert "reasoning_content" not in assistant
    # The plain answer's reasoning never goes back.
    assert all("reasoning_content" not in m for m in later if "tool_calls" not in m)


async def test_deepseek_reasoning_of_an_earlier_tool_turn_goes_back_in_every_later_request() -> None:
    _, _, llm = await two_turns("deepseek-tool-call-1.sse", "deepseek")
    later = json.loads(llm.bodies[2])["messages"]
    (assistant,) = [m for m in later if "tool_calls" in m]
    assert assistant["reasoning_content"].startswith("The user asks about the weather")


@pytest.mark.parametrize("name", ["openrouter-reasoning-1.sse", "deepseek-reasoning-content-1.sse"])
async def test_a_plain_answers_reasoning_is_not_sent_back(name: str) -> None:
    provider = name.split("-")[0]
    llm = RecordedLLM([CORPUS / name, FOLLOW_UP], provider=provider, round_trip_reasoning=round_trips(provider))
    log = InMemoryEventLog()
    async with llm:
        engine = TurnEngine(log, llm, clock=FixedClock(), ids=SequentialIds())
        conv = await engine.create_conversation(model="m")
        [r async for r in engine.run_turn(conv, TurnRequest("first", thinking=True))]
        [r async for r in engine.run_turn(conv, TurnRequest("second", thinking=True))]
        assert all(c.ok for c in await check_requests(log, conv, llm))
    assert any([isinstance(r.event, ReasoningDelta) async for r in log.iter_stream(conv)])
    later = json.loads(llm.bodies[1])["messages"]
    assert [m["role"] for m in later] == ["user", "assistant", "user"]
    assert set(later[1]) == {"role", "content"}


@pytest.mark.parametrize(("name", "provider"), TOOL_RECORDINGS[:4])
async def test_rows_give_the_history_the_log_gives(tmp_path: Any, name: str, provider: str) -> None:
    # The row stores (memory and SQL) hand the engine the very messages it folds from the log.
    sqlite, rows = await open_store(str(tmp_path / "t.db"))
    async with sqlite:
        for log, messages in ((InMemoryEventLog(), MemoryMessageStore()), (sqlite, rows)):
            log, conv, _ = await two_turns(name, provider, messages, log)
            head = (await log.last(conv)).version
            from_rows = await messages.history(log, conv, head)
            assert from_rows == await LogHistory().history(log, conv, head)
            assert [m.role for m in from_rows][:3] == ["user", "assistant", "tool"]
