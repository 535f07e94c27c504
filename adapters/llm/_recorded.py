"""RecordedLLM: replays raw provider responses (``.sse`` files) through the real client.

Each model call of a turn is answered by the next recording, served by a ``LocalServer`` on
127.0.0.1 in random-sized pieces (its first ``random_until`` bytes; the rest of a large one in
64 KiB pieces), and read by the same ``OpenAILLM`` (httpx, SSE parser,
normaliser) that talks to real providers. So a stream recorded from a provider replays in a
test exactly as the provider would have sent it:

    async with RecordedLLM(["answer.sse"]) as llm:
        engine = TurnEngine(log, llm)
        ...

A recording whose body is a JSON object rather than events is served as ``application/json``:
with status 400 when it holds an ``error`` (a provider's error body), else 200 (a server that
ignored ``stream``). ``Recording`` sets status and content type explicitly. A call past the last
recording fails with ``LLMError("... no more recordings ...")``.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from turnlog.engine import LLMChunk, LLMError, LLMRequest

from ._fakeserver import LocalServer, Reply, Request
from ._openai import OpenAILLM, RetryPolicy, Timeouts, render_body
from ._providers import ProviderConfig


@dataclass(frozen=True)
class Recording:
    body: bytes
    status: int | None = None
    content_type: str | None = None
    name: str = "recording"

    @classmethod
    def load(cls, source: str | os.PathLike[str] | bytes | Recording) -> Recording:
        if isinstance(source, Recording):
            return source
        if isinstance(source, bytes):
            return cls(source)
        path = Path(source)
        return cls(path.read_bytes(), name=path.name)

    def reply(self, seed: int | None, piece_max: int, random_until: int | None = None) -> Reply:
        stripped = self.body.lstrip()
        is_json = stripped.startswith((b"{", b"["))
        status = self.status
        if status is None:
            status = 400 if is_json and b'"error"' in stripped else 200
        ctype = self.content_type or ("application/json" if is_json else "text/event-stream")
        return Reply(
            body=self.body,
            status=status,
            content_type=ctype,
            seed=seed,
            piece_max=piece_max,
            random_until=random_until,
        )


#: How much of each recording is sent in random small pieces by default: every recording of the
#: corpus whole (the largest is a few KB), and the first thousand or so events of a large one.
#: The rest goes in 64 KiB pieces: a 300k-delta recording plays in seconds, not a minute.
RANDOM_UNTIL = 1 << 18


class RecordedLLM:
    """An LLM (the engine's port) that answers call N with recording N."""

    round_trip_reasoning: bool

    def __init__(
        self,
        recordings: Sequence[str | os.PathLike[str] | bytes | Recording],
        *,
        provider: str = "recorded",
        model: str = "recorded-model",
        seed: int | None = 0,
        piece_max: int = 64,
        random_until: int | None = RANDOM_UNTIL,
        round_trip_reasoning: bool = False,
        idle_timeout: float = 10.0,
    ) -> None:
        self.recordings = [Recording.load(r) for r in recordings]
        self.provider = provider
        self.round_trip_reasoning = round_trip_reasoning
        self.seed = seed
        self.piece_max = piece_max
        #: Random pieces for this many bytes of each recording, then 64 KiB pieces (None: random
        #: pieces to the end, for a test that wants every event of a large recording split).
        self.random_until = random_until
        self.calls = 0
        #: The request bodies received, in order.
        self.bodies: list[bytes] = []
        self._server = LocalServer(self._reply)
        self._config = ProviderConfig(
            name=provider, base_url="http://127.0.0.1:0/v1", model=model, round_trip_reasoning=round_trip_reasoning
        )
        self._client: OpenAILLM | None = None
        self._timeouts = Timeouts(connect=5.0, idle=idle_timeout)

    def _reply(self, request: Request) -> Reply:
        index = len(self._server.requests) - 1
        seed = None if self.seed is None else self.seed + index
        return self.recordings[index].reply(seed, self.piece_max, self.random_until)

    async def start(self) -> RecordedLLM:
        if self._client is None:
            await self._server.start()
            config = self._config.with_(base_url=f"{self._server.url}/v1")
            # One attempt: a recording is served once; a retry would replay the next one.
            self._client = OpenAILLM(config, retry=RetryPolicy(attempts=1), timeouts=self._timeouts)
        return self

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
        await self._server.close()

    async def __aenter__(self) -> RecordedLLM:
        return await self.start()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    @property
    def model(self) -> str:
        """The model a body names when the request names none (the engine records it)."""
        return self._config.model

    def render(self, request: LLMRequest) -> bytes:
        return render_body(self._config, request)

    async def stream(self, body: bytes) -> AsyncIterator[LLMChunk]:
        index = self.calls
        self.calls += 1
        self.bodies.append(body)
        if index >= len(self.recordings):
            raise LLMError(
                f"{self.provider}: no more recordings: model call {index + 1} has none (all "
                f"{len(self.recordings)} recording(s) were used; the model still asks for tool results)",
                provider=self.provider,
            )
        await self.start()
        assert self._client is not None
        async for chunk in self._client.stream(body):
            yield chunk
