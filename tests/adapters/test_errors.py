"""Every failure of the OpenAI-compatible client against a local server that misbehaves on purpose.

Each one ends the turn as a recorded ``TurnFailed(llm_error)`` whose message names the provider,
the HTTP status and the provider's own words, keeps the output streamed before it, and says how
many attempts were made. Retries happen only before the first byte of a 2xx response.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import socket
from typing import Any

import pytest
from turnlog.adapters.llm import LocalServer, OpenAILLM, ProviderConfig, Reply, RetryPolicy, Timeouts
from turnlog.engine import (
    EngineConfig,
    FixedClock,
    InMemoryEventLog,
    LLMError,
    LLMRequest,
    SequentialIds,
    TextChunk,
    TurnEngine,
    TurnFailed,
    TurnFinalized,
    TurnRequest,
    replay,
)
from turnlog.projections import MemoryMessageStore, stream_sse


def sse(*chunks: dict[str, Any] | str, done: bool = True) -> bytes:
    out = b"".join(b"data: " + (c.encode() if isinstance(c, str) else json.dumps(c).encode()) + b"\n\n" for c in chunks)
    return out + (b"data: [DONE]\n\n" if done else b"")


def text(t: str, finish: str | None = None) -> dict[str, Any]:
    return {"choices": [{"index": 0, "delta": {"content": t}, "finish_reason": finish}]}


ANSWER = sse(
    text("Hello "),
    text("world", "stop"),
    {"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}},
)


class Sleeps:
    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def client(url: str, *, attempts: int = 3, idle: float = 5.0, sleeps: Sleeps | None = None, **kw: Any) -> OpenAILLM:
    config = ProviderConfig(name="acme", base_url=url + "/v1", model="m", api_key_resolver=lambda: "sk-test-key")
    return OpenAILLM(
        config,
        retry=RetryPolicy(attempts=attempts, backoff=0.5),
        timeouts=Timeouts(connect=2.0, idle=idle),
        sleep=sleeps or Sleeps(),
        random=lambda: 1.0,
        **kw,
    )


async def run_turn(llm: OpenAILLM) -> tuple[list[Any], str]:
    log = InMemoryEventLog()
    messages = MemoryMessageStore()
    engine = TurnEngine(
        log, llm, messages=messages, clock=FixedClock(), ids=SequentialIds(), config=EngineConfig(flush_ms=1.0)
    )
    conv = await engine.create_conversation(model="m")
    [f async for f in stream_sse(engine, conv, TurnRequest("hi"))]
    events = [rec.event async for rec in replay(log, conv)]
    rows = await messages.rows(conv)
    return events, json.loads(rows[-1].content)["text"]


def failure(events: list[Any]) -> TurnFailed:
    last = events[-1]
    assert isinstance(last, TurnFailed) and last.reason == "llm_error", last
    return last


async def test_429_with_retry_after_is_retried_then_fails_with_the_count() -> None:
    body = json.dumps({"error": {"message": "Rate limit reached for gpt-4o", "type": "requests"}}).encode()
    reply = Reply(body=body, status=429, content_type="application/json", headers={"Retry-After": "2"})
    sleeps = Sleeps()
    async with LocalServer([reply]) as server, client(server.url, sleeps=sleeps) as llm:
        events, _ = await run_turn(llm)
        assert len(server.requests) == 3
    failed = failure(events)
    assert failed.message == "acme: HTTP 429 after 3 attempts: Rate limit reached for gpt-4o"
    assert sleeps.waits == [2.0, 2.0]


async def test_retry_count_is_on_the_error() -> None:
    reply = Reply(body=b"overloaded", status=503, content_type="text/plain")
    async with LocalServer([reply]) as server, client(server.url) as llm:
        with pytest.raises(LLMError) as info:
            [c async for c in llm.stream(b"{}")]
    err = info.value
    assert (err.retries, err.status, err.provider) == (2, 503, "acme")
    assert str(err) == "acme: HTTP 503 after 3 attempts: overloaded"


async def test_backoff_is_exponential_with_jitter_and_http_date_retry_after_is_honoured() -> None:
    when = email.utils.format_datetime(email.utils.localtime().replace(microsecond=0), usegmt=False)
    replies = [
        Reply(body=b"busy", status=503, content_type="text/plain"),
        Reply(body=b"slow down", status=429, content_type="text/plain", headers={"Retry-After": when}),
        Reply(body=ANSWER),
    ]
    sleeps = Sleeps()
    async with LocalServer(replies) as server, client(server.url, attempts=4, sleeps=sleeps) as llm:
        events, text_ = await run_turn(llm)
        assert len(server.requests) == 3
    assert isinstance(events[-1], TurnFinalized) and text_ == "Hello world"
    assert sleeps.waits[0] == 0.5  # backoff 0.5 * 2**0, jitter 100 % with random() == 1.0
    assert 0.0 <= sleeps.waits[1] <= 1.0  # an HTTP date of now: wait (about) nothing


async def test_a_huge_retry_after_is_capped() -> None:
    policy = RetryPolicy(max_retry_after=3.0)
    assert policy.delay(1, 3600.0, 0.5) == 3.0
    assert policy.delay(3, None, 0.0) == 1.0  # 0.5 * 4, halved by the jitter floor


async def test_4xx_is_not_retried_and_names_the_providers_message() -> None:
    body = json.dumps({"error": {"message": "Invalid model 'x'", "code": "model_not_found"}}).encode()
    async with LocalServer([Reply(body=body, status=404, content_type="application/json")]) as server:
        async with client(server.url) as llm:
            events, _ = await run_turn(llm)
        assert len(server.requests) == 1
    assert failure(events).message == "acme: HTTP 404: Invalid model 'x' (code model_not_found)"


async def test_a_text_error_body_is_cut_to_a_readable_length() -> None:
    body = b"<html><body>" + b"Bad gateway " * 200 + b"</body></html>"
    async with LocalServer([Reply(body=body, status=401, content_type="text/html")]) as server:
        async with client(server.url) as llm:
            events, _ = await run_turn(llm)
    message = failure(events).message
    assert message.startswith("acme: HTTP 401: <html><body>Bad gateway Bad gateway")
    assert "more characters]" in message and len(message) < 600


async def test_connection_refused_is_retried_then_reported() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    sleeps = Sleeps()
    async with client(f"http://127.0.0.1:{port}", sleeps=sleeps) as llm:
        events, _ = await run_turn(llm)
    message = failure(events).message
    assert message.startswith(f"acme: cannot reach http://127.0.0.1:{port}/v1/chat/completions after 3 attempts: ")
    assert "ConnectError" in message
    assert len(sleeps.waits) == 2


async def test_a_connection_dropped_before_the_response_is_retried() -> None:
    async with LocalServer([Reply(drop=True), Reply(body=ANSWER)]) as server, client(server.url) as llm:
        events, text_ = await run_turn(llm)
        assert len(server.requests) == 2
    assert isinstance(events[-1], TurnFinalized) and text_ == "Hello world"


async def test_reset_mid_stream_keeps_the_partial_output_and_is_not_retried() -> None:
    body = sse(text("Partial "), text("answer"), text(" never", "stop"))
    cut = body.index(b"data:", body.index(b"answer"))
    async with LocalServer([Reply(body=body, reset_at=cut, seed=1)]) as server, client(server.url) as llm:
        events, text_ = await run_turn(llm)
        assert len(server.requests) == 1  # after the first byte, a retry would duplicate output
    message = failure(events).message
    assert message.startswith("acme: HTTP 200: connection lost mid-stream after 2 events (")
    assert text_ == "Partial answer"


async def test_a_stall_past_the_idle_timeout_fails_the_turn_with_the_output_kept() -> None:
    body = sse(text("Thinking about "), text("it", "stop"))
    cut = body.index(b"data:", 10)
    async with LocalServer([Reply(body=body, stall_at=cut)]) as server, client(server.url, idle=0.2) as llm:
        events, text_ = await run_turn(llm)
    assert failure(events).message == (
        "acme: HTTP 200: no data for 0.2 s after 1 events (idle timeout); the output so far is kept"
    )
    assert text_ == "Thinking about "


async def test_garbage_lines_that_are_not_sse_fields_are_ignored() -> None:
    body = b"garbage without a colon\n: a comment\nretry: 10\nid: 7\n\n" + sse(text("ok", "stop"))
    async with LocalServer([Reply(body=body)]) as server, client(server.url) as llm:
        events, text_ = await run_turn(llm)
    assert isinstance(events[-1], TurnFinalized) and text_ == "ok"


async def test_invalid_json_data_fails_with_the_output_kept() -> None:
    body = sse(text("Good "), "this is not json", text("never", "stop"))
    async with LocalServer([Reply(body=body, seed=4)]) as server, client(server.url) as llm:
        events, text_ = await run_turn(llm)
    message = failure(events).message
    assert message.startswith("acme: HTTP 200: event 2 is not a JSON chunk (")
    assert "'this is not json'" in message and text_ == "Good "


async def test_truncated_json_at_the_end_of_the_body_fails() -> None:
    body = sse(text("Good "), done=False) + b'data: {"choices":[{"index":0,"delta":{"content":"tr'
    async with LocalServer([Reply(body=body, seed=2)]) as server, client(server.url) as llm:
        events, text_ = await run_turn(llm)
    assert "event 2 is not a JSON chunk" in failure(events).message and text_ == "Good "


async def test_a_stream_closed_before_its_finish_fails() -> None:
    async with LocalServer([Reply(body=sse(text("half"), done=False))]) as server, client(server.url) as llm:
        events, text_ = await run_turn(llm)
    assert "the stream ended after 1 events without a finish reason or [DONE]" in failure(events).message
    assert text_ == "half"


async def test_an_error_event_and_an_error_object_fail_the_turn() -> None:
    named = b'event: error\ndata: {"message": "upstream exploded"}\n\n'
    async with LocalServer([Reply(body=sse(text("a"))[:-14] + named)]) as server, client(server.url) as llm:
        events, text_ = await run_turn(llm)
    assert failure(events).message == "acme: HTTP 200: error inside the stream after 2 events: upstream exploded"
    assert text_ == "a"
    body = sse(text("b"), {"error": "quota exceeded"})
    async with LocalServer([Reply(body=body)]) as server, client(server.url) as llm:
        events, _ = await run_turn(llm)
    assert failure(events).message.endswith("after 2 events: quota exceeded")


async def test_a_server_that_ignores_stream_and_answers_json_gives_the_same_chunks() -> None:
    answer = {
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "Let me look.",
                    "reasoning_content": "Need the tool.",
                    "tool_calls": [
                        {"id": "c1", "type": "function", "function": {"name": "lookup", "arguments": '{"q": 1}'}}
                    ],
                },
                "finish_reason": "tool_calls",
            }
        ],
        "usage": {"prompt_tokens": 9, "completion_tokens": 4, "total_tokens": 13},
    }
    replies = [Reply(body=json.dumps(answer).encode(), content_type="application/json"), Reply(body=ANSWER)]
    async with LocalServer(replies) as server, client(server.url) as llm:
        events, text_ = await run_turn(llm)
    kinds = [type(e).__name__ for e in events]
    assert "ReasoningDelta" in kinds and "ToolCallsRequested" in kinds
    requested = next(e for e in events if type(e).__name__ == "ToolCallsRequested")
    assert [(c.id, c.name, c.arguments) for c in requested.calls] == [("c1", "lookup", '{"q": 1}')]
    assert [e.text for e in events if type(e).__name__ == "TextDelta"] == ["Let me look.", "Hello ", "world"]
    assert isinstance(events[-1], TurnFinalized) and text_ == "Hello world"


async def test_closing_the_stream_closes_the_response() -> None:
    body = sse(*[text(f"w{i} ") for i in range(200)], text(".", "stop"))
    async with LocalServer([Reply(body=body, seed=1, piece_max=20, delay=0.005)]) as server:
        async with client(server.url) as llm:
            stream = llm.stream(b"{}")
            first = await anext(stream)
            assert first == TextChunk("w0 ")
            assert server.open_connections == 1
            await stream.aclose()
            for _ in range(100):
                if server.open_connections == 0:
                    break
                await asyncio.sleep(0.01)
            assert server.open_connections == 0  # the server saw the connection go


async def test_render_is_exact_and_pure() -> None:
    config = ProviderConfig(
        name="deepseek-like",
        base_url="http://x/v1",
        model="dm",
        max_tokens=100,
        thinking_on={"thinking": {"type": "enabled"}},
        thinking_off={"thinking": {"type": "disabled"}},
    )
    llm = OpenAILLM(config)
    try:
        request = LLMRequest("", [{"role": "user", "content": "é"}], [{"type": "function"}], 0.5, None, True)
        body = llm.render(request)
        assert body == llm.render(request)
        assert json.loads(body) == {
            "model": "dm",
            "messages": [{"role": "user", "content": "é"}],
            "stream": True,
            "stream_options": {"include_usage": True},
            "tools": [{"type": "function"}],
            "temperature": 0.5,
            "max_tokens": 100,
            "thinking": {"type": "enabled"},
        }
        off = json.loads(llm.render(LLMRequest("m2", [], [], None, 7, False)))
        assert off == {
            "model": "m2",
            "messages": [],
            "stream": True,
            "stream_options": {"include_usage": True},
            "max_tokens": 7,
            "thinking": {"type": "disabled"},
        }
    finally:
        await llm.aclose()


async def test_a_2xx_json_error_body_and_an_empty_json_answer_fail_the_turn() -> None:
    replies = [
        Reply(body=b'{"error": {"message": "context too long"}}', content_type="application/json"),
        Reply(body=b'{"object": "chat.completion"}', content_type="application/json"),
    ]
    async with LocalServer(replies) as server, client(server.url) as llm:
        first, _ = await run_turn(llm)
        second, _ = await run_turn(llm)
    assert failure(first).message == "acme: HTTP 200: context too long"
    assert failure(second).message.startswith("acme: HTTP 200: the JSON answer has no choices, usage or error: ")


async def test_an_html_page_instead_of_a_stream_is_named() -> None:
    async with LocalServer([Reply(body=b"<html>login</html>", content_type="text/html")]) as server:
        async with client(server.url) as llm:
            events, _ = await run_turn(llm)
    assert failure(events).message == (
        "acme: HTTP 200: the server answered 'text/html', not an event stream (0 events, no finish reason): "
        "is the base URL right?"
    )
