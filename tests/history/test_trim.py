"""The history trim: a hook on the engine (``EngineConfig.history_trim``) that fits the earlier
turns into a token budget (``history_tokens``). The default leaves out whole oldest turns (a tool
call never parted from its result), keeps the system prompt and the current message, and the
number left out is recorded, so the log alone still rebuilds every request."""

from __future__ import annotations

import json
from typing import Any

import pytest
from turnlog.adapters.llm import ScriptedLLM
from turnlog.engine import (
    ConfigError,
    EngineConfig,
    FixedClock,
    InMemoryEventLog,
    PriorTurns,
    SequentialIds,
    TurnEngine,
    TurnRequest,
    TurnStarted,
    check_requests,
    estimate_tokens,
    trim_oldest_turns,
)
from turnlog.projections import MemoryMessageStore

from ..engine.test_scenarios import ALL_TOOLS, make_tools

SYSTEM = {"role": "system", "content": "Be brief."}
CALL = {"id": "c1", "type": "function", "function": {"name": "add", "arguments": '{"a": 1, "b": 2}'}}


def turn(user: str, answer: str, *, tool: bool = False) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [{"role": "user", "content": user}]
    if tool:
        out += [
            {"role": "assistant", "content": "", "tool_calls": [CALL]},
            {"role": "tool", "tool_call_id": "c1", "content": "3"},
        ]
    return [*out, {"role": "assistant", "content": answer}]


def test_the_estimate_is_characters_over_four_plus_four_per_message() -> None:
    assert estimate_tokens({"role": "user", "content": "x" * 40}) == 14
    assert estimate_tokens({"role": "user", "content": "x" * 41}) == 15
    assert estimate_tokens({"role": "assistant", "content": "", "tool_calls": [CALL]}) == 4 + (3 + 16 + 3) // 4


def test_the_default_trim_drops_whole_oldest_turns_and_keeps_the_ends() -> None:
    current = {"role": "user", "content": "now"}
    messages = [SYSTEM, *turn("one " * 50, "a"), *turn("two", "b", tool=True), *turn("three", "c"), current]
    assert trim_oldest_turns(messages, 10_000) == messages
    kept = trim_oldest_turns(messages, 60)
    assert kept == [SYSTEM, *turn("two", "b", tool=True), *turn("three", "c"), current]
    # A tighter budget takes the tool turn out whole, never the call without its result.
    kept = trim_oldest_turns(messages, 30)
    assert kept == [SYSTEM, *turn("three", "c"), current]
    # Nothing fits: the system prompt and the current message stay all the same.
    assert trim_oldest_turns(messages, 1) == [SYSTEM, current]
    assert trim_oldest_turns([current], 1) == [current]


SCRIPT = [
    [{"text": "Answer one.", "split": 1}],
    [{"tool": "add", "arguments": {"a": 1, "b": 2}}],
    [{"text": "It is 3.", "split": 1}],
    [{"text": "Answer three.", "split": 1}],
    [{"text": "Answer four.", "split": 1}],
]


async def run(config: EngineConfig) -> tuple[InMemoryEventLog, str, ScriptedLLM, MemoryMessageStore]:
    log, rows, llm = InMemoryEventLog(), MemoryMessageStore(), ScriptedLLM(SCRIPT)
    engine = TurnEngine(
        log, llm, tools=make_tools(), messages=rows, clock=FixedClock(), ids=SequentialIds(), config=config
    )
    conv = await engine.create_conversation(system_prompt="Be brief.", model="m")
    for message in ("first " * 100, "add them", "third", "fourth"):
        [r async for r in engine.run_turn(conv, TurnRequest(message, enabled_tools=ALL_TOOLS))]
    return log, conv, llm, rows


async def test_the_engine_trims_to_the_budget_and_records_what_it_left_out() -> None:
    log, conv, llm, rows = await run(EngineConfig(history_tokens=80))
    started = [r.event async for r in log.iter_stream(conv) if isinstance(r.event, TurnStarted)]
    # Turn 1's long message does not fit from turn 2 on; turn 4 fits turns 2 and 3.
    assert [s.history_dropped for s in started] == [0, 1, 1, 1]
    assert all(s.history == "full" for s in started)
    last = json.loads(llm.bodies[-1])["messages"]
    assert [m["role"] for m in last] == [
        "system",
        "user",
        "assistant",
        "tool",
        "assistant",
        "user",
        "assistant",
        "user",
    ]
    assert last[1]["content"] == "add them" and last[-1]["content"] == "fourth"
    # The log alone rebuilds every request, trimmed as it was sent.
    checks = await check_requests(log, conv, ScriptedLLM([]))
    assert len(checks) == 5 and all(c.ok for c in checks)
    # The rows keep every turn: trimming is what a request carries, not what is stored.
    assert len(await rows.rows(conv)) == 8


async def test_a_custom_hook_is_checked() -> None:
    def keep_last_turn(messages: list[dict[str, Any]], budget: int) -> list[dict[str, Any]]:
        users = [i for i, m in enumerate(messages) if m["role"] == "user"]
        start = users[-2] if len(users) > 1 else users[-1]
        return messages[:1] + messages[start:]

    log, conv, _, _ = await run(EngineConfig(history_tokens=1, history_trim=keep_last_turn))
    started = [r.event async for r in log.iter_stream(conv) if isinstance(r.event, TurnStarted)]
    assert [s.history_dropped for s in started] == [0, 0, 1, 2]
    assert all(c.ok for c in await check_requests(log, conv, ScriptedLLM([])))

    def rewrites(messages: list[dict[str, Any]], budget: int) -> list[dict[str, Any]]:
        return [*messages[:-1], {"role": "user", "content": "something else"}]

    def splits_a_call(messages: list[dict[str, Any]], budget: int) -> list[dict[str, Any]]:
        return [m for m in messages if m["role"] != "tool"]

    for hook in (rewrites, splits_a_call):
        log, rows = InMemoryEventLog(), MemoryMessageStore()
        plain = TurnEngine(log, ScriptedLLM(SCRIPT), tools=make_tools(), messages=rows, ids=SequentialIds())
        conv = await plain.create_conversation(model="m")
        [r async for r in plain.run_turn(conv, TurnRequest("one"))]
        [r async for r in plain.run_turn(conv, TurnRequest("two", enabled_tools=ALL_TOOLS))]
        head = (await log.last(conv)).version
        hooked = TurnEngine(
            log, ScriptedLLM(SCRIPT), messages=rows, config=EngineConfig(history_tokens=1, history_trim=hook)
        )
        with pytest.raises(ConfigError, match="history_trim must return"):
            [r async for r in hooked.run_turn(conv, TurnRequest("three"))]
        assert (await log.last(conv)).version == head  # refused: nothing written


def test_turns_recorded_before_full_history_rebuild_as_text() -> None:
    # A turn recorded before issue 12 (history "text") repeated the last answers only.
    log_events = [
        TurnStarted("q", "m1", "m2", "p", "m", None, None, False, [], None, 2),
    ]
    fold = PriorTurns()
    for ev in log_events:
        fold.apply(ev)
    old = TurnStarted("q2", "m3", "m4", "p", "m", None, None, False, [], None, 2)
    assert old.history == "text" and fold.for_turn(old) == []


@pytest.mark.parametrize("bad", [{"history_tokens": 0}, {"history_tokens": "9"}, {"history_trim": 3}])
def test_the_settings_are_checked(bad: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match="history_"):
        EngineConfig(**bad)
