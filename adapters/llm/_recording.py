"""RecordingLLM: each call to the model saved as a ``.sse`` file that ``RecordedLLM`` replays.

How users build their own test recordings from real runs, as VCR cassettes do:

    async with RecordingLLM(OpenAILLM(config), "recordings/") as llm:
        engine = TurnEngine(log, llm)
        ...                     # recordings/0001.sse, 0002.sse, ...: one per model call, in order

    async with RecordedLLM(sorted(Path("recordings").glob("*.sse"))) as llm:
        ...                     # the same turn again, offline, through the real client

(``turnlog chat --record DIR`` records; ``turnlog play DIR/*.sse`` replays.) Numbers continue
after the highest one already in the folder, so a second session adds to it.

What a file holds:

- for an LLM that streams through an httpx client (``OpenAILLM``): the raw response body, byte
  for byte as the provider sent it (the request asks for no content encoding, so nothing is
  compressed), of the call's last response: a retried 429 is not kept, an error answer is its
  JSON body (``RecordedLLM`` serves a body holding ``error`` back as a 400), a stream cut short
  stays cut short;
- for any other LLM: the chunks it yielded, written as the OpenAI-compatible stream they stand
  for (an ``LLMError`` it raised becomes an ``error`` event), so they replay to the same chunks.

The request body is not recorded: it is rebuilt from the log (``rebuild_requests``).
"""

from __future__ import annotations

import contextvars
import os
import re
from collections.abc import AsyncIterator
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import msgspec
from turnlog.engine import (
    LLM,
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

_encode = msgspec.json.Encoder().encode
_NUMBERED = re.compile(r"^(\d+)\.sse$")

#: The body of the response being recorded for the call this task makes, if any.
_capture: contextvars.ContextVar[bytearray | None] = contextvars.ContextVar("turnlog_recording", default=None)


class _Tee(httpx.AsyncByteStream):
    """A response body that copies each piece into the call's capture as it is read."""

    def __init__(self, inner: Any, capture: bytearray) -> None:
        self._inner = inner
        self._capture = capture

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for piece in self._inner:
            self._capture += piece
            yield piece

    async def aclose(self) -> None:
        await self._inner.aclose()


async def _on_request(request: httpx.Request) -> None:
    if _capture.get() is not None:
        request.headers["accept-encoding"] = "identity"


async def _on_response(response: httpx.Response) -> None:
    capture = _capture.get()
    if capture is not None:
        capture.clear()  # a retry's response replaces the one before it
        response.stream = _Tee(response.stream, capture)


def _event(payload: Any) -> bytes:
    return b"data: " + _encode(payload) + b"\n\n"


def _delta(delta: dict[str, Any], finish: str | None = None) -> bytes:
    return _event({"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})


def as_sse(chunk: LLMChunk) -> bytes:
    """One chunk as the OpenAI-compatible event it stands for."""
    if type(chunk) is TextChunk:
        return _delta({"content": chunk.text})
    if type(chunk) is ReasoningChunk:
        return _delta({"reasoning_content": chunk.text})
    if type(chunk) is ToolCallChunk:
        function = {k: v for k, v in (("name", chunk.name), ("arguments", chunk.arguments)) if v is not None}
        call: dict[str, Any] = {"index": chunk.index, "type": "function", "function": function}
        if chunk.id is not None:
            call["id"] = chunk.id
        return _delta({"tool_calls": [call]})
    if type(chunk) is UsageChunk:
        counts = {"prompt_tokens": chunk.prompt_tokens, "completion_tokens": chunk.completion_tokens}
        return _event({"choices": [], "usage": {**(chunk.raw or {}), **counts, "total_tokens": chunk.total_tokens}})
    if type(chunk) is FinishChunk:
        return _delta({}, chunk.reason)
    assert type(chunk) is ErrorChunk
    return _event({"error": {"message": chunk.message}})


class RecordingLLM:
    """Wraps an LLM (the engine's port); each call's stream is saved as ``NNNN.sse`` in
    ``directory``. Closing it closes the wrapped LLM."""

    def __init__(self, llm: LLM, directory: str | os.PathLike[str]) -> None:
        self.llm = llm
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        numbers = [int(m.group(1)) for p in self.directory.iterdir() if (m := _NUMBERED.match(p.name))]
        self._next = max(numbers, default=0) + 1
        #: The files written, in call order.
        self.paths: list[Path] = []
        # An httpx client of the same package's adapter (OpenAILLM keeps it as ``_client``):
        # its raw bytes are recorded; any other LLM's chunks are written as a stream.
        client = getattr(llm, "_client", None)
        self._client = client if isinstance(client, httpx.AsyncClient) else None
        if self._client is not None:
            hooks = self._client.event_hooks
            for kind, hook in (("request", _on_request), ("response", _on_response)):
                if hook not in hooks[kind]:
                    hooks[kind] = [*hooks[kind], hook]
            self._client.event_hooks = hooks

    @property
    def provider(self) -> str:
        return self.llm.provider

    @property
    def round_trip_reasoning(self) -> bool:
        return self.llm.round_trip_reasoning

    @property
    def model(self) -> str:
        """The wrapped LLM's default model (the engine records it)."""
        return getattr(self.llm, "model", "")

    def render(self, request: LLMRequest) -> bytes:
        return self.llm.render(request)

    async def stream(self, body: bytes) -> AsyncIterator[LLMChunk]:
        path = self.directory / f"{self._next:04d}.sse"
        self._next += 1
        recorded = bytearray()
        raw = self._client is not None
        if raw:
            _capture.set(recorded)
        try:
            async for chunk in self.llm.stream(body):
                if not raw:
                    recorded += as_sse(chunk)
                yield chunk
            if not raw:
                recorded += b"data: [DONE]\n\n"
        except LLMError as exc:
            if not raw:
                recorded += _event({"error": {"message": str(exc)}})
            raise
        finally:
            if raw:
                _capture.set(None)
            # One small write per model call, made also when the call is cut short (closed or
            # cancelled), where an await could itself be cut short.
            path.write_bytes(bytes(recorded))
            self.paths.append(path)

    async def aclose(self) -> None:
        close = getattr(self.llm, "aclose", None)
        if close is not None:
            await close()

    async def __aenter__(self) -> RecordingLLM:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()
