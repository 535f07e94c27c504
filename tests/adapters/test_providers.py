"""Provider configs, the public face of turnlog.adapters, DeepSeek-style reasoning round trips
and cancellation through the engine."""

from __future__ import annotations

import asyncio
import json

import pytest
from turnlog.adapters.llm import PRESETS, LocalServer, OpenAILLM, ProviderConfig, RecordedLLM, Reply, Timeouts
from turnlog.engine import (
    ConfigError,
    EngineConfig,
    FixedClock,
    InMemoryEventLog,
    SequentialIds,
    TurnEngine,
    TurnFailed,
    TurnRequest,
    check_requests,
    replay,
)
from turnlog.projections import stream_sse

from .conftest import CORPUS

FOLLOW_UP = b'data: {"choices":[{"index":0,"delta":{"content":"Sunny."},"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n'


def test_from_env_reads_the_settings_and_keeps_the_key_out_of_the_config() -> None:
    env = {"OPENAI_BASE_URL": "http://127.0.0.1:9/v1", "OPENAI_API_KEY": "sk-zzz-123", "TURNLOG_MODEL": "m1"}
    config = ProviderConfig.from_env(env)
    assert (config.name, config.url, config.model) == ("openai", "http://127.0.0.1:9/v1/chat/completions", "m1")
    assert config.auth_headers() == {"Authorization": "Bearer sk-zzz-123"}
    assert "sk-zzz" not in repr(config)
    deepseek = ProviderConfig.from_env({"TURNLOG_PROVIDER": "deepseek", "DEEPSEEK_API_KEY": "sk-ds"})
    assert deepseek.round_trip_reasoning and deepseek.model == "deepseek-chat"
    assert deepseek.auth_headers() == {"Authorization": "Bearer sk-ds"}  # the preset's own variable
    with pytest.raises(ConfigError, match="not a known provider"):
        ProviderConfig.from_env({"TURNLOG_PROVIDER": "nope"})
    assert {"openai", "deepseek", "openrouter", "groq", "mistral", "ollama", "vllm"} <= set(PRESETS)


async def test_azure_style_auth_header_and_query() -> None:
    ok = b'data: {"choices":[{"index":0,"delta":{"content":"hi"},"finish_reason":"stop"}]}\n\n'
    async with LocalServer([Reply(body=ok)]) as server:
        config = ProviderConfig(
            name="azure",
            base_url=server.url + "/openai/deployments/gpt",
            model="gpt",
            api_key_resolver=lambda: "azkey",
            auth_header="api-key",
            auth_scheme="",
            query={"api-version": "2024-10-21"},
        )
        async with OpenAILLM(config) as llm:
            chunks = [c async for c in llm.stream(b"{}")]
        assert chunks[0].text == "hi"  # type: ignore[union-attr]
        (request,) = server.requests
    assert request.path == "/openai/deployments/gpt/chat/completions?api-version=2024-10-21"
    assert request.headers["api-key"] == "azkey" and "authorization" not in request.headers


@pytest.mark.skipif(not CORPUS.is_dir(), reason=f"the recorded-stream corpus is not at {CORPUS}")
@pytest.mark.parametrize("round_trip", [True, False])
async def test_reasoning_goes_back_with_the_tool_calls_where_the_provider_demands_it(round_trip: bool) -> None:
    log = InMemoryEventLog()
    async with RecordedLLM([CORPUS / "deepseek-tool-call-1.sse", FOLLOW_UP], round_trip_reasoning=round_trip) as llm:
        engine = TurnEngine(log, llm, clock=FixedClock(), ids=SequentialIds())
        conv = await engine.create_conversation(model="deepseek-v4-flash")
        [r async for r in engine.run_turn(conv, TurnRequest("Weather in SF?", thinking=True))]
        second = json.loads(llm.bodies[1])
        # The log alone rebuilds both requests byte for byte.
        checks = await check_requests(log, conv, llm)
    assistant = second["messages"][-2]
    assert assistant["tool_calls"][0]["function"]["name"] == "weather"
    if round_trip:
        assert assistant["reasoning_content"].startswith("The user asks about the weather")
    else:
        assert "reasoning_content" not in assistant
    assert len(checks) == 2 and all(c.ok for c in checks)


async def test_a_consumer_that_stops_reading_cancels_the_turn_and_closes_the_response() -> None:
    events = b"".join(b'data: {"choices":[{"index":0,"delta":{"content":"w%d "}}]}\n\n' % i for i in range(500))
    log = InMemoryEventLog()
    async with LocalServer([Reply(body=events, seed=1, piece_max=40, delay=0.002)]) as server:
        config = ProviderConfig(name="p", base_url=server.url, model="m")
        async with OpenAILLM(config, timeouts=Timeouts(idle=5.0)) as llm:
            engine = TurnEngine(log, llm, clock=FixedClock(), ids=SequentialIds(), config=EngineConfig(flush_ms=1.0))
            conv = await engine.create_conversation(model="m")
            stream = stream_sse(engine, conv, TurnRequest("go"))
            frames = [await anext(stream) for _ in range(3)]
            await stream.aclose()
            for _ in range(200):
                if server.open_connections == 0:
                    break
                await asyncio.sleep(0.01)
            assert server.open_connections == 0
    assert frames
    last = [rec async for rec in replay(log, conv)][-1].event
    assert isinstance(last, TurnFailed) and last.reason == "cancelled"


def _tool_chunk(**call: object) -> bytes:
    return b"data: " + json.dumps({"choices": [{"index": 0, "delta": {"tool_calls": [call]}}]}).encode() + b"\n\n"


async def test_repeated_names_and_reused_indexes_through_the_engine() -> None:
    def fn(name: str | None, args: str) -> dict[str, object]:
        return {"name": name, "arguments": args} if name is not None else {"arguments": args}

    answer = (
        # Name and id repeated in every fragment (must not be doubled)...
        _tool_chunk(index=0, id="a", type="function", function=fn("get_weather", '{"city": '))
        + _tool_chunk(index=0, id="a", type="function", function=fn("get_weather", '"Paris"}'))
        # ...then a second call under the same index 0 with its own id (gateways that number every call 0)
        + _tool_chunk(index=0, id="b", type="function", function=fn("get_time", "{}"))
        + b'data: {"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}\n\ndata: [DONE]\n\n'
    )
    log = InMemoryEventLog()
    async with RecordedLLM([answer, FOLLOW_UP]) as llm:
        engine = TurnEngine(log, llm, clock=FixedClock(), ids=SequentialIds())
        conv = await engine.create_conversation(model="m")
        [r async for r in engine.run_turn(conv, TurnRequest("?"))]
    requested = next(r.event for r in [rec async for rec in replay(log, conv)] if r.type == "tool_calls_requested")
    assert [(c.id, c.name, c.arguments) for c in requested.calls] == [
        ("a", "get_weather", '{"city": "Paris"}'),
        ("b", "get_time", "{}"),
    ]
