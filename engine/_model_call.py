"""``ModelCall``: reading one call to the model.

The model's stream is read by a producer task into a bounded queue (``_Pipe``), so reading the
network and committing to the database overlap, and a model that stalls does not hold a batch
back longer than the group commit's deadline.

The reader turns chunks into events (text and reasoning deltas, recorded through the group
commit), assembles the tool-call fragments, and yields each batch as it commits.
``ModelCall.outcome`` (the tool calls, the finish reason, the usage) is there once it has ended.

A cancel of the turn (``CancelWatch``) puts a stop marker in the pipe: the reader, waiting or
not, takes it after the chunks already read and raises ``TurnFailure("cancelled")``; what was
recorded stays. No check on the per-chunk path: the marker is one more item.

The turn's ``OutputBudget`` bounds what the model may write in one turn, over all its iterations
(bytes of text, reasoning and tool-call arguments; text and reasoning deltas): the delta that
would pass a limit is not recorded and the call raises ``TurnFailure("too_large")``, so a turn's
stored output never exceeds the limit (a call whose arguments pass it is not recorded at all).
Two integer subtractions and a comparison per delta, on locals.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

import msgspec

from ._cancel import CancelWatch
from ._commit import GroupCommit
from ._errors import LLMError
from ._events import ReasoningDelta, Recorded, TextDelta, ToolCall
from ._failure import TurnFailure
from ._llm import LLM, ErrorChunk, FinishChunk, ReasoningChunk, TextChunk, ToolCallChunk, UsageChunk

_END = object()
#: Put in the pipe when the turn is cancelled.
_STOP = object()


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


def utf8_size(text: str) -> int:
    """The UTF-8 size of ``text``; an ASCII string (``isascii`` is O(1)) is not encoded."""
    return len(text) if text.isascii() else len(text.encode())


class OutputBudget:
    """What the model may still write in this turn: bytes (UTF-8) of text, reasoning and tool-call
    arguments, and text and reasoning deltas."""

    __slots__ = ("bytes_left", "deltas_left", "max_bytes", "max_deltas")

    def __init__(self, max_bytes: int, max_deltas: int) -> None:
        self.max_bytes = max_bytes
        self.max_deltas = max_deltas
        self.bytes_left = max_bytes
        self.deltas_left = max_deltas

    def exceeded(self, deltas_left: int) -> TurnFailure:
        """The failure of a turn whose next delta does not fit (``deltas_left`` below zero: the
        deltas' limit, otherwise the bytes')."""
        if deltas_left < 0:
            what = f"{self.max_deltas:,} text and reasoning deltas (max_turn_deltas)"
        else:
            what = f"{self.max_bytes:,} bytes of text, reasoning and tool-call arguments (max_turn_bytes)"
        return TurnFailure(
            "too_large",
            f"the model's output reached the limit of one turn, {what}: the turn was stopped there, "
            "its output so far is kept",
        )


class CallOutcome(msgspec.Struct, frozen=True):
    """How one model call ended."""

    #: The tool calls it asked for, in index order; empty when it answered.
    calls: list[ToolCall]
    finish_reason: str | None
    usage: UsageChunk | None


class ModelCall:
    """One call to the model, during iteration ``iteration`` of a turn: ``batches()`` streams it,
    then ``outcome`` says how it ended."""

    def __init__(
        self,
        llm: LLM,
        body: bytes,
        iteration: int,
        commit: GroupCommit,
        queue_size: int,
        watch: CancelWatch,
        budget: OutputBudget,
    ) -> None:
        self.llm = llm
        self.body = body
        self.iteration = iteration
        self.commit = commit
        self.queue_size = queue_size
        self.watch = watch
        self.budget = budget
        self._outcome: CallOutcome | None = None

    @property
    def outcome(self) -> CallOutcome:
        """How the call ended; there once ``batches()`` is exhausted."""
        assert self._outcome is not None, "the model call has not ended"
        return self._outcome

    async def batches(self) -> AsyncIterator[list[Recorded]]:
        """Yields lists of committed events while the model streams, the last one when the
        stream has ended and everything it recorded has committed."""
        pipe = _Pipe(self.queue_size)
        producer = asyncio.ensure_future(self._produce(pipe))
        items = pipe.items

        def stop() -> None:
            items.append(_STOP)
            pipe.wake()

        self.watch.on_request(stop)
        iteration = self.iteration
        calls: dict[int, _Call] = {}
        finish: str | None = None
        usage: UsageChunk | None = None
        commit = self.commit
        record = commit.record
        flush_events = commit.flush_events
        loop_time = commit.loop.time
        budget = self.budget
        bytes_left, deltas_left = budget.bytes_left, budget.deltas_left
        try:
            while True:
                if not items:
                    if commit.inflight is not None:
                        # Nothing to read: show what has committed before waiting for more.
                        yield await commit.finish()
                        continue
                    if commit.buffer:
                        timeout = commit.deadline - loop_time()
                        if timeout <= 0:
                            yield await commit.rotate()
                            continue
                        try:
                            # Once per delta of a model slower than the flush: no task per wait
                            # (``wait_for`` makes one), only a timer.
                            async with asyncio.timeout(timeout):
                                await pipe.readable()
                        except TimeoutError:
                            yield await commit.rotate()
                            continue
                    else:
                        await pipe.readable()
                item = pipe.get()
                cls = type(item)
                if cls is TextChunk or cls is ReasoningChunk:
                    text = item.text
                    if text:
                        deltas_left -= 1
                        # utf8_size, inlined: this runs once per delta.
                        bytes_left -= len(text) if text.isascii() else len(text.encode())
                        if bytes_left < 0 or deltas_left < 0:
                            raise budget.exceeded(deltas_left)
                        record(TextDelta(iteration, text) if cls is TextChunk else ReasoningDelta(iteration, text))
                elif cls is ToolCallChunk:
                    args = item.arguments
                    if args:  # arguments count as output too (they are recorded once assembled)
                        bytes_left -= len(args) if args.isascii() else len(args.encode())
                        if bytes_left < 0:
                            raise budget.exceeded(deltas_left)
                    _merge_call(calls, item)
                elif cls is UsageChunk:
                    usage = item
                elif cls is FinishChunk:
                    finish = item.reason
                elif cls is ErrorChunk:
                    raise TurnFailure("llm_error", item.message)
                elif item is _END:
                    break
                elif item is _STOP:
                    raise self.watch.failure()
                elif isinstance(item, LLMError):
                    raise TurnFailure("llm_error", str(item))
                elif isinstance(item, BaseException):
                    raise TurnFailure("internal", f"the model adapter raised {type(item).__name__}: {item}")
                if len(commit.buffer) >= flush_events or (commit.buffer and loop_time() >= commit.deadline):
                    yield await commit.rotate()
            yield await commit.finish()
        finally:
            budget.bytes_left, budget.deltas_left = bytes_left, deltas_left
            self.watch.on_request(None)
            if not producer.done():
                producer.cancel()
            await asyncio.gather(producer, return_exceptions=True)
        self._outcome = CallOutcome(_finish_calls(calls, iteration), finish, usage)

    async def _produce(self, pipe: _Pipe) -> None:
        batches = getattr(self.llm, "stream_batches", None)  # optional (engine/_llm.py)
        stream = batches(self.body) if batches is not None else self.llm.stream(self.body)
        items = pipe.items
        limit = pipe.maxsize
        wake = pipe.wake
        try:
            if batches is not None:
                async for batch in stream:
                    if len(items) < limit:  # a list at once (one piece: bounded by its size)
                        items.extend(batch)
                        wake()
                    else:
                        for chunk in batch:
                            await pipe.put(chunk)
            else:
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


class _Call:
    """One tool call being assembled from its fragments."""

    __slots__ = ("args", "id", "name")

    def __init__(self) -> None:
        self.id = ""
        self.name = ""
        self.args: list[str] = []


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
