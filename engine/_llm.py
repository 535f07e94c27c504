"""The LLM port: what the engine needs from a model provider, and the chunks it understands.

An adapter turns whatever its provider streams into these normalized chunks. The engine never
sees provider JSON. ``render`` returns the exact request body bytes: the engine records their
sha256 in ``IterationStarted`` and then hands the same bytes to ``stream``, so the digest in the
log is the digest of what was sent.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Protocol, Union, runtime_checkable

import msgspec


class ReasoningChunk(msgspec.Struct, frozen=True):
    text: str


class TextChunk(msgspec.Struct, frozen=True):
    text: str


class ToolCallChunk(msgspec.Struct, frozen=True):
    """A fragment of one tool call. Fragments with the same ``index`` belong to the same call;
    ``arguments`` fragments concatenate. ``id`` and ``name`` may be repeated by some providers in
    every fragment: the engine takes them once, never doubles them."""

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str | None = None


class UsageChunk(msgspec.Struct, frozen=True):
    """Usage of the whole request so far (providers report totals, not increments): the last one
    of an iteration wins."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    raw: dict[str, Any] | None = None


class FinishChunk(msgspec.Struct, frozen=True):
    reason: str


class ErrorChunk(msgspec.Struct, frozen=True):
    """A provider error reported inside the stream. The turn fails with reason ``llm_error``."""

    message: str


LLMChunk = Union[ReasoningChunk, TextChunk, ToolCallChunk, UsageChunk, FinishChunk, ErrorChunk]


class LLMRequest(msgspec.Struct, frozen=True):
    model: str
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]]
    temperature: float | None = None
    max_tokens: int | None = None
    thinking: bool = False


@runtime_checkable
class LLM(Protocol):
    """A model provider. Optionally an adapter also has ``model: str``, the model its bodies name
    when the request names none (``OpenAILLM``: its config's); the engine reads it with
    ``getattr(llm, "model", "")`` to record the model a turn actually calls. It is not a member
    of the protocol, so adapters without a default model need not declare it.

    An adapter may also have ``stream_batches(body) -> AsyncIterator[list[LLMChunk]]``: the same
    chunks as ``stream``, in lists (``OpenAILLM``: those of one network piece), so a reader pays
    one generator hop per list, not per chunk. The engine reads it when there
    (``getattr(llm, "stream_batches", None)``); it is optional, not a member of the protocol, and
    a wrapper that overrides ``stream`` must not inherit it (the engine would bypass the wrapper)."""

    #: Recorded in TurnStarted. Never a secret.
    provider: str
    #: True where the provider rejects a tool-call round trip whose reasoning was dropped
    #: (DeepSeek-style APIs): the request builder then sends ``reasoning_content`` back with every
    #: assistant message that made tool calls, in the turn's own loop and in every later turn.
    round_trip_reasoning: bool

    def render(self, request: LLMRequest) -> bytes:
        """The exact request body for this request. Pure: same request, same bytes."""
        ...

    def stream(self, body: bytes) -> AsyncIterator[LLMChunk]:
        """Send the body and yield normalized chunks. Raises ``LLMError`` on failure. Closing the
        iterator (``aclose``) must release the connection."""
        ...
