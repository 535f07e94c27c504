"""The history projection: the LLM messages of the next request (the seed's ``build_messages``).

Prior turns come from the stored rows: the system prompt, then each finished turn's user text and
assistant text (tool traffic of earlier turns is not re-sent, as in the seed). Rows of a failed
turn are sent too: the user's words, and the partial answer if there was one; an empty answer is
left out so the model never sees an empty assistant message. The current user message is sent as
plain text (the seed sent a JSON wrapper ``{"text": ..., "attachments": []}`` for the current
message only, and plain text for earlier ones; one form for both is less surprising to a model).

Within a turn, ``TurnHistory`` grows with the events: after an iteration that asked for tools it
adds the assistant message with its ``tool_calls`` (and, for providers that demand it, the
``reasoning_content`` it streamed) and one ``tool`` message per result, in call order. The request
is therefore a pure function of the log: an auditor who folds the same events gets the same bytes.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from turnlog.engine.events import (
    IterationStarted,
    ReasoningDelta,
    TextDelta,
    ToolCallsRequested,
    ToolResultRecorded,
    TurnStarted,
)
from turnlog.engine.llm import LLMRequest

from .messages import MessageRow


def row_text(row: MessageRow) -> str:
    try:
        obj = json.loads(row.content)
    except ValueError:
        return row.content
    return obj.get("text", row.content) if isinstance(obj, dict) else row.content


def prior_messages(system_prompt: str | None, rows: Sequence[MessageRow]) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    if system_prompt:
        messages.append({"role": "system", "content": system_prompt})
    for row in rows:
        if row.status == "live":
            continue
        text = row_text(row)
        if row.role == "assistant" and not text:
            continue
        messages.append({"role": row.role, "content": text})
    return messages


class TurnHistory:
    __slots__ = ("_reasoning", "_text", "messages", "round_trip_reasoning", "started")

    def __init__(self, prior_rows: Sequence[MessageRow], started: TurnStarted, *, round_trip_reasoning: bool) -> None:
        self.started = started
        self.round_trip_reasoning = round_trip_reasoning
        self.messages = prior_messages(started.system_prompt, prior_rows)
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
