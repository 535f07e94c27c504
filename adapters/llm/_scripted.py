"""The scripted LLM: deterministic, no network, for the demo and for tests.

A script is a list of *answers*, one per model call (iteration). Each answer is a list of steps:

    {"reasoning": "text", "split": 5}        reasoning deltas (``split``: cut into pieces of 5 chars,
                                              or a list of piece sizes; default one delta)
    {"text": "text", "split": [3, 1, 10]}    content deltas
    {"tool": "get_weather", "arguments": {"city": "Paris"}, "id": "call_1", "split": 4}
                                              one tool call; ``arguments`` a dict or a raw string
                                              (raw strings may be invalid JSON on purpose);
                                              fragments carry the call's index
    {"usage": [prompt, completion, total]}   a usage report (the last one of an answer wins)
    {"finish": "stop"}                       finish reason (default: tool_calls if any, else stop)
    {"error": "message"}                     a provider error inside the stream
    {"raise": "message"}                     the connection fails (``LLMError``)
    {"sleep": 0.05}                          wait, as a slow provider would

Answers may also be given as pre-built chunk lists (``list[LLMChunk]``) for benchmarks.
A call beyond the end of the script raises ``LLMError``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from typing import Any

import msgspec
from turnlog.engine import (
    ConfigError,
    ErrorChunk,
    FinishChunk,
    LLMChunk,
    LLMError,
    LLMRequest,
    ReasoningChunk,
    TextChunk,
    ToolCallChunk,
    UsageChunk,
)

_enc = msgspec.json.Encoder(order="deterministic")


def _pieces(text: str, split: int | Sequence[int] | None) -> list[str]:
    if not split:
        return [text]
    if isinstance(split, int):
        return [text[i : i + split] for i in range(0, len(text), split)] or [""]
    out, pos = [], 0
    for size in split:
        out.append(text[pos : pos + size])
        pos += size
    if pos < len(text):
        out.append(text[pos:])
    return out


def compile_answer(steps: Sequence[dict[str, Any]]) -> list[LLMChunk | float | LLMError]:
    """Turn one scripted answer into the chunks it streams (floats are sleeps)."""
    out: list[Any] = []
    tool_index = 0
    saw_tool = False
    finished = False
    for step in steps:
        if "reasoning" in step:
            out += [ReasoningChunk(p) for p in _pieces(step["reasoning"], step.get("split"))]
        elif "text" in step:
            out += [TextChunk(p) for p in _pieces(step["text"], step.get("split"))]
        elif "tool" in step:
            args = step.get("arguments", {})
            raw = args if isinstance(args, str) else json.dumps(args, ensure_ascii=False)
            pieces = _pieces(raw, step.get("split"))
            call_id = step.get("id", f"call_{tool_index + 1}")
            out.append(ToolCallChunk(tool_index, call_id, step["tool"], pieces[0]))
            out += [ToolCallChunk(tool_index, None, None, p) for p in pieces[1:]]
            tool_index += 1
            saw_tool = True
        elif "usage" in step:
            p, c, t = step["usage"]
            out.append(UsageChunk(p, c, t))
        elif "finish" in step:
            out.append(FinishChunk(step["finish"]))
            finished = True
        elif "error" in step:
            out.append(ErrorChunk(step["error"]))
        elif "raise" in step:
            out.append(LLMError(step["raise"], provider="scripted"))
        elif "sleep" in step:
            out.append(float(step["sleep"]))
        else:
            raise ConfigError(f"unknown script step {step!r}")
    if not finished and not any(isinstance(x, (ErrorChunk, LLMError)) for x in out):
        out.append(FinishChunk("tool_calls" if saw_tool else "stop"))
    return out


class ScriptedLLM:
    provider = "scripted"
    round_trip_reasoning = False

    def __init__(self, answers: Sequence[Sequence[Any]]) -> None:
        self._answers = [
            list(a) if a and not isinstance(a[0], dict) else compile_answer(a)  # type: ignore[arg-type]
            for a in answers
        ]
        self.calls = 0
        #: The request bodies received, in order: tests assert what the model was sent.
        self.bodies: list[bytes] = []

    def render(self, request: LLMRequest) -> bytes:
        return _enc.encode(request)

    async def stream(self, body: bytes) -> AsyncIterator[LLMChunk]:
        index = self.calls
        self.calls += 1
        self.bodies.append(body)
        if index >= len(self._answers):
            raise LLMError(f"scripted LLM: no answer scripted for call {index + 1}", provider="scripted")
        for item in self._answers[index]:
            if type(item) is float:
                await asyncio.sleep(item)
            elif isinstance(item, LLMError):
                raise item
            else:
                yield item  # type: ignore[misc]


class EchoLLM:
    """A deterministic model that answers each request from the request itself, so any number of
    conversations can share one instance (``turnlog serve --llm scripted``, server tests, load
    benchmarks). No network.

    - With thinking on, it first reasons one line about the message.
    - It answers by echoing the last user message, ``words_per_delta`` words per text delta,
      sleeping ``delay`` seconds before each delta (a model that takes its time).
    - A user message ``/call NAME {json}`` asks for that tool once (when the request offers it or
      not: the engine checks it); the answer after the result quotes the result.
    - Usage: prompt tokens = words in the request's messages, completion tokens = words answered.
    """

    provider = "scripted"
    round_trip_reasoning = False

    def __init__(self, *, delay: float = 0.0, words_per_delta: int = 1) -> None:
        if words_per_delta < 1:
            raise ConfigError("words_per_delta must be at least 1")
        self.delay = delay
        self.words_per_delta = words_per_delta

    def render(self, request: LLMRequest) -> bytes:
        return _enc.encode(request)

    async def stream(self, body: bytes) -> AsyncIterator[LLMChunk]:
        request = msgspec.json.decode(body, type=LLMRequest)
        last = request.messages[-1] if request.messages else {}
        content = last.get("content")
        text = content if isinstance(content, str) else ""
        prompt_words = sum(len(str(m.get("content") or "").split()) for m in request.messages)
        if last.get("role") == "tool":
            answer = f"The tool answered: {text}"
        elif text.startswith("/call "):
            name, _, args = text[len("/call ") :].strip().partition(" ")
            yield ToolCallChunk(0, "call_1", name, args.strip() or "{}")
            yield UsageChunk(prompt_words, 1, prompt_words + 1)
            yield FinishChunk("tool_calls")
            return
        else:
            answer = text
        if request.thinking:
            yield ReasoningChunk(f"The user wrote {len(text.split())} words; I repeat them.")
        words = answer.split(" ")
        step = self.words_per_delta
        for i in range(0, len(words), step):
            if self.delay:
                await asyncio.sleep(self.delay)
            piece = " ".join(words[i : i + step])
            yield TextChunk(piece if i == 0 else " " + piece)
        yield UsageChunk(prompt_words, len(words), prompt_words + len(words))
        yield FinishChunk("stop")
