"""OpenAI-compatible stream normalisation: provider JSON in, the engine's chunks out. Pure, no I/O.

``StreamNormalizer.event(name, data)`` takes one server-sent event (already split by the WHATWG
rules) and returns the chunks it carries, ``messages(datas, start, out)`` those of many plain
events at once; ``completion(body)`` those of a whole JSON answer (``stream: true`` ignored).
Providers differ in many small ways; the rule is to be liberal in what we accept while never
inventing or losing a byte of model output:

- text: ``delta.content`` as a string, or as a list of parts (``{"type": "text"}`` /
  ``{"type": "thinking"}``, Mistral's Magistral); ``delta.refusal`` is the model's visible
  answer, so it becomes text too (the finish reason is kept as sent);
- reasoning: ``reasoning_content`` (DeepSeek, Moonshot, xAI, llama.cpp, older vLLM) or
  ``reasoning`` (OpenRouter, Groq, Cerebras, Ollama, newer vLLM); a server sending both carries
  the same text twice, so the first non-empty one is taken, never both; OpenRouter's
  ``reasoning_details`` texts only when neither is there (encrypted details carry no text);
- tool calls (``_tool_slots.ToolSlots``): fragments are routed to a *slot* (the ``index`` of the
  emitted ``ToolCallChunk``):
  by ``index`` when present, by ``id`` or position otherwise (Mistral, Ollama omit the index);
  a fragment that reuses an index with a new id *and* a name starts a new call (some gateways
  number every parallel call 0); a new id without a name is a continuation (servers that mint an
  id per fragment). Repeated ids and names are passed on as they come: the engine takes the id
  once and ignores a repeated name (``engine/runner.py::_merge_call``); empty names are dropped
  so they never overwrite. Arguments sent as a JSON object are encoded to text;
- usage: top-level ``usage``, inside a choice (Moonshot), or only in ``x_groq.usage``; each
  report is a total, the last one wins; ``input_tokens``/``output_tokens`` are accepted too;
- errors: an ``event: error`` event, or an ``error`` member next to or instead of ``choices``
  (OpenRouter), become an ``ErrorChunk`` after whatever output the same chunk carried;
- ``[DONE]`` ends the stream; empty ``choices`` and unknown fields (``logprobs``, padding ``p``,
  ``provider_metadata``, ``obfuscation``) are skipped without being decoded. Only choice 0 is read
  (turnlog never asks for ``n > 1``). Per-event work is O(size of the event).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec
from turnlog.engine import (
    ErrorChunk,
    FinishChunk,
    LLMChunk,
    MalformedStream,
    ReasoningChunk,
    TextChunk,
    ToolCallChunk,
    UsageChunk,
)

from ._provider_text import Redact, _keep, clip, error_text
from ._tool_slots import ToolSlots


class _Delta(msgspec.Struct, gc=False):
    # ``Any``: providers disagree on types (content as a list, arguments as an object); the
    # normaliser checks types itself instead of rejecting the whole chunk. ``gc=False`` (all four):
    # decoded data holds no cycle, and untracked structs are cheaper to make (one per event).
    content: Any = None
    reasoning_content: Any = None
    reasoning: Any = None
    refusal: Any = None
    tool_calls: Any = None
    function_call: Any = None
    reasoning_details: Any = None


class _Choice(msgspec.Struct, gc=False):
    index: Any = 0
    delta: _Delta | None = None
    message: _Delta | None = None
    finish_reason: Any = None
    usage: Any = None


class _XGroq(msgspec.Struct, gc=False):
    usage: Any = None


class _Chunk(msgspec.Struct, gc=False):
    choices: list[_Choice] | None = None
    usage: Any = None
    error: Any = None
    x_groq: _XGroq | None = None


_decode_chunk = msgspec.json.Decoder(_Chunk).decode
_decode_any = msgspec.json.Decoder().decode


def usage_chunk(raw: Any) -> UsageChunk | None:
    if not isinstance(raw, dict):
        return None
    prompt = _int(raw.get("prompt_tokens", raw.get("input_tokens")))
    completion = _int(raw.get("completion_tokens", raw.get("output_tokens")))
    total = _int(raw.get("total_tokens")) or prompt + completion
    return UsageChunk(prompt, completion, total, raw)


def _int(value: Any) -> int:
    return value if type(value) is int else int(value) if isinstance(value, float) else 0


def _text(value: Any) -> str:
    """Text of a string or of a list of text parts; '' for anything else."""
    if type(value) is str:
        return value
    if isinstance(value, list):
        return "".join(p.get("text") or "" if isinstance(p, dict) else p if isinstance(p, str) else "" for p in value)
    return ""


def _details_text(details: Any) -> str:
    if not isinstance(details, list):
        return ""
    parts = []
    for d in details:
        if isinstance(d, dict):
            text = d.get("text") if d.get("text") is not None else d.get("summary")
            if isinstance(text, str):
                parts.append(text)
    return "".join(parts)


def _parts(parts: list[Any], out: list[LLMChunk]) -> None:
    """Chunks of ``content`` sent as a list of parts (strings, text and thinking parts)."""
    for part in parts:
        if isinstance(part, str):
            if part:
                out.append(TextChunk(part))
            continue
        if not isinstance(part, dict):
            continue
        kind = part.get("type")
        if kind == "thinking" or kind == "reasoning":
            text = _text(part.get("thinking", part.get("text")))
            if text:
                out.append(ReasoningChunk(text))
        else:
            text = part.get("text")
            if isinstance(text, str) and text:
                out.append(TextChunk(text))


class StreamNormalizer:
    """One per model response. Keeps only the tool-call slot table between events."""

    __slots__ = ("_redact", "done", "events", "finished", "tools")

    def __init__(self, redact: Redact = _keep) -> None:
        #: Masks secrets in provider text before it is cut into an error message.
        self._redact = redact
        #: ``[DONE]`` was seen: nothing more will be read.
        self.done = False
        #: A ``finish_reason`` was seen: the model ended its answer.
        self.finished = False
        #: Data events read (for error messages).
        self.events = 0
        #: Which call each tool-call fragment belongs to.
        self.tools = ToolSlots()

    def event(self, name: str, data: str | bytes) -> list[LLMChunk]:
        """Chunks of one SSE event (its data as text, or as the UTF-8 bytes the wire reader cut).
        Raises ``MalformedStream`` for data that is not a JSON chunk."""
        if not data:
            return []
        if data == b"[DONE]" or data == "[DONE]":
            self.done = True
            return []
        if name != "error":
            out: list[LLMChunk] = []
            if self.messages((data,), 0, out):
                return out
        self.events += 1
        if name == "error":
            text = data.decode("utf-8", "replace") if type(data) is bytes else data
            try:
                payload: Any = _decode_any(text)
            except msgspec.DecodeError:
                payload = text
            return [
                ErrorChunk(error_text(payload, self._redact) or "the provider sent an error event without a message")
            ]
        try:
            chunk = _decode_chunk(data)
        except msgspec.DecodeError as exc:
            if type(data) is bytes:
                # Not UTF-8 (or not JSON): read as text with replacement characters, as the text
                # decoder of the body would, and decide on that (counted once).
                self.events -= 1
                return self.event(name, data.decode("utf-8", "replace"))
            raise MalformedStream(
                f"event {self.events} is not a JSON chunk ({exc}): {clip(data, 200, self._redact)!r}"
            ) from None
        return self._chunk(chunk, "delta")

    def messages(self, datas: Sequence[str | bytes], start: int, out: list[LLMChunk]) -> int:
        """The chunks of the message events ``datas[start:]`` appended to ``out`` up to the first
        that needs ``event`` (empty, ``[DONE]``, not a JSON chunk, an ``error`` member: not read
        here), whose index is returned (``len(datas)``: all read). One choice in a delta takes one
        pass here (exactly ``_chunk``'s chunks), a tool-call fragment that only continues a known
        call's arguments too (exactly ``ToolSlots.route``'s chunk); anything else ``_delta``'s or
        ``_chunk``'s walk."""
        decode = _decode_chunk
        append = out.append
        tools = self.tools
        by_index = tools.by_index
        for i, data in enumerate(datas[start:] if start else datas, start):
            try:
                chunk = decode(data)  # empty data and ``[DONE]`` fail here too
            except msgspec.DecodeError:
                self.events += i - start
                return i
            if chunk.error is not None:  # for ``event``
                self.events += i - start
                return i
            choices = chunk.choices
            if choices is not None and len(choices) == 1 and chunk.usage is None and chunk.x_groq is None:
                choice = choices[0]
                d = choice.delta
                if d is not None and choice.usage is None and (choice.index == 0 or choice.index is None):
                    reasoning = d.reasoning_content  # ``_delta``, inlined, then the finish reason
                    if not reasoning or type(reasoning) is not str:
                        reasoning = d.reasoning
                    content = d.content
                    if (
                        (not reasoning or type(reasoning) is str)
                        and (not content or type(content) is str)
                        and d.function_call is None
                    ):
                        if reasoning:
                            append(ReasoningChunk(reasoning))
                        elif d.reasoning_details and (text := _details_text(d.reasoning_details)):
                            append(ReasoningChunk(text))
                        if content:
                            append(TextChunk(content))
                        if (refusal := d.refusal) and type(refusal) is str:
                            append(TextChunk(refusal))
                        calls = d.tool_calls
                        if calls and type(calls) is list:
                            for position, call in enumerate(calls):
                                if type(call) is not dict:
                                    continue
                                # ``ToolSlots.route`` for the usual fragment (a known index's arguments, no
                                # id, no name): the same slot and chunk, without the general walk.
                                fn = call.get("function")
                                if (
                                    type(fn) is dict
                                    and type(args := fn.get("arguments")) is str
                                    and type(index := call.get("index")) is int
                                    and (slot := by_index.get(index)) is not None
                                    and not call.get("id")
                                    and not fn.get("name")
                                ):
                                    tools.last = slot
                                    append(ToolCallChunk(slot, None, None, args or None))
                                else:
                                    out.append(self.tools.route(call, position))
                    else:
                        self._delta(d, out)  # text parts as lists, ``function_call``
                    reason = choice.finish_reason
                    if reason:
                        self.finished = True
                        append(FinishChunk(reason if type(reason) is str else str(reason)))
                    continue
            out += self._chunk(chunk, "delta")
        self.events += len(datas) - start
        return len(datas)

    def completion(self, body: bytes) -> list[LLMChunk]:
        """Chunks of a whole (non-streamed) JSON chat completion."""
        try:
            chunk = _decode_chunk(body)
        except msgspec.DecodeError as exc:
            raise MalformedStream(
                f"the JSON answer is not a chat completion ({exc}): {clip(body.decode('utf-8', 'replace'), 200, self._redact)!r}"
            ) from None
        self.events += 1
        out = self._chunk(chunk, "message")
        self.done = True
        if not out:
            raise MalformedStream(
                f"the JSON answer has no choices, usage or error: {clip(body.decode('utf-8', 'replace'), 200, self._redact)!r}"
            )
        return out

    def _chunk(self, chunk: _Chunk, field: str) -> list[LLMChunk]:
        out: list[LLMChunk] = []
        usage = None
        choices = chunk.choices
        if choices:
            for choice in choices:
                if choice.index not in (0, None):
                    continue
                delta = choice.delta if field == "delta" else choice.message
                if delta is None and field == "delta":
                    delta = choice.message  # a few servers stream whole ``message`` objects
                if delta is not None:
                    self._delta(delta, out)
                if choice.usage is not None:
                    usage = choice.usage
                reason = choice.finish_reason
                if reason:
                    self.finished = True
                    out.append(FinishChunk(reason if type(reason) is str else str(reason)))
        if chunk.usage is not None:
            usage = chunk.usage
        elif usage is None and chunk.x_groq is not None:
            usage = chunk.x_groq.usage
        if usage is not None:
            u = usage_chunk(usage)
            if u is not None:
                out.append(u)
        if chunk.error is not None:
            out.append(
                ErrorChunk(error_text(chunk.error, self._redact) or "the provider reported an error without a message")
            )
        return out

    def _delta(self, delta: _Delta, out: list[LLMChunk]) -> None:
        reasoning = delta.reasoning_content
        if not reasoning or type(reasoning) is not str:
            reasoning = delta.reasoning
        if reasoning:
            text = _text(reasoning)
            if text:
                out.append(ReasoningChunk(text))
        elif delta.reasoning_details:
            # OpenRouter's structured form, read only when no plain field carries the same text.
            text = _details_text(delta.reasoning_details)
            if text:
                out.append(ReasoningChunk(text))
        content = delta.content
        if content:
            if type(content) is str:
                out.append(TextChunk(content))
            elif isinstance(content, list):
                _parts(content, out)
        refusal = delta.refusal
        if refusal and type(refusal) is str:
            out.append(TextChunk(refusal))
        calls = delta.tool_calls
        if calls:
            if isinstance(calls, list):
                for position, call in enumerate(calls):
                    if isinstance(call, dict):
                        out.append(self.tools.route(call, position))
        elif isinstance(delta.function_call, dict):
            # The pre-tools API: one call, no id.
            out.append(self.tools.route({"index": 0, "function": delta.function_call}, 0))
