"""The engine: runs one turn at a time per conversation, through ports.

``TurnEngine.run_turn`` is an async generator of committed events: it appends each event to the
log and yields it only after the append committed (durable before visible). Deltas are
group-committed: the buffer is flushed when it holds ``flush_events`` events or when its oldest
event has waited ``flush_ms``, and always before a side effect (calling the model, running
tools) so the log shows what was attempted even if the process dies during it.

The model's stream is read by a producer task into a bounded queue, so reading the network and
committing to the database overlap, and a model that stalls does not hold a batch back longer
than ``flush_ms``.

Nothing escapes a started turn: a provider error, an unexpected exception, or the consumer
closing the generator (``aclose``) or being cancelled ends the turn with a committed
``TurnFailed`` that keeps everything streamed before it.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

import msgspec

from ._errors import (
    ConcurrencyError,
    ConversationExists,
    ConversationNotFound,
    IntegrityError,
    LLMError,
    TurnInProgress,
)
from ._events import (
    ConversationCreated,
    Event,
    IterationStarted,
    NewEvent,
    ReasoningDelta,
    Recorded,
    TextDelta,
    ToolCall,
    ToolCallsRequested,
    ToolCallStarted,
    ToolResultRecorded,
    TurnFailed,
    TurnFinalized,
    TurnStarted,
    Usage,
    UsageRecorded,
)
from ._llm import LLM, ErrorChunk, FinishChunk, ReasoningChunk, TextChunk, ToolCallChunk, UsageChunk
from ._log import EventLog
from ._machine import LIVE_STATES, ConversationFold, Turn
from ._ports import Clock, CommitSink, Ids, Messages, SystemClock, UuidIds
from ._request import LogHistory, TurnHistory
from ._tools import ToolContext, ToolRegistry


class EngineConfig(msgspec.Struct, frozen=True):
    #: Group commit: flush when this many events are buffered...
    flush_events: int = 256
    #: ...or when the oldest buffered event has waited this long.
    flush_ms: float = 5.0
    #: Default cap on model calls per turn (the seed's MAX_ITERATIONS).
    max_iterations: int = 20
    #: Chunks the producer may read ahead of the engine.
    queue_size: int = 1024


class TurnRequest(msgspec.Struct, frozen=True):
    user_message: str
    #: Tool names to offer the model; None or empty offers none.
    enabled_tools: list[str] | None = None
    #: None: the conversation's setting.
    thinking: bool | None = None
    model: str | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    max_iterations: int | None = None
    permission_level: int = 1
    user_id: str | None = None
    username: str | None = None
    workspace: str | None = None


_END = object()


class _Pipe:
    """A bounded single-producer, single-consumer FIFO between the model's stream and the
    engine: a deque and two events, about three times cheaper per chunk than asyncio.Queue."""

    __slots__ = ("_readable", "_writable", "items", "maxsize")

    def __init__(self, maxsize: int) -> None:
        self.items: deque[Any] = deque()
        self.maxsize = maxsize
        self._readable = asyncio.Event()
        self._writable = asyncio.Event()

    def wake(self) -> None:
        self._readable.set()

    async def put(self, item: Any) -> None:
        while len(self.items) >= self.maxsize:
            self._writable.clear()
            await self._writable.wait()
        self.items.append(item)
        self._readable.set()

    async def readable(self) -> None:
        while not self.items:
            self._readable.clear()
            await self._readable.wait()

    def get(self) -> Any:
        item = self.items.popleft()
        if len(self.items) < self.maxsize:
            self._writable.set()
        return item


class _Failed(Exception):
    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        self.message = message
        super().__init__(message)


class _Call:
    __slots__ = ("args", "id", "name")

    def __init__(self) -> None:
        self.id = ""
        self.name = ""
        self.args: list[str] = []


class _TurnRun:
    """The mutable state of one running turn. Only the engine touches it."""

    def __init__(
        self,
        engine: TurnEngine,
        conversation_id: str,
        turn_id: str,
        fold: ConversationFold,
        history: TurnHistory,
        rows: CommitSink,
        expected_version: int,
    ) -> None:
        self.engine = engine
        self.log = engine.log
        self.conv = conversation_id
        self.turn_id = turn_id
        self.fold = fold
        self.history = history
        self.rows = rows
        self.expected = expected_version
        self.buffer: list[NewEvent] = []
        self.deadline = 0.0
        self.inflight: asyncio.Future[list[Recorded]] | None = None
        self.inflight_batch: list[NewEvent] = []
        self.usage = Usage()
        self.iteration = 0
        cfg = engine.config
        self.flush_events = cfg.flush_events
        self.flush_s = cfg.flush_ms / 1000.0
        self.loop = asyncio.get_running_loop()
        self.engine_request: TurnRequest = TurnRequest("")
        self.tool_tasks: list[Any] = []

    @property
    def turn(self) -> Turn:
        assert self.fold.turn is not None
        return self.fold.turn

    # -- recording ----------------------------------------------------------------------------

    def record(self, ev: Event) -> None:
        """Check the event against the machine, then buffer it for the next group commit."""
        self.fold.check(ev, turn_id=self.turn_id, stream_id=self.conv, version=self.expected + len(self.buffer) + 1)
        self.history.apply(ev)
        if not self.buffer:
            self.deadline = self.loop.time() + self.flush_s
        self.buffer.append(NewEvent(ev, self.turn_id))

    def _start(self) -> None:
        """Hand the buffer to the log without waiting for it. At most one batch is in flight, so
        batches commit in order; the engine keeps preparing the next batch meanwhile."""
        batch = self.buffer
        self.buffer = []
        self.inflight_batch = batch
        self.inflight = asyncio.ensure_future(
            self.log.append(self.conv, batch, self.expected, recorded_at=self.engine.clock.now())
        )
        self.expected += len(batch)

    async def _finish(self) -> list[Recorded]:
        """Wait for the batch in flight; returns its committed events (now safe to show)."""
        fut = self.inflight
        if fut is None:
            return []
        # Shielded: a cancelled consumer must not leave us unsure whether the batch committed.
        recs = await asyncio.shield(fut)
        self.inflight = None
        self.inflight_batch = []
        # Rows before the frames: a client that sees `done` finds its message stored.
        await self.rows.committed(recs)
        return recs

    async def rotate(self) -> list[Recorded]:
        """Pipelined group commit: collect the batch in flight, send the buffer."""
        recs = await self._finish()
        if self.buffer:
            self._start()
        return recs

    async def flush(self) -> list[Recorded]:
        """A barrier: everything recorded so far is committed when this returns."""
        recs = await self._finish()
        if self.buffer:
            self._start()
            recs = recs + await self._finish()
        return recs

    # -- the turn -------------------------------------------------------------------------------

    async def iterate(self) -> AsyncIterator[Recorded]:
        started = self.history.started
        for iteration in range(1, started.max_iterations + 1):
            self.iteration = iteration
            request = self.history.request()
            body = self.engine.llm.render(request)
            self.record(IterationStarted(iteration, hashlib.sha256(body).hexdigest()))
            for rec in await self.flush():
                yield rec
            calls, finish, usage = None, None, None
            async for item in self._stream(body):
                if type(item) is list:
                    for rec in item:
                        yield rec
                else:
                    calls, finish, usage = item
            if usage is not None:
                self.usage = self.usage + Usage(usage.prompt_tokens, usage.completion_tokens, usage.total_tokens)
                self.record(
                    UsageRecorded(
                        iteration, usage.prompt_tokens, usage.completion_tokens, usage.total_tokens, usage.raw
                    )
                )
            if not calls:
                self.record(
                    TurnFinalized(
                        started.assistant_message_id, self.usage.completion_tokens, self.usage, finish or "stop"
                    )
                )
                for rec in await self.flush():
                    yield rec
                return
            self.record(ToolCallsRequested(iteration, calls, finish or "tool_calls"))
            if iteration >= started.max_iterations:
                raise _Failed("max_iterations", f"Exceeded maximum tool call iterations ({started.max_iterations})")
            for call in calls:
                self.record(ToolCallStarted(iteration, call.id, call.name, call.arguments))
            for rec in await self.flush():
                yield rec
            async for rec in self._run_tools(calls):
                yield rec
        raise AssertionError("unreachable: the last iteration either finalizes or fails")

    async def _stream(self, body: bytes) -> AsyncIterator[Any]:
        """Yields lists of committed events while the model streams, then one final
        (calls, finish_reason, usage) tuple."""
        pipe = _Pipe(self.engine.config.queue_size)
        producer = asyncio.ensure_future(self._produce(body, pipe))
        items = pipe.items
        iteration = self.iteration
        calls: dict[int, _Call] = {}
        finish: str | None = None
        usage: UsageChunk | None = None
        record = self.record
        flush_events = self.flush_events
        loop_time = self.loop.time
        try:
            while True:
                if not items:
                    if self.inflight is not None:
                        # Nothing to read: show what has committed before waiting for more.
                        yield await self._finish()
                        continue
                    if self.buffer:
                        timeout = self.deadline - loop_time()
                        if timeout <= 0:
                            yield await self.rotate()
                            continue
                        try:
                            await asyncio.wait_for(pipe.readable(), timeout)
                        except TimeoutError:
                            yield await self.rotate()
                            continue
                    else:
                        await pipe.readable()
                item = pipe.get()
                cls = type(item)
                if cls is TextChunk:
                    if item.text:
                        record(TextDelta(iteration, item.text))
                elif cls is ReasoningChunk:
                    if item.text:
                        record(ReasoningDelta(iteration, item.text))
                elif cls is ToolCallChunk:
                    _merge_call(calls, item)
                elif cls is UsageChunk:
                    usage = item
                elif cls is FinishChunk:
                    finish = item.reason
                elif cls is ErrorChunk:
                    raise _Failed("llm_error", item.message)
                elif item is _END:
                    break
                elif isinstance(item, LLMError):
                    raise _Failed("llm_error", str(item))
                elif isinstance(item, BaseException):
                    raise _Failed("internal", f"the model adapter raised {type(item).__name__}: {item}")
                if len(self.buffer) >= flush_events or (self.buffer and loop_time() >= self.deadline):
                    yield await self.rotate()
            yield await self._finish()
        finally:
            if not producer.done():
                producer.cancel()
            await asyncio.gather(producer, return_exceptions=True)
        yield (_finish_calls(calls, iteration) or None, finish, usage)

    async def _produce(self, body: bytes, pipe: _Pipe) -> None:
        stream = self.engine.llm.stream(body)
        items = pipe.items
        limit = pipe.maxsize
        wake = pipe.wake
        try:
            async for chunk in stream:
                if len(items) < limit:
                    items.append(chunk)
                    wake()
                else:
                    await pipe.put(chunk)
            await pipe.put(_END)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            await pipe.put(exc)
        finally:
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                await aclose()

    async def _run_tools(self, calls: list[ToolCall]) -> AsyncIterator[Recorded]:
        started = self.history.started
        req = self.engine_request

        def context(call: ToolCall) -> ToolContext:
            return ToolContext(
                conversation_id=self.conv,
                turn_id=self.turn_id,
                call_id=call.id,
                permission_level=started.permission_level,
                user_id=req.user_id,
                username=req.username,
                workspace=req.workspace,
            )

        tasks = self.engine.tools.run_all(calls, context, self.engine.clock.monotonic)
        self.tool_tasks = tasks
        # Awaiting in call order records results in call order, each as soon as it and every
        # call before it are done.
        for task in tasks:
            result = await task
            self.record(
                ToolResultRecorded(
                    self.iteration, result.call_id, result.name, result.content, result.success, result.duration_ms
                )
            )
            for rec in await self.flush():
                yield rec
        self.tool_tasks = []

    async def fail(self, reason: str, message: str) -> list[Recorded]:
        """End the turn as failed, keeping everything recorded so far. Safe to call from any point,
        including after a cancelled flush."""
        for task in self.tool_tasks:
            task.cancel()  # type: ignore[attr-defined]
        committed: list[Recorded] = []
        if self.inflight is not None:
            batch = self.inflight_batch
            try:
                committed = await self._finish()
            except Exception:
                # The batch did not commit: keep it, and write it with the failure below.
                self.buffer = batch + self.buffer
                self.expected -= len(batch)
                self.inflight = None
                self.inflight_batch = []
        if self.turn.state not in LIVE_STATES:
            return committed
        self.record(TurnFailed(reason, message, self.iteration))
        return committed + await self.flush()


def _merge_call(calls: dict[int, _Call], chunk: ToolCallChunk) -> None:
    call = calls.get(chunk.index)
    if call is None:
        call = calls[chunk.index] = _Call()
    if chunk.id and not call.id:
        call.id = chunk.id
    name = chunk.name
    if name and name != call.name:
        # Providers that repeat the name in every fragment must not double it (a seed bug);
        # one that sends it cumulatively replaces it; one that splits it appends.
        call.name = name if (not call.name or name.startswith(call.name)) else call.name + name
    if chunk.arguments:
        call.args.append(chunk.arguments)


def _finish_calls(calls: dict[int, _Call], iteration: int) -> list[ToolCall]:
    out: list[ToolCall] = []
    seen: set[str] = set()
    for index in sorted(calls):
        c = calls[index]
        call_id = c.id or f"call_{iteration}_{index}"
        if call_id in seen:  # a provider that reuses ids: keep them unique within the request
            call_id = f"{call_id}_{index}"
        seen.add(call_id)
        out.append(ToolCall(call_id, c.name, "".join(c.args)))
    return out


class TurnEngine:
    """Runs turns. One engine serves many conversations; each conversation runs one turn at a time
    (enforced by the log's optimistic concurrency, so it holds across processes too)."""

    def __init__(
        self,
        log: EventLog,
        llm: LLM,
        *,
        tools: ToolRegistry | None = None,
        messages: Messages | None = None,
        clock: Clock | None = None,
        ids: Ids | None = None,
        config: EngineConfig | None = None,
    ) -> None:
        self.log = log
        self.llm = llm
        self.tools = tools or ToolRegistry()
        self.messages: Messages = messages if messages is not None else LogHistory()
        self.clock = clock or SystemClock()
        self.ids = ids or UuidIds()
        self.config = config or EngineConfig()

    async def create_conversation(
        self,
        conversation_id: str | None = None,
        *,
        system_prompt: str | None = None,
        model: str = "",
        temperature: float | None = None,
        max_tokens: int | None = None,
        thinking: bool = False,
        tenant: str = "",
        title: str = "",
    ) -> str:
        conv = conversation_id or self.ids.new("conv")
        created = ConversationCreated(
            system_prompt=system_prompt,
            provider=self.llm.provider,
            model=model,
            temperature=temperature,
            max_tokens=max_tokens,
            thinking=thinking,
            tenant=tenant,
            title=title,
        )
        try:
            await self.log.append(conv, [NewEvent(created)], 0, recorded_at=self.clock.now())
        except ConcurrencyError:
            raise ConversationExists(conv) from None
        return conv

    async def _begin(self, conv: str, req: TurnRequest) -> tuple[_TurnRun, list[Recorded]]:
        last = await self.log.last(conv)
        if last is None:
            raise ConversationNotFound(conv)
        if type(last.event) not in (ConversationCreated, TurnFinalized, TurnFailed):
            raise TurnInProgress(conv, last.turn_id)
        first = (await self.log.read(conv, 0, 1))[0]
        created = first.event
        if not isinstance(created, ConversationCreated):
            raise IntegrityError(conv, first.version, "the conversation does not start with ConversationCreated")
        prior = await self.messages.history(self.log, conv, last.version)

        fold = ConversationFold()
        fold.version, fold.last_hash, fold.created = last.version, last.hash, created
        turn_id = self.ids.new("turn")
        started = TurnStarted(
            user_message=req.user_message,
            user_message_id=self.ids.new("msg"),
            assistant_message_id=self.ids.new("msg"),
            provider=self.llm.provider,
            model=req.model or created.model,
            temperature=req.temperature if req.temperature is not None else created.temperature,
            max_tokens=req.max_tokens if req.max_tokens is not None else created.max_tokens,
            thinking=req.thinking if req.thinking is not None else created.thinking,
            tools=self.tools.specs(req.enabled_tools, req.permission_level),
            system_prompt=created.system_prompt,
            max_iterations=req.max_iterations or self.config.max_iterations,
            permission_level=req.permission_level,
        )
        history = TurnHistory(prior, started, round_trip_reasoning=self.llm.round_trip_reasoning)
        rows = self.messages.sink(conv, last.version)
        run = _TurnRun(self, conv, turn_id, fold, history, rows, last.version)
        run.engine_request = req
        run.record(started)
        try:
            recs = await run.flush()
        except ConcurrencyError:
            # Another writer (this process or another server) appended first: a turn started there.
            raise TurnInProgress(conv, "(started concurrently)") from None
        return run, recs

    async def run_turn(self, conversation_id: str, request: TurnRequest) -> AsyncIterator[Recorded]:
        """Run one turn, yielding each event once it is committed. Raises ``TurnRefused`` before
        anything is written if the turn cannot start; after that it never raises except
        ``LogError`` (the log itself is unreachable, so nothing could be recorded)."""
        run, first = await self._begin(conversation_id, request)
        for rec in first:
            yield rec
        try:
            async for rec in run.iterate():
                yield rec
        except _Failed as failure:
            for rec in await run.fail(failure.reason, failure.message):
                yield rec
        except GeneratorExit:
            await run.fail("cancelled", "the client stopped reading the turn")
            raise
        except asyncio.CancelledError:
            await run.fail("cancelled", "the turn was cancelled")
            raise
        except Exception as exc:
            # A bug, not bad input: still recorded, never escaping with the partial output lost.
            for rec in await run.fail("internal", f"internal error: {type(exc).__name__}: {exc}"):
                yield rec
