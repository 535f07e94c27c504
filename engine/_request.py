"""What is sent to the model: the messages of the next request (the seed's ``build_messages``).

Prior turns give the system prompt, then each finished turn's user text and assistant text (tool
traffic of earlier turns is not re-sent, as in the seed). A failed turn is sent too: the user's
words, and the partial answer if there was one; an empty answer is left out so the model never
sees an empty assistant message. The current user message is sent as plain text (the seed sent a
JSON wrapper ``{"text": ..., "attachments": []}`` for the current message only, and plain text for
earlier ones; one form for both is less surprising to a model).

The assistant text of a turn is the text of its last iteration: the same words the message rows
keep as ``text``. ``PriorTurns`` folds them from the events; a row store hands the engine the same
messages from its rows (``Messages.history``) without reading the log back. A test pins the two.

Within a turn, ``TurnHistory`` grows with the events: after an iteration that asked for tools it
adds the assistant message with its ``tool_calls`` (and, for providers that demand it, the
``reasoning_content`` it streamed) and one ``tool`` message per result, in call order. The request
is therefore a pure function of the log: an auditor who folds the same events gets the same bytes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from ._events import (
    IterationStarted,
    ReasoningDelta,
    Recorded,
    TextDelta,
    ToolCallsRequested,
    ToolResultRecorded,
    TurnFailed,
    TurnFinalized,
    TurnStarted,
)
from ._llm import LLMRequest
from ._log import EventLog


class PriorMessage(msgspec.Struct, frozen=True):
    """One message of an earlier turn, as the next request sends it."""

    role: str
    text: str


class PriorTurns:
    """Folds a conversation's events into the messages its next request repeats."""

    __slots__ = ("_text", "_user", "messages")

    def __init__(self) -> None:
        self.messages: list[PriorMessage] = []
        self._user: str | None = None
        self._text: list[str] = []

    def apply(self, ev: object) -> None:
        cls = type(ev)
        if cls is TextDelta:
            self._text.append(ev.text)  # type: ignore[attr-defined]
        elif cls is IterationStarted:
            self._text = []
        elif cls is TurnStarted:
            self._user = ev.user_message  # type: ignore[attr-defined]
            self._text = []
        elif (cls is TurnFinalized or cls is TurnFailed) and self._user is not None:
            self.messages.append(PriorMessage("user", self._user))
            text = "".join(self._text)
            if text:
                self.messages.append(PriorMessage("assistant", text))
            self._user = None


def prior_messages(system_prompt: str | None, prior: Sequence[PriorMessage]) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    if system_prompt:
        messages.append({"role": "system", "content": system_prompt})
    for m in prior:
        messages.append({"role": m.role, "content": m.text})
    return messages


class TurnHistory:
    __slots__ = ("_reasoning", "_text", "messages", "round_trip_reasoning", "started")

    def __init__(self, prior: Sequence[PriorMessage], started: TurnStarted, *, round_trip_reasoning: bool) -> None:
        self.started = started
        self.round_trip_reasoning = round_trip_reasoning
        self.messages = prior_messages(started.system_prompt, prior)
        self.messages.append({"role": "user", "content": started.user_message})
        self._text: list[str] = []
        self._reasoning: list[str] = []

    def apply(self, ev: object) -> None:
        if type(ev) is TextDelta:
            self._text.append(ev.text)
        elif type(ev) is ReasoningDelta:
            self._reasoning.append(ev.text)
        elif type(ev) is IterationStarted:
            self._text = []
            self._reasoning = []
        elif type(ev) is ToolCallsRequested:
            msg: dict[str, Any] = {
                "role": "assistant",
                "content": "".join(self._text),
                "tool_calls": [
                    {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                    for c in ev.calls
                ],
            }
            if self.round_trip_reasoning and self._reasoning:
                msg["reasoning_content"] = "".join(self._reasoning)
            self.messages.append(msg)
        elif type(ev) is ToolResultRecorded:
            self.messages.append({"role": "tool", "tool_call_id": ev.call_id, "content": ev.content})

    def request(self) -> LLMRequest:
        s = self.started
        return LLMRequest(
            model=s.model,
            messages=list(self.messages),
            tools=s.tools,
            temperature=s.temperature,
            max_tokens=s.max_tokens,
            thinking=s.thinking,
        )


class _NoSink:
    __slots__ = ()

    async def committed(self, records: Sequence[Recorded]) -> None:
        return None


class LogHistory:
    """The ``Messages`` port without rows: the history is folded from the log at each turn's start
    (O(conversation) per turn; a row store answers from its rows instead)."""

    __slots__ = ()

    async def history(self, log: EventLog, conversation_id: str, head: int) -> list[PriorMessage]:
        fold = PriorTurns()
        async for rec in log.iter_stream(conversation_id):
            if rec.version > head:
                break
            fold.apply(rec.event)
        return fold.messages

    def sink(self, conversation_id: str, version: int) -> _NoSink:
        return _NoSink()

    async def catch_up(self, log: EventLog, conversation_id: str) -> int:
        return 0
