"""The OpenTelemetry projection, through the SDK's in-memory exporter: a turn is an
``invoke_agent`` span over one ``chat`` span per model call and one ``execute_tool`` span per
tool call, with the GenAI conventions' attributes (usage with cached and reasoning tokens, as the
recorded provider stream reports them) and the log's times; no text of the conversation unless
content is enabled; failures carry ``error.type``; the spans emitted live equal those exported
from the log afterwards, on every store."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from turnlog.adapters.llm import RecordedLLM, Recording, ScriptedLLM
from turnlog.adapters.otel import OtelObserver, export_spans, nanoseconds
from turnlog.engine import FixedClock, SequentialIds, ToolRegistry, TurnEngine, TurnRequest, replay

CORPUS = Path(__file__).parents[1] / "adapters" / "corpus" / "openai-streams"
FOLLOW_UP = (
    b'data: {"choices":[{"index":0,"delta":{"role":"assistant","content":"Foggy, 14 C."},"finish_reason":null}]}\n\n'
    b'data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}],'
    b'"usage":{"prompt_tokens":400,"completion_tokens":6,"total_tokens":406}}\n\n'
    b"data: [DONE]\n\n"
)
SECRET_RESULT = "foggy and 14 degrees at the Golden Gate"


def tracing() -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def tools() -> ToolRegistry:
    registry = ToolRegistry()

    @registry.tool()
    def weather(location: str) -> str:
        """The weather somewhere."""
        return SECRET_RESULT

    return registry


def shape(spans: tuple[ReadableSpan, ...]) -> list[tuple[Any, ...]]:
    """What a backend sees of the spans, ids aside: name, kind, parent's name, times, status,
    attributes."""
    by_id = {s.context.span_id: s for s in spans}
    return [
        (
            s.name,
            s.kind,
            by_id[s.parent.span_id].name if s.parent is not None else None,
            s.start_time,
            s.end_time,
            s.status.status_code,
            dict(s.attributes or {}),
        )
        for s in sorted(spans, key=lambda s: (s.start_time, s.parent is not None, s.name))
    ]


async def run_weather_turn(store, provider: TracerProvider, *, content: bool) -> str:
    store.messages.observers = [OtelObserver(provider, content=content)]
    replies = [Recording.load(CORPUS / "deepseek-tool-call-1.sse"), FOLLOW_UP]
    async with RecordedLLM(replies, piece_max=4096) as llm:
        engine = TurnEngine(
            store.log, llm, tools=tools(), messages=store.messages, clock=FixedClock(), ids=SequentialIds()
        )
        conv = await engine.create_conversation(model="deepseek-v4-flash", system_prompt="Be brief.")
        request = TurnRequest("Weather in San Francisco?", enabled_tools=["weather"])
        async for _ in engine.run_turn(conv, request):
            pass
    return conv


@pytest.mark.parametrize("content", [False, True])
async def test_a_turn_with_a_tool_call(store, content: bool) -> None:
    provider, exporter = tracing()
    conv = await run_weather_turn(store, provider, content=content)
    live = exporter.get_finished_spans()
    assert [s.name for s in sorted(live, key=lambda s: s.start_time)] == [
        "invoke_agent turnlog",
        "chat deepseek-v4-flash",
        "execute_tool weather",
        "chat deepseek-v4-flash",
    ]
    turn = next(s for s in live if s.parent is None)
    children = [s for s in live if s.parent is not None]
    assert all(s.parent.span_id == turn.context.span_id for s in children)
    assert all(s.context.trace_id == turn.context.trace_id for s in live)
    first, tool, second = sorted(children, key=lambda s: s.start_time)

    assert turn.kind is SpanKind.INTERNAL and first.kind is SpanKind.CLIENT and tool.kind is SpanKind.INTERNAL
    a = turn.attributes
    assert a["gen_ai.operation.name"] == "invoke_agent" and a["gen_ai.agent.name"] == "turnlog"
    assert a["gen_ai.conversation.id"] == conv and a["gen_ai.provider.name"] == "recorded"
    assert a["gen_ai.request.model"] == "deepseek-v4-flash"
    # The turn's usage: the recording's 374 + 61 and the follow-up's 400 + 6.
    assert (a["gen_ai.usage.input_tokens"], a["gen_ai.usage.output_tokens"]) == (774, 67)
    assert tuple(a["gen_ai.response.finish_reasons"]) == ("stop",)

    f = first.attributes
    assert f["gen_ai.operation.name"] == "chat" and f["gen_ai.conversation.id"] == conv
    assert (f["gen_ai.usage.input_tokens"], f["gen_ai.usage.output_tokens"]) == (374, 61)
    # What DeepSeek's usage object says (prompt_tokens_details and completion_tokens_details).
    assert (f["gen_ai.usage.cache_read.input_tokens"], f["gen_ai.usage.reasoning.output_tokens"]) == (256, 17)
    assert tuple(f["gen_ai.response.finish_reasons"]) == ("tool_calls",)
    assert tuple(second.attributes["gen_ai.response.finish_reasons"]) == ("stop",)
    assert "gen_ai.usage.cache_read.input_tokens" not in second.attributes

    t = tool.attributes
    assert t["gen_ai.operation.name"] == "execute_tool" and t["gen_ai.tool.name"] == "weather"
    assert t["gen_ai.tool.type"] == "function" and t["gen_ai.tool.call.id"]
    assert all(s.status.status_code is StatusCode.UNSET for s in live)

    # Times are the log's: the turn spans TurnStarted .. TurnFinalized, each child within it.
    recs = [rec async for rec in replay(store.log, conv)]
    assert turn.start_time == nanoseconds(recs[1].recorded_at)
    assert turn.end_time == nanoseconds(recs[-1].recorded_at)
    assert all(turn.start_time <= s.start_time <= s.end_time <= turn.end_time for s in children)

    text = json.dumps([dict(s.attributes) for s in live])
    secrets = ("Weather in San Francisco?", "Be brief.", "Foggy, 14 C.", SECRET_RESULT, "San Francisco")
    if not content:
        assert not any(secret in text for secret in secrets)
        assert not any(k.startswith(("gen_ai.input", "gen_ai.output", "gen_ai.system")) for k in text.split('"'))
    else:
        inputs = json.loads(a["gen_ai.input.messages"])
        assert inputs == [{"role": "user", "parts": [{"type": "text", "content": "Weather in San Francisco?"}]}]
        assert json.loads(a["gen_ai.system_instructions"]) == [{"type": "text", "content": "Be brief."}]
        out = json.loads(second.attributes["gen_ai.output.messages"])
        assert out == [
            {"role": "assistant", "parts": [{"type": "text", "content": "Foggy, 14 C."}], "finish_reason": "stop"}
        ]
        calls = json.loads(first.attributes["gen_ai.output.messages"])[0]["parts"]
        assert [p["type"] for p in calls] == ["reasoning", "tool_call"] and calls[-1]["name"] == "weather"
        assert json.loads(t["gen_ai.tool.call.arguments"]) == {"location": "San Francisco"}
        assert t["gen_ai.tool.call.result"] == SECRET_RESULT

    # The past, exported from the log: the same spans, attribute for attribute, time for time.
    past_provider, past = tracing()
    assert await export_spans(store.log, conv, tracer_provider=past_provider, content=content) == 1
    assert shape(past.get_finished_spans()) == shape(live)


async def test_failures_carry_their_error_type(store) -> None:
    """A tool that fails, then a provider error mid-answer: the tool span and the model call are
    marked, and the turn carries the TurnFailed reason."""
    provider, exporter = tracing()
    store.messages.observers = [OtelObserver(provider)]
    registry = ToolRegistry()

    @registry.tool()
    def boom() -> str:
        """Fails."""
        raise RuntimeError("no")

    script = [
        [{"tool": "boom", "arguments": {}, "id": "c1"}, {"usage": [5, 1, 6]}],
        [{"text": "half an ans"}, {"error": "upstream went away"}],
    ]
    engine = TurnEngine(
        store.log, ScriptedLLM(script), tools=registry, messages=store.messages, clock=FixedClock(), ids=SequentialIds()
    )
    conv = await engine.create_conversation(model="m")
    async for _ in engine.run_turn(conv, TurnRequest("go", enabled_tools=["boom"])):
        pass
    spans = {s.name: s for s in exporter.get_finished_spans()}
    assert spans["execute_tool boom"].attributes["error.type"] == "tool_error"
    assert spans["execute_tool boom"].status.status_code is StatusCode.ERROR
    turn = spans["invoke_agent turnlog"]
    assert turn.attributes["error.type"] == "llm_error" and turn.status.status_code is StatusCode.ERROR
    chats = sorted((s for s in exporter.get_finished_spans() if s.name == "chat m"), key=lambda s: s.start_time)
    assert [c.attributes.get("error.type") for c in chats] == [None, "llm_error"]
    past_provider, past = tracing()
    await export_spans(store.log, conv, tracer_provider=past_provider)
    assert shape(past.get_finished_spans()) == shape(exporter.get_finished_spans())


async def test_a_failing_exporter_never_fails_the_turn(store) -> None:
    class Broken:
        def sink(self, conversation_id: str, version: int):
            class Sink:
                async def committed(self, records) -> None:
                    raise RuntimeError("collector down")

            return Sink()

    store.messages.observers = [Broken()]
    engine = TurnEngine(store.log, ScriptedLLM([[{"text": "fine"}]]), messages=store.messages, clock=FixedClock())
    conv = await engine.create_conversation()
    frames = [rec async for rec in engine.run_turn(conv, TurnRequest("hi"))]
    assert type(frames[-1].event).__name__ == "TurnFinalized"
    assert [r.status for r in await store.messages.rows(conv)] == ["finalized", "finalized"]
