"""Size limits in the engine (issue 13, item 8): a message, a turn's output and a conversation are
bounded by ``EngineConfig``, with a clear error, nothing written for a refusal, and a turn stopped
at its limit failing ``too_large`` with its output so far (replayed exactly)."""

from __future__ import annotations

import pytest
from turnlog.adapters.llm import ScriptedLLM
from turnlog.engine import (
    ConfigError,
    ConversationTooLarge,
    EngineConfig,
    InMemoryEventLog,
    MessageTooLarge,
    ReasoningDelta,
    Recorded,
    SequentialIds,
    TextDelta,
    ToolRegistry,
    TurnEngine,
    TurnFailed,
    TurnFinalized,
    TurnRefused,
    TurnRequest,
    replay,
)
from turnlog.projections import MemoryMessageStore, project

from ..conftest import StoreUnderTest


def engine_of(log, script, messages=None, tools=None, **limits) -> TurnEngine:
    return TurnEngine(
        log,
        ScriptedLLM(script),
        messages=messages,
        tools=tools,
        ids=SequentialIds(),
        config=EngineConfig(flush_ms=1.0, **limits),
    )


async def run(engine: TurnEngine, conv: str, message: str, **request) -> list[Recorded]:
    return [rec async for rec in engine.run_turn(conv, TurnRequest(message, **request))]


def output(events: list[Recorded]) -> str:
    return "".join(r.event.text for r in events if isinstance(r.event, (TextDelta, ReasoningDelta)))


async def test_a_message_above_the_limit_is_refused_and_nothing_is_written() -> None:
    log = InMemoryEventLog()
    engine = engine_of(log, [[{"text": "ok"}]], max_message_bytes=10)
    conv = await engine.create_conversation()
    # Six characters, twelve bytes: the limit is on UTF-8 bytes, what is stored and sent.
    with pytest.raises(MessageTooLarge) as refused:
        await run(engine, conv, "é" * 6)
    assert refused.value.code == "too_large" and isinstance(refused.value, TurnRefused)
    assert "12 bytes" in str(refused.value) and "max_message_bytes" in str(refused.value)
    assert (await log.last(conv)).version == 1, "nothing written"
    events = await run(engine, conv, "é" * 5)  # ten bytes: at the limit, accepted
    assert isinstance(events[-1].event, TurnFinalized)


async def test_a_turn_past_max_turn_bytes_fails_too_large_with_its_output_kept(store: StoreUnderTest) -> None:
    tools = ToolRegistry()

    async def lookup(q: str) -> str:
        return "found"

    tools.register(lookup)
    # Counted over the whole turn: 2 reasoning + 2 text bytes and the call's 10 bytes of arguments
    # in the first iteration, then one byte a delta; at 17 bytes (the limit, allowed) the next
    # delta ("h") does not fit.
    script = [
        [{"reasoning": "ab"}, {"text": "cd"}, {"tool": "lookup", "arguments": {"q": "x"}}],
        [{"text": "efghij", "split": 1}],
    ]
    engine = engine_of(store.log, script, messages=store.messages, tools=tools, max_turn_bytes=17)
    conv = await engine.create_conversation()
    live = await run(engine, conv, "go", enabled_tools=["lookup"])
    failed = live[-1].event
    assert isinstance(failed, TurnFailed) and failed.reason == "too_large"
    assert "17 bytes of text, reasoning and tool-call arguments (max_turn_bytes)" in failed.message
    assert output(live) == "abcdefg", "the output up to the limit is kept, nothing past it"
    replayed = [rec async for rec in replay(store.log, conv)]
    assert project(replayed[1:]) == project(live), "replay is exact"
    rows = await store.messages.rows(conv)
    assert rows[-1].status == "failed" and '"text": "efg"' in rows[-1].content
    # The conversation goes on: the next turn starts with a fresh budget.
    engine.llm = ScriptedLLM([[{"text": "fine"}]])
    assert isinstance((await run(engine, conv, "again"))[-1].event, TurnFinalized)


async def test_a_turn_past_max_turn_deltas_fails_too_large() -> None:
    log = InMemoryEventLog()
    engine = engine_of(log, [[{"text": "abcdef", "split": 1}]], max_turn_deltas=4)
    conv = await engine.create_conversation()
    live = await run(engine, conv, "go")
    failed = live[-1].event
    assert isinstance(failed, TurnFailed) and failed.reason == "too_large"
    assert "4 text and reasoning deltas (max_turn_deltas)" in failed.message
    assert output(live) == "abcd"


async def test_tool_call_arguments_count_toward_max_turn_bytes() -> None:
    log = InMemoryEventLog()
    tools = ToolRegistry()

    async def store_blob(blob: str) -> str:
        return "stored"

    tools.register(store_blob)
    script = [[{"text": "saving"}, {"tool": "store_blob", "arguments": {"blob": "x" * 100}, "split": 10}]]
    engine = engine_of(log, script, tools=tools, max_turn_bytes=50)
    conv = await engine.create_conversation()
    live = await run(engine, conv, "go", enabled_tools=["store_blob"])
    failed = live[-1].event
    assert isinstance(failed, TurnFailed) and failed.reason == "too_large"
    assert output(live) == "saving", "the text is kept; the half-received call is not recorded"
    assert not any(r.type in ("tool_calls_requested", "tool_call_started") for r in live)


async def test_a_conversation_at_max_conversation_events_refuses_a_new_turn() -> None:
    log = InMemoryEventLog()
    engine = engine_of(log, [[{"text": "one"}], [{"text": "two"}]], max_conversation_events=5)
    conv = await engine.create_conversation()
    await run(engine, conv, "first")  # created, started, iteration, delta, finalized: 5 events
    with pytest.raises(ConversationTooLarge) as refused:
        await run(engine, conv, "second")
    assert refused.value.code == "conversation_too_large"
    assert "max_conversation_events" in str(refused.value) and "start a new conversation" in str(refused.value)
    assert (await log.last(conv)).version == 5, "nothing written"


@pytest.mark.parametrize("rows", [True, False], ids=["rows", "log-history"])
async def test_a_conversation_past_max_conversation_bytes_refuses_a_new_turn(rows: bool) -> None:
    log = InMemoryEventLog()
    messages = MemoryMessageStore() if rows else None
    engine = engine_of(log, [[{"text": "x" * 40}], [{"text": "ok"}]], messages=messages, max_conversation_bytes=60)
    conv = await engine.create_conversation()
    await run(engine, conv, "y" * 10)  # 10 + 40 bytes of messages
    with pytest.raises(ConversationTooLarge) as refused:
        await run(engine, conv, "z" * 11)  # 61 bytes with it
    assert "come to 61 bytes" in str(refused.value) and "max_conversation_bytes" in str(refused.value)
    version = (await log.last(conv)).version
    assert isinstance((await run(engine, conv, "z" * 10))[-1].event, TurnFinalized)  # 60: at the limit
    assert version < (await log.last(conv)).version


@pytest.mark.parametrize(
    "field",
    ["max_message_bytes", "max_turn_bytes", "max_turn_deltas", "max_conversation_bytes", "max_conversation_events"],
)
def test_a_limit_must_be_a_positive_integer(field: str) -> None:
    with pytest.raises(ConfigError, match=f"EngineConfig.{field} must be a positive integer, not 0"):
        EngineConfig(**{field: 0})
