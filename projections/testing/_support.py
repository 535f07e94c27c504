"""The harness of the row-store contract: the hook a store's test class fills in, the fixture
that opens and closes it, a scripted model and the turns the port tests run."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import NamedTuple

import msgspec
import pytest
import pytest_asyncio
from turnlog.engine import EventLog, LLMChunk, LLMRequest, Messages, ToolRegistry, TurnEngine, TurnRequest
from turnlog.projections import MessageRow, MessageStore

CREATED_AT = "2026-01-01T00:00:00.000000Z"


def row(
    id: str,
    conversation: str,
    seq: int,
    role: str = "user",
    *,
    text: str = "hi",
    status: str = "finalized",
    token_count: int | None = None,
    usage: str | None = None,
) -> MessageRow:
    content = msgspec.json.encode({"text": text}).decode()
    return MessageRow(id, conversation, f"turn-{seq}", seq, role, content, token_count, usage, status, CREATED_AT)


class ScriptLLM:
    """A model that streams the chunks it was given, one list per call."""

    provider = "contract"
    round_trip_reasoning = False

    def __init__(self, answers: Sequence[Sequence[LLMChunk]]) -> None:
        self._answers = list(answers)
        self.calls = 0

    def render(self, request: LLMRequest) -> bytes:
        return msgspec.json.encode(request)

    async def stream(self, body: bytes) -> AsyncIterator[LLMChunk]:
        answer = self._answers[self.calls]
        self.calls += 1
        for chunk in answer:
            yield chunk


def tools() -> ToolRegistry:
    registry = ToolRegistry(default_timeout=5.0)

    async def lookup(q: str) -> str:
        return f"found {q}"

    async def explode() -> str:
        raise RuntimeError("disk full")

    registry.register(lookup, parameters={"type": "object", "properties": {"q": {"type": "string"}}})
    registry.register(explode)
    return registry


async def run_turns(
    log: EventLog,
    messages: Messages | None,
    conversation: str | None,
    turns: Sequence[tuple[str, Sequence[Sequence[LLMChunk]]]],
    **request: object,
) -> str:
    """Run ``turns`` (user words, the model's answers) one after the other in a conversation (a
    new one when None), with ``messages`` as the engine's row port (None: no rows, as a process
    that died before writing them). Returns the conversation id."""
    if conversation is None:
        conversation = await TurnEngine(log, ScriptLLM([])).create_conversation(system_prompt="Be brief.", model="m")
    for user, answers in turns:
        # Fresh random ids per engine (UuidIds): turns never share a message id.
        llm = ScriptLLM(answers)
        engine = TurnEngine(log, llm, tools=tools(), messages=messages)
        req = TurnRequest(user, enabled_tools=["lookup", "explode"], **request)  # type: ignore[arg-type]
        async for _ in engine.run_turn(conversation, req):
            pass
        assert llm.calls == len(answers), f"turn {user!r} asked the model {llm.calls} times, not {len(answers)}"
    return conversation


async def head(log: EventLog, conversation: str) -> int:
    last = await log.last(conversation)
    assert last is not None, f"no conversation {conversation!r} in the log"
    return last.version


class Opened(NamedTuple):
    """The test's event log and row store (the port methods read the one into the other)."""

    log: EventLog
    messages: MessageStore


@pytest.mark.asyncio(loop_scope="function")
class RowsHarness:
    """The hook (``open_rows``) and the fixture the contract's tests take: ``store``, the opened
    ``(log, messages)``. The log is closed after the test."""

    #: The test's own temporary directory (pytest's ``tmp_path``), for hooks that need a file.
    tmp_path: Path

    async def open_rows(self) -> tuple[EventLog, MessageStore]:
        """A fresh event log and an empty row store to test, as ``(log, messages)``. The rows may
        live beside the log (``turnlog.adapters.stores.open_store``) or anywhere else (an
        ``InMemoryEventLog`` is enough for the log). Override this."""
        raise NotImplementedError(f"{type(self).__name__} must define `async def open_rows(self)`")

    @pytest.fixture(autouse=True)
    def _contract_tmp_path(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path

    @pytest_asyncio.fixture(loop_scope="function")
    async def store(self) -> AsyncIterator[Opened]:
        log, messages = await self.open_rows()
        try:
            yield Opened(log, messages)
        finally:
            await log.close()
