"""The OpenAI-compatible streaming client: ``POST {base_url}/chat/completions`` over httpx.

``OpenAILLM`` implements the engine's LLM port. ``render`` builds the exact body bytes (the engine
records their digest); ``stream`` sends them and yields normalized chunks (``StreamNormalizer``)
from the server-sent events, cut from the body's bytes by the WHATWG rules (``SseEvents``: a
piece boundary inside a character or between CR and LF is handled there;
``tests/adapters/test_wire.py`` proves it). ``stream_batches`` yields the same chunks as one list
per network piece (what the engine reads: one generator hop per piece, not per chunk).

Failures raise ``LLMError`` (the engine records ``TurnFailed(llm_error)``) whose message names the
provider, the HTTP status and the provider's own words, e.g. ``openai: HTTP 429 after 3
attempts: Rate limit reached``. Retries happen only before the first byte of a 2xx response
(429, 408, 409, 5xx, connection failures), with exponential backoff and jitter, honouring
``Retry-After`` / ``retry-after-ms``; once output has started a retry would duplicate it, so
never. The API key goes into the auth header and nowhere else: not into reprs, messages (any
echo of it by a server is masked), or the log.
"""

from __future__ import annotations

import asyncio
import email.utils
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import httpx
import msgspec
from turnlog.engine import ErrorChunk, LLMChunk, LLMError, LLMRequest

from ._normalise import MalformedStream, StreamNormalizer
from ._provider_text import body_error_text, clip
from ._providers import ProviderConfig
from ._wire import SseEvents

_encode = msgspec.json.Encoder().encode

#: Statuses worth another attempt (the server may answer differently in a moment).
RETRY_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504, 520, 521, 522, 523, 524, 529})
#: Largest error body read from a failed response.
MAX_ERROR_BODY = 64 * 1024
#: Largest whole-JSON answer read from a server that ignored ``stream``.
MAX_JSON_BODY = 32 * 1024 * 1024


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 3
    backoff: float = 0.5
    max_backoff: float = 8.0
    #: A ``Retry-After`` longer than this is cut to it (a minute-long wait is a failure to report).
    max_retry_after: float = 30.0

    def delay(self, attempt: int, retry_after: float | None, rnd: float) -> float:
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_retry_after)
        base = min(self.backoff * 2 ** (attempt - 1), self.max_backoff)
        return base * (0.5 + rnd / 2)  # jitter: 50-100 % of the exponential step


@dataclass(frozen=True)
class Timeouts:
    connect: float = 10.0
    write: float = 30.0
    pool: float = 10.0
    #: Longest silence between two pieces of the response (and before the status line).
    idle: float = 60.0


def parse_retry_after(headers: httpx.Headers, now: float) -> float | None:
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return float(ms) / 1000.0
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return when.timestamp() - now


def render_body(config: ProviderConfig, request: LLMRequest) -> bytes:
    """The exact request body: a pure function of the config and the request."""
    body: dict[str, Any] = {"model": request.model or config.model, "messages": request.messages, "stream": True}
    if config.include_usage:
        body["stream_options"] = {"include_usage": True}
    if request.tools:
        body["tools"] = request.tools
    if request.temperature is not None:
        body["temperature"] = request.temperature
    max_tokens = request.max_tokens if request.max_tokens is not None else config.max_tokens
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    body.update(config.thinking_on if request.thinking else config.thinking_off)
    return _encode(body)


class OpenAILLM:
    """One client per provider: a pooled ``httpx.AsyncClient``. Close it (``aclose`` or
    ``async with``) when done."""

    def __init__(
        self,
        config: ProviderConfig,
        *,
        client: httpx.AsyncClient | None = None,
        retry: RetryPolicy | None = None,
        timeouts: Timeouts | None = None,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        random: Callable[[], float] = random.random,
        now: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.provider = config.name
        self.round_trip_reasoning = config.round_trip_reasoning
        self.retry = retry or RetryPolicy()
        self.timeouts = timeouts or Timeouts()
        t = self.timeouts
        self._owns_client = client is None
        self._client = client or httpx.AsyncClient(
            timeout=httpx.Timeout(connect=t.connect, read=t.idle, write=t.write, pool=t.pool),
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
        )
        self._sleep = sleep
        self._random = random
        self._now = now

    @property
    def model(self) -> str:
        """The model a body names when the request names none (the engine records it)."""
        return self.config.model

    def __repr__(self) -> str:
        return f"OpenAILLM(provider={self.provider!r}, url={self.config.url!r}, model={self.config.model!r})"

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()

    async def __aenter__(self) -> OpenAILLM:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    # -- the port -------------------------------------------------------------------------------

    def render(self, request: LLMRequest) -> bytes:
        return render_body(self.config, request)

    async def stream(self, body: bytes) -> AsyncIterator[LLMChunk]:
        batches = self.stream_batches(body)
        try:
            async for chunks in batches:
                for chunk in chunks:
                    yield chunk
        finally:
            await batches.aclose()  # at once, not when the collector gets to it

    async def stream_batches(self, body: bytes) -> AsyncIterator[list[LLMChunk]]:
        """``stream``'s chunks, as the lists of chunks of each piece of the body: one generator
        hop per piece, not per chunk (the engine reads these; see ``engine/_llm.py``)."""
        response = await self._open(body)
        try:
            ctype = response.headers.get("content-type", "")
            if "json" in ctype:
                yield await self._json_answer(response)
                return
            async for chunks in self._events(response, ctype):
                yield chunks
        finally:
            # Also on aclose()/cancellation: the connection goes back or is dropped, never leaked.
            await response.aclose()

    # -- sending, with retries before the first byte --------------------------------------------

    def _mask(self, text: str) -> str:
        """The API key out of provider text. Runs before any text is cut (``clip``), so a key the
        cut would split is already gone; ``_error`` runs it again over the whole message."""
        key = self.config.api_key()
        return text.replace(key, "***") if key and key in text else text

    def _error(self, message: str, *, status: int | None = None, retries: int = 0) -> LLMError:
        message = self._mask(message)
        return LLMError(f"{self.provider}: {message}", provider=self.provider, status=status, retries=retries)

    async def _open(self, body: bytes) -> httpx.Response:
        cfg = self.config
        headers = {
            "Content-Type": "application/json",
            "Accept": "text/event-stream, application/json",
            "Cache-Control": "no-store",
            **cfg.headers,
            **cfg.auth_headers(),
        }
        policy = self.retry
        attempts = max(1, policy.attempts)
        for attempt in range(1, attempts + 1):
            last = attempt == attempts
            tried = f" after {attempt} attempts" if attempt > 1 else ""
            request = self._client.build_request("POST", cfg.url, content=body, headers=headers, params=cfg.query)
            try:
                response = await self._client.send(request, stream=True)
            except httpx.TimeoutException as exc:
                if last:
                    raise self._error(
                        f"no answer from {cfg.url}{tried}: {type(exc).__name__} (timeout)", retries=attempt - 1
                    ) from None
                await self._sleep(policy.delay(attempt, None, self._random()))
                continue
            except httpx.TransportError as exc:
                if last:
                    raise self._error(
                        f"cannot reach {cfg.url}{tried}: {type(exc).__name__}: {exc}", retries=attempt - 1
                    ) from None
                await self._sleep(policy.delay(attempt, None, self._random()))
                continue
            status = response.status_code
            if status < 300:
                return response
            try:
                text = body_error_text(await _read_limited(response, MAX_ERROR_BODY), self._mask)
            except httpx.HTTPError as exc:
                text = f"(the error body could not be read: {type(exc).__name__})"
            finally:
                await response.aclose()
            if status in RETRY_STATUSES and not last:
                wait = policy.delay(attempt, parse_retry_after(response.headers, self._now()), self._random())
                await self._sleep(wait)
                continue
            raise self._error(f"HTTP {status}{tried}: {text}", status=status, retries=attempt - 1)
        raise AssertionError("unreachable: the last attempt returns or raises")

    # -- reading --------------------------------------------------------------------------------

    async def _json_answer(self, response: httpx.Response) -> list[LLMChunk]:
        try:
            async with asyncio.timeout(self.timeouts.idle * 4):
                raw = await _read_limited(response, MAX_JSON_BODY)
        except (httpx.HTTPError, TimeoutError) as exc:
            raise self._error(
                f"HTTP {response.status_code}: the JSON answer could not be read: {type(exc).__name__}",
                status=response.status_code,
            ) from None
        status = response.status_code
        try:
            chunks = StreamNormalizer(self._mask).completion(raw)
        except MalformedStream as exc:
            raise self._error(f"HTTP {status}: {exc}", status=status) from None
        for i, chunk in enumerate(chunks):
            if type(chunk) is ErrorChunk:
                # A 2xx JSON body that is an error (some gateways): the same message as a 4xx one.
                chunks[i] = ErrorChunk(str(self._error(f"HTTP {status}: {chunk.message}")))
        return chunks

    def _chunks(self, norm: StreamNormalizer, name: str, data: str | bytes, status: int) -> list[LLMChunk]:
        try:
            chunks = norm.event(name, data)
        except MalformedStream as exc:
            raise self._error(f"HTTP {status}: {exc}", status=status) from None
        return self._errors_named(norm, chunks, status)

    def _errors_named(self, norm: StreamNormalizer, chunks: list[LLMChunk], status: int) -> list[LLMChunk]:
        """Each error chunk's message as an ``LLMError`` names it (provider, status, where)."""
        for i, chunk in enumerate(chunks):
            if type(chunk) is ErrorChunk:
                where = f"error inside the stream after {norm.events} events"
                chunks[i] = ErrorChunk(str(self._error(f"HTTP {status}: {where}: {chunk.message}")))
        return chunks

    async def _events(self, response: httpx.Response, ctype: str) -> AsyncIterator[list[LLMChunk]]:
        status = response.status_code
        norm = StreamNormalizer(self._mask)
        messages = norm.messages
        reader = SseEvents()
        feed = reader.feed_messages
        idle = self.timeouts.idle
        # Bytes, not text: the wire reader cuts lines in bytes and the JSON is decoded from them
        # (no incremental UTF-8 decoding of the body; bench/parse_throughput.py).
        text_pieces = response.aiter_bytes()
        try:
            while True:
                try:
                    async with asyncio.timeout(idle):
                        text = await anext(text_pieces)
                except StopAsyncIteration:
                    break
                except TimeoutError:
                    raise self._error(
                        f"HTTP {status}: no data for {idle:g} s after {norm.events} events (idle timeout); "
                        "the output so far is kept",
                        status=status,
                    ) from None
                except httpx.HTTPError as exc:
                    raise self._error(
                        f"HTTP {status}: connection lost mid-stream after {norm.events} events "
                        f"({type(exc).__name__}: {exc or 'closed by the server'})",
                        status=status,
                    ) from None
                out: list[LLMChunk] = []
                datas, events = feed(text)
                try:
                    i, n = 0, len(datas)
                    while i < n:  # the fast path: plain message events (``_wire.feed_messages``)
                        i = messages(datas, i, out)
                        if i < n:  # one that needs ``event`` ([DONE], an error, malformed data)
                            out += self._chunks(norm, "message", datas[i], status)
                            i += 1
                            if norm.done:
                                break
                    for name, data in events:  # a piece that is not all plain events
                        out += self._chunks(norm, name, data, status)
                        if norm.done:
                            break
                finally:
                    if out:  # on a malformed event too: the chunks before it are the output so far
                        yield out
                if norm.done:
                    return
            out = []
            try:
                for name, data in reader.close_bytes():
                    out += self._chunks(norm, name, data, status)
                    if norm.done:
                        break
            finally:
                if out:
                    yield out
            if norm.done:
                return
            if not norm.done and not norm.finished:
                if "event-stream" not in ctype:
                    raise self._error(
                        f"HTTP {status}: the server answered {ctype or 'without a content type'!r}, not an event "
                        f"stream ({norm.events} events, no finish reason): is the base URL right?",
                        status=status,
                    )
                raise self._error(
                    f"HTTP {status}: the stream ended after {norm.events} events without a finish reason or "
                    "[DONE]: the connection was closed early",
                    status=status,
                )
        finally:
            await text_pieces.aclose()


async def _read_limited(response: httpx.Response, limit: int) -> bytes:
    parts: list[bytes] = []
    size = 0
    async for part in response.aiter_bytes():
        parts.append(part)
        size += len(part)
        if size >= limit:
            break
    return b"".join(parts)[:limit]


def describe(config: ProviderConfig) -> str:
    """A one-line, secret-free description for CLIs."""
    return clip(f"{config.name} {config.url} model={config.model or '?'}", 200)
