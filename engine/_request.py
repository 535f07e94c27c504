"""What is sent to the model: the messages of the next request (the seed's ``build_messages``).

**Earlier turns, in full** (issue 12; a turn records ``TurnStarted.history = "full"``): the
system prompt, then each ended turn as the model lived it: the user's words; for each iteration
that asked for tools, the assistant message with its text and ``tool_calls`` and one ``tool``
message per result (ids matching, results in the order recorded); then the last iteration's
answer. A call that never got a result (the turn failed or was cancelled first) is left out with
its absence: providers reject a call without its result, and an invented result would put words
in the log's mouth. An empty answer is left out (a model never sees an empty assistant message
without calls). Reasoning goes back only where the provider requires it (``LLM.round_trip_reasoning``,
DeepSeek's thinking mode: the reasoning of every assistant message that made tool calls, in this
turn and all later ones); a plain answer's reasoning never does.

Turns recorded before (``history = "text"``) repeated only the user's words and the last
iteration's text; ``PriorTurns`` keeps that fold too, so their requests rebuild exactly.

The current user message is sent as plain text. The assistant text of a turn is the text of its
last iteration: the same words the message rows keep as ``text``. ``PriorTurns`` folds the
messages from the events; a row store hands the engine the same messages from its rows
(``Messages.history``) without reading the log back. A contract test pins the two.

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
    ToolCall,
    ToolCallsRequested,
    ToolResultRecorded,
    TurnFailed,
    TurnFinalized,
    TurnStarted,
)
from ._llm import LLMRequest
from ._log import EventLog
from ._text import TextParts

#: ``TurnStarted.history`` of the turns this build starts.
FULL = "full"


class PriorMessage(msgspec.Struct, frozen=True):
    """One message of an earlier turn, as the next request sends it: ``user``, ``assistant``
    (its text, the tool calls it made that got a result, and the reasoning streamed before them)
    or ``tool`` (a result: ``text``, answering ``tool_call_id``)."""

    role: str
    text: str
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str = ""
    reasoning: str = ""


def drop_turns(prior: Sequence[PriorMessage], turns: int) -> list[PriorMessage]:
    """The messages without the ``turns`` oldest turns (a turn starts at its user message)."""
    if turns <= 0:
        return list(prior)
    seen = 0
    for i, m in enumerate(prior):
        if m.role == "user":
            if seen == turns:
                return list(prior[i:])
            seen += 1
    return []


class PriorTurns:
    """Folds a conversation's events into the messages its next request repeats: ``messages``
    (in full) and ``text_messages`` (the fold of turns recorded before issue 12)."""

    __slots__ = ("_answered", "_calls", "_reasoning", "_text", "_turn", "_user", "messages", "text_messages")

    def __init__(self, inherited: Sequence[PriorMessage] = ()) -> None:
        """``inherited``: a fork's parents' turns up to its fork point (``inherited_prior``)."""
        self.messages: list[PriorMessage] = list(inherited)
        self.text_messages: list[PriorMessage] = []
        self._user: str | None = None
        self._turn: list[PriorMessage] = []
        self._text = TextParts()
        self._reasoning = TextParts()
        #: The calls the current iteration asked for, and the results recorded (call id -> text).
        self._calls: list[ToolCall] = []
        self._answered: dict[str, str] = {}

    def _end_iteration(self) -> None:
        text = self._text.join()
        if self._calls:
            answered = tuple(c for c in self._calls if c.id in self._answered)
            if answered or text:
                reasoning = self._reasoning.join() if answered else ""
                self._turn.append(PriorMessage("assistant", text, answered, "", reasoning))
            self._turn.extend(PriorMessage("tool", content, (), call_id) for call_id, content in self._answered.items())
        elif text:
            self._turn.append(PriorMessage("assistant", text))
        self._calls = []
        self._answered = {}

    def apply(self, ev: object) -> None:
        cls = type(ev)
        if cls is TextDelta:
            self._text.add(ev.text)  # type: ignore[attr-defined]
        elif cls is ReasoningDelta:
            self._reasoning.add(ev.text)  # type: ignore[attr-defined]
        elif cls is IterationStarted:
            if self._calls:
                self._end_iteration()
            self._text = TextParts()
            self._reasoning = TextParts()
        elif cls is ToolCallsRequested:
            self._calls = list(ev.calls)  # type: ignore[attr-defined]
        elif cls is ToolResultRecorded:
            if any(c.id == ev.call_id for c in self._calls):  # type: ignore[attr-defined]
                self._answered[ev.call_id] = ev.content  # type: ignore[attr-defined]
        elif cls is TurnStarted:
            self._user = ev.user_message  # type: ignore[attr-defined]
            self._turn = [PriorMessage("user", self._user)]  # type: ignore[arg-type]
            self._text = TextParts()
            self._reasoning = TextParts()
            self._calls = []
            self._answered = {}
        elif (cls is TurnFinalized or cls is TurnFailed) and self._user is not None:
            text = self._text.join()
            self._end_iteration()
            self.messages.extend(self._turn)
            self.text_messages.append(PriorMessage("user", self._user))
            if text:
                self.text_messages.append(PriorMessage("assistant", text))
            self._user = None
            self._turn = []
            # The turn is over: its parts go (the next turn or iteration starts from none).
            self._text = TextParts()
            self._reasoning = TextParts()

    def for_turn(self, started: TurnStarted) -> list[PriorMessage]:
        """What ``started``'s requests repeated, as it recorded: in full or as text, without the
        turns the trim left out."""
        prior = self.messages if started.history == FULL else self.text_messages
        return drop_turns(prior, started.history_dropped)


def _call(c: ToolCall) -> dict[str, Any]:
    return {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}


def prior_messages(
    system_prompt: str | None, prior: Sequence[PriorMessage], *, round_trip_reasoning: bool = False
) -> list[dict[str, Any]]:
    """The request's messages for the system prompt and these earlier messages."""
    messages: list[dict[str, Any]] = []
    if system_prompt:
        messages.append({"role": "system", "content": system_prompt})
    for m in prior:
        if m.role == "tool":
            messages.append({"role": "tool", "tool_call_id": m.tool_call_id, "content": m.text})
        elif m.tool_calls:
            msg: dict[str, Any] = {
                "role": "assistant",
                "content": m.text,
                "tool_calls": [_call(c) for c in m.tool_calls],
            }
            if round_trip_reasoning and m.reasoning:
                msg["reasoning_content"] = m.reasoning
            messages.append(msg)
        else:
            messages.append({"role": m.role, "content": m.text})
    return messages


class TurnHistory:
    __slots__ = ("_reasoning", "_text", "messages", "round_trip_reasoning", "started")

    def __init__(self, prior: Sequence[PriorMessage], started: TurnStarted, *, round_trip_reasoning: bool) -> None:
        self.started = started
        self.round_trip_reasoning = round_trip_reasoning
        self.messages = prior_messages(started.system_prompt, prior, round_trip_reasoning=round_trip_reasoning)
        self.messages.append({"role": "user", "content": started.user_message})
        self._text = TextParts()
        self._reasoning = TextParts()

    def apply(self, ev: object) -> None:
        if type(ev) is TextDelta:
            self._text.add(ev.text)
        elif type(ev) is ReasoningDelta:
            self._reasoning.add(ev.text)
        elif type(ev) is IterationStarted:
            self._text = TextParts()
            self._reasoning = TextParts()
        elif type(ev) is ToolCallsRequested:
            msg: dict[str, Any] = {
                "role": "assistant",
                "content": self._text.join(),
                "tool_calls": [_call(c) for c in ev.calls],
            }
            if self.round_trip_reasoning and self._reasoning:
                msg["reasoning_content"] = self._reasoning.join()
            self.messages.append(msg)
        elif type(ev) is ToolResultRecorded:
            self.messages.append({"role": "tool", "tool_call_id": ev.call_id, "content": ev.content})
        elif type(ev) is TurnFinalized or type(ev) is TurnFailed:
            # The turn asks for nothing more: its text goes (a last answer is no request's).
            self._text = TextParts()
            self._reasoning = TextParts()

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
