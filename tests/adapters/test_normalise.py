"""The normaliser alone (pure): provider shapes beyond the recorded corpus, from providers' docs
and bug reports: calls without index, reused indexes, per-fragment ids, arguments as objects,
content as parts, both reasoning fields, usage only in x_groq, the legacy function_call."""

from __future__ import annotations

import json
from typing import Any

import pytest
from turnlog.adapters.llm._normalise import MalformedStream, StreamNormalizer
from turnlog.adapters.llm._provider_text import body_error_text
from turnlog.engine import (
    ErrorChunk,
    FinishChunk,
    ReasoningChunk,
    TextChunk,
    ToolCallChunk,
    UsageChunk,
)


def feed(*chunks: dict[str, Any]) -> list[Any]:
    norm = StreamNormalizer()
    out: list[Any] = []
    for c in chunks:
        out += norm.event("message", json.dumps(c))
    return out


def delta(d: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {"choices": [{"index": 0, "delta": d, "finish_reason": finish}]}


def calls(chunks: list[Any]) -> dict[int, tuple[str, str, str]]:
    """What the engine assembles: first id, first name, concatenated arguments, per slot."""
    out: dict[int, list[str]] = {}
    for c in chunks:
        if isinstance(c, ToolCallChunk):
            slot = out.setdefault(c.index, ["", "", ""])
            slot[0] = slot[0] or (c.id or "")
            slot[1] = slot[1] or (c.name or "")
            slot[2] += c.arguments or ""
    return {k: (v[0], v[1], v[2]) for k, v in out.items()}


def tc(**kw: Any) -> dict[str, Any]:
    fn = {k: kw.pop(k) for k in ("name", "arguments") if k in kw}
    return {**kw, "function": fn}


def test_calls_without_index_in_one_chunk_and_continued_later() -> None:
    out = feed(
        delta({"tool_calls": [tc(id="a", name="f", arguments='{"x":'), tc(id="b", name="g", arguments="{}")]}),
        delta({"tool_calls": [tc(id="b", arguments="")]}),
        delta({"tool_calls": [tc(id="c", name="h", arguments="{")]}),
        delta({"tool_calls": [tc(arguments="}")]}, "tool_calls"),
    )
    assert calls(out) == {0: ("a", "f", '{"x":'), 1: ("b", "g", "{}"), 2: ("c", "h", "{}")}


def test_a_reused_index_with_a_new_id_and_name_is_a_new_call() -> None:
    out = feed(
        delta({"tool_calls": [tc(index=0, id="a", name="f", arguments="{}")]}),
        delta({"tool_calls": [tc(index=0, id="b", name="g", arguments='{"y":1}')]}),
    )
    assert calls(out) == {0: ("a", "f", "{}"), 1: ("b", "g", '{"y":1}')}


def test_ids_and_names_repeated_in_every_fragment_are_one_call() -> None:
    out = feed(
        delta({"tool_calls": [tc(index=0, id="a", name="f", arguments='{"q"')]}),
        delta({"tool_calls": [tc(index=0, id="a", name="f", arguments=': "v"}')]}),
        # A server minting a fresh id per fragment (no name): still a continuation.
        delta({"tool_calls": [tc(index=0, id="zz", arguments="")]}),
        delta({"tool_calls": [tc(index=0, name="", arguments="")]}),
    )
    assert calls(out) == {0: ("a", "f", '{"q": "v"}')}
    assert all(c.name in ("f", None) for c in out if isinstance(c, ToolCallChunk))  # "" never overwrites


def test_first_call_at_index_1_and_arguments_as_an_object() -> None:
    out = feed(delta({"tool_calls": [tc(index=1, id="a", name="f", arguments={"city": "Paris"})]}))
    assert calls(out) == {0: ("a", "f", '{"city":"Paris"}')}


def test_legacy_function_call() -> None:
    out = feed(delta({"function_call": {"name": "f", "arguments": "{"}}), delta({"function_call": {"arguments": "}"}}))
    assert calls(out) == {0: ("", "f", "{}")}


def test_content_parts_and_reasoning_fields() -> None:
    out = feed(
        delta(
            {
                "content": [
                    {"type": "thinking", "thinking": [{"type": "text", "text": "hmm"}]},
                    {"type": "text", "text": "A"},
                ]
            }
        ),
        delta({"reasoning_content": "r1", "reasoning": "r1"}),  # the same text under both names: once
        delta({"reasoning_content": "", "reasoning": "r2"}),
        delta({"content": None, "refusal": "No."}, "stop"),
    )
    assert out == [
        ReasoningChunk("hmm"),
        TextChunk("A"),
        ReasoningChunk("r1"),
        ReasoningChunk("r2"),
        TextChunk("No."),
        FinishChunk("stop"),
    ]


def test_usage_shapes() -> None:
    groq = {"choices": [], "x_groq": {"usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}}}
    anthropic_like = {"choices": [], "usage": {"input_tokens": 4, "output_tokens": 5}}
    out = feed(groq, anthropic_like, {"choices": [], "usage": None})
    assert [(u.prompt_tokens, u.completion_tokens, u.total_tokens) for u in out] == [(1, 2, 3), (4, 5, 9)]
    assert all(isinstance(u, UsageChunk) for u in out)


def test_other_choices_are_ignored_and_errors_follow_the_output() -> None:
    out = feed(
        {
            "choices": [{"index": 1, "delta": {"content": "other"}}, {"index": 0, "delta": {"content": "mine"}}],
            "error": {"message": "boom", "code": 502},
        }
    )
    assert out == [TextChunk("mine"), ErrorChunk("boom (code 502)")]


def test_done_empty_and_malformed_events() -> None:
    norm = StreamNormalizer()
    assert norm.event("message", "") == []
    with pytest.raises(MalformedStream, match="event 1 is not a JSON chunk"):
        norm.event("message", '{"choices": [')
    with pytest.raises(MalformedStream):
        norm.event("message", "[1, 2]")
    assert norm.event("message", "[DONE]") == [] and norm.done


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"error": {"message": "bad key", "type": "auth"}}', "bad key"),
        (b'{"error": "plain string"}', "plain string"),
        (b'{"message": "top-level message"}', "top-level message"),
        (b'{"detail": "FastAPI style"}', "FastAPI style"),
        (
            b'[{"error": {"code": 429, "message": "Google style", "status": "RESOURCE_EXHAUSTED"}}]',
            "Google style (code 429)",
        ),
        (b"Service Unavailable", "Service Unavailable"),
        (b"", "(empty body)"),
    ],
)
def test_error_bodies(body: bytes, message: str) -> None:
    assert body_error_text(body) == message


def test_reasoning_details_only_when_no_plain_field() -> None:
    details = [{"type": "reasoning.text", "text": "deep"}, {"type": "reasoning.encrypted", "data": "xx"}]
    out = feed(delta({"reasoning_details": details}), delta({"reasoning": "plain", "reasoning_details": details}))
    assert out == [ReasoningChunk("deep"), ReasoningChunk("plain")]
