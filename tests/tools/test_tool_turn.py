"""Through the engine: the schema derived from a signature is what the model is offered (and what
``TurnStarted`` records), a call with a wrong argument type is recorded as ``success: false``
naming the field, and the turn goes on; a tool's exception reaches the stream as a clear message."""

from __future__ import annotations

import json
from typing import Any, Literal

from turnlog.adapters.llm import ScriptedLLM
from turnlog.engine import (
    InMemoryEventLog,
    ToolRegistry,
    ToolResultRecorded,
    TurnEngine,
    TurnFinalized,
    TurnRequest,
    TurnStarted,
    check_requests,
    replay,
)
from turnlog.projections import stream_sse


def weather_tools(calls: list[dict[str, Any]]) -> ToolRegistry:
    tools = ToolRegistry(default_timeout=2.0)

    async def get_weather(city: str, units: Literal["c", "f"] = "c") -> dict[str, Any]:
        """Current weather for a city."""
        calls.append({"city": city, "units": units})
        if city == "Atlantis":
            raise ValueError("no station in Atlantis")
        return {"city": city, "temp": 18 if units == "c" else 64}

    tools.register(get_weather)
    return tools


async def run(script: list[list[dict[str, Any]]]) -> tuple[list[Any], list[bytes], ScriptedLLM, list[Any]]:
    log, calls, llm = InMemoryEventLog(), [], ScriptedLLM(script)
    engine = TurnEngine(log, llm, tools=weather_tools(calls))
    conv = await engine.create_conversation(model="m")
    frames = [
        frame
        async for frame in stream_sse(engine, conv, TurnRequest("Weather?", enabled_tools=["get_weather"]), "delta")
    ]
    events = [rec.event async for rec in replay(log, conv)]
    assert all(c.ok for c in await check_requests(log, conv, ScriptedLLM([])))
    return events, frames, llm, calls


async def test_a_wrong_argument_type_is_a_failed_result_and_the_turn_goes_on() -> None:
    events, frames, llm, calls = await run(
        [
            [{"tool": "get_weather", "arguments": {"city": "Paris", "units": 451}, "id": "call_bad"}],
            [{"tool": "get_weather", "arguments": {"city": "Paris"}, "id": "call_good"}],
            [{"text": "18 degrees in Paris."}],
        ]
    )
    started = next(e for e in events if isinstance(e, TurnStarted))
    assert started.tools[0]["function"]["parameters"] == {
        "type": "object",
        "properties": {"city": {"type": "string"}, "units": {"enum": ["c", "f"], "default": "c"}},
        "required": ["city"],
        "additionalProperties": False,
    }
    # ...and that is the schema the model was sent.
    assert json.loads(llm.bodies[0])["tools"] == started.tools
    bad, good = [e for e in events if isinstance(e, ToolResultRecorded)]
    assert (bad.call_id, bad.success) == ("call_bad", False)
    assert bad.content == "error: invalid arguments for tool get_weather: Expected `str`, got `int` - at `$.units`"
    assert good.success and json.loads(good.content) == {"city": "Paris", "temp": 18}
    assert calls == [{"city": "Paris", "units": "c"}]  # the bad call never ran
    assert isinstance(events[-1], TurnFinalized)
    # The model saw why, and corrected itself.
    second = json.loads(llm.bodies[1])["messages"][-1]
    assert second["role"] == "tool" and "at `$.units`" in second["content"]
    assert any(b"at `$.units`" in f and b'"success":false' in f for f in frames)


async def test_a_tools_exception_reaches_the_model_and_the_stream() -> None:
    events, frames, llm, _ = await run(
        [
            [{"tool": "get_weather", "arguments": {"city": "Atlantis"}}],
            [{"text": "There is no station there."}],
        ]
    )
    (result,) = [e for e in events if isinstance(e, ToolResultRecorded)]
    message = "error: tool get_weather failed: ValueError: no station in Atlantis"
    assert not result.success and result.content == message
    assert json.loads(llm.bodies[1])["messages"][-1]["content"] == message
    (frame,) = [f for f in frames if b'"type":"tool_result"' in f]
    assert json.loads(frame.split(b"data: ", 1)[1])["step"]["content"] == message
    assert isinstance(events[-1], TurnFinalized)


async def test_an_unknown_argument_is_refused_before_python_sees_it() -> None:
    events, _, _, calls = await run(
        [
            [{"tool": "get_weather", "arguments": {"town": "Paris"}}],
            [{"text": "Sorry."}],
        ]
    )
    (result,) = [e for e in events if isinstance(e, ToolResultRecorded)]
    assert result.content == "error: invalid arguments for tool get_weather: Object contains unknown field `town`"
    assert "unexpected keyword argument" not in result.content and calls == []
