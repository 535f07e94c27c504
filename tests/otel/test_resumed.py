"""Turns that did not run through one turn sink still give their spans live: a turn parked for
an approval and taken up again by the decision (its batches reach the rows by catch-up), with a
park in a later iteration too, and a parked turn ended by a cancel. Their live spans are those
exported from the log afterwards, one tree per turn, on every store."""

from __future__ import annotations

from turnlog.adapters.llm import ScriptedLLM
from turnlog.adapters.otel import OtelObserver, export_spans
from turnlog.engine import FixedClock, SequentialIds, ToolRegistry, TurnEngine, TurnRequest, cancel_turn

from .test_spans import shape, tracing


def tools() -> ToolRegistry:
    registry = ToolRegistry()

    async def transfer(amount: int) -> str:
        return f"sent {amount}"

    async def lookup(q: str) -> str:
        return f"found {q}"

    registry.register(transfer, requires_approval=True)
    registry.register(lookup)
    return registry


def call(name: str, args: dict, id_: str) -> dict:
    return {"tool": name, "arguments": args, "id": id_}


SCRIPT = [
    [call("transfer", {"amount": 1}, "c1")],
    [call("lookup", {"q": "balance"}, "c2"), call("transfer", {"amount": 2}, "c3")],
    [{"text": "Both sent.", "split": 2}],
    [call("transfer", {"amount": 7}, "c4")],
]


async def test_turns_taken_up_again_or_cancelled_while_parked_emit_their_spans_live(store) -> None:
    provider, exporter = tracing()
    store.messages.observers = [OtelObserver(provider)]
    engine = TurnEngine(
        store.log,
        ScriptedLLM(SCRIPT),
        tools=tools(),
        messages=store.messages,
        clock=FixedClock(),
        ids=SequentialIds(),
    )
    conv = await engine.create_conversation(model="scripted-model")
    every = ["transfer", "lookup"]
    # Turn 1 parks twice (c1, then c3) and ends after the second decision.
    [rec async for rec in engine.run_turn(conv, TurnRequest("send 1 then 2", enabled_tools=every))]
    assert exporter.get_finished_spans() == ()  # parked: nothing ended yet
    [rec async for rec in engine.decide(conv, "c1", "approve")]
    assert exporter.get_finished_spans() == ()  # parked again, on c3
    [rec async for rec in engine.decide(conv, "c3", "deny", reason="too much")]
    first = exporter.get_finished_spans()
    chats = ["chat scripted-model"] * 3
    tool_calls = ["execute_tool transfer", "execute_tool lookup", "execute_tool transfer"]
    assert sorted(s.name for s in first) == sorted(["invoke_agent turnlog", *chats, *tool_calls])
    assert len([s for s in first if s.parent is None]) == 1
    # Turn 2 parks on c4 and is cancelled there: no process runs it, the cancel ends it.
    [rec async for rec in engine.run_turn(conv, TurnRequest("send 7", enabled_tools=every))]
    await cancel_turn(store.log, conv, reason="changed my mind", messages=store.messages)
    live = exporter.get_finished_spans()
    turns = [s for s in live if s.parent is None]
    assert len(turns) == 2 and turns[1].attributes["error.type"] == "cancelled"

    past_provider, past = tracing()
    assert await export_spans(store.log, conv, tracer_provider=past_provider) == 2
    assert shape(past.get_finished_spans()) == shape(live)
