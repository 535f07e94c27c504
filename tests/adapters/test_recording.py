"""RecordingLLM: each model call saved as a .sse file that RecordedLLM plays back to the same turn.
Raw bytes from an HTTP provider (the call's last response, an error body as sent), chunks written
as the stream they stand for from any other LLM."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from turnlog.adapters.llm import (
    LocalServer,
    OpenAILLM,
    ProviderConfig,
    RecordedLLM,
    RecordingLLM,
    Reply,
    RetryPolicy,
    ScriptedLLM,
)
from turnlog.engine import (
    LLM,
    InMemoryEventLog,
    SequentialIds,
    ToolRegistry,
    TurnEngine,
    TurnFailed,
    TurnRequest,
    replay,
)
from turnlog.projections import project, render


def tools() -> ToolRegistry:
    registry = ToolRegistry()

    @registry.tool(parameters={"type": "object", "properties": {"city": {"type": "string"}}})
    def get_weather(city: str) -> dict[str, Any]:
        return {"city": city, "temp_c": 21}

    return registry


async def one_turn(llm: LLM, message: str = "weather in Oslo?") -> list[Any]:
    log = InMemoryEventLog()
    engine = TurnEngine(log, llm, tools=tools(), ids=SequentialIds())
    conv = await engine.create_conversation(model="fake-1")
    async for _ in engine.run_turn(conv, TurnRequest(message, enabled_tools=["get_weather"], thinking=True)):
        pass
    return [rec async for rec in replay(log, conv)]


SCRIPT = [
    [
        {"reasoning": "Oslo: ask the tool.", "split": 5},
        {"tool": "get_weather", "arguments": {"city": "Oslo"}, "id": "call_oslo", "split": 4},
        {"usage": [30, 9, 39]},
    ],
    [{"text": "It is 21°C in Oslo, «mild».", "split": 3}, {"usage": [50, 8, 58]}],
]


async def test_any_llm_recorded_plays_back_to_the_same_frames(tmp_path: Path) -> None:
    async with RecordingLLM(ScriptedLLM(SCRIPT), tmp_path / "rec") as recording:
        live = await one_turn(recording)
    assert [p.name for p in recording.paths] == ["0001.sse", "0002.sse"]
    assert recording.paths[1].read_bytes().endswith(b"data: [DONE]\n\n")
    async with RecordedLLM(recording.paths) as played:
        again = await one_turn(played)
    # The same steps, deltas, tool calls, usage and ids; only the model adapter differs.
    assert project(again) == project(live)
    assert project(again, "full") == project(live, "full")


async def test_an_http_provider_is_recorded_byte_for_byte_and_replays_to_the_same_transcript(tmp_path: Path) -> None:
    bodies = [
        (
            b'data: {"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_1","function":'
            b'{"name":"get_weather","arguments":"{\\"city\\": \\"Oslo\\"}"}}]}}]}\n\n'
            b'data: {"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}\n\ndata: [DONE]\n\n'
        ),
        b'data: {"choices":[{"index":0,"delta":{"content":"Mild: 21\xc2\xb0C."}}]}\n\n'
        b'data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":{"prompt_tokens":9,'
        b'"completion_tokens":3,"total_tokens":12}}\n\ndata: [DONE]\n\n',
    ]
    # A 429 first: the retry's answer is what the call streamed, and all that is kept.
    replies = [Reply(status=429, body=b'{"error": {"message": "slow down"}}', content_type="application/json")]
    replies += [Reply(body=b, seed=7) for b in bodies]
    async with LocalServer(replies) as server:
        config = ProviderConfig(name="openai", base_url=server.url + "/v1", model="fake-1")
        llm = OpenAILLM(config, retry=RetryPolicy(attempts=2), sleep=lambda _: asyncio.sleep(0))
        async with RecordingLLM(llm, tmp_path) as recording:
            live = await one_turn(recording)
        assert server.requests[0].headers["accept-encoding"] == "identity"
    assert [p.read_bytes() for p in recording.paths] == bodies
    async with RecordedLLM(recording.paths, provider="openai", model="fake-1") as played:
        again = await one_turn(played)
    assert render(again) == render(live)  # request digests included: the same bodies were sent


async def test_an_error_answer_is_recorded_as_sent_and_fails_the_same_way(tmp_path: Path) -> None:
    error = b'{"error": {"message": "model fake-1 does not exist"}}'
    async with LocalServer([Reply(status=404, body=error, content_type="application/json")]) as server:
        config = ProviderConfig(name="openai", base_url=server.url + "/v1", model="fake-1")
        async with RecordingLLM(OpenAILLM(config), tmp_path) as recording:
            live = await one_turn(recording)
    assert recording.paths[0].read_bytes() == error
    async with RecordedLLM(recording.paths) as played:
        again = await one_turn(played)
    for events in (live, again):
        assert isinstance(events[-1].event, TurnFailed) and events[-1].event.reason == "llm_error"
        assert "model fake-1 does not exist" in events[-1].event.message


async def test_numbers_continue_after_the_recordings_already_there(tmp_path: Path) -> None:
    (tmp_path / "0007.sse").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("kept")
    async with RecordingLLM(ScriptedLLM(SCRIPT), tmp_path) as recording:
        await one_turn(recording)
    assert [p.name for p in recording.paths] == ["0008.sse", "0009.sse"]
    assert recording.provider == "scripted" and recording.model == ""
