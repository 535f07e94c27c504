"""A turn's events as OpenTelemetry GenAI spans, planned (no OpenTelemetry import here).

``TurnSpans`` folds one conversation's events, one at a time (O(1) each), and hands back a
``SpanPlan`` tree when a turn ends: the turn (``invoke_agent turnlog``, kind INTERNAL: the agent
runs in this process), one child per model call (``chat {model}``, kind CLIENT) and one per tool
call (``execute_tool {name}``, kind INTERNAL), in the order they happened. Names and attributes
follow the GenAI semantic conventions (Development status; the names of semantic-conventions
v1.37+: ``gen_ai.provider.name``, ``gen_ai.usage.cache_read.input_tokens``,
``gen_ai.usage.reasoning.output_tokens``, ``gen_ai.input.messages`` ...). Times are the events'
``recorded_at``: the same log gives the same spans, live or long after.

Content (the user's message, the system prompt, the answer and its reasoning, tool arguments and
results) is opt-in, as the conventions make it: only with ``content=True``, as the JSON text of
the conventions' message shapes (``gen_ai.input.messages``, ``gen_ai.output.messages``,
``gen_ai.system_instructions``, ``gen_ai.tool.call.arguments``, ``gen_ai.tool.call.result``).
Without it no text of the conversation is kept by the fold or put on a span.

``error.type`` (and an error status) marks a failed turn (the ``TurnFailed`` reason: ``llm_error``,
``tool_error``, ``cancelled``, ``interrupted`` ...), the model call a provider error ended
(``llm_error``), a tool call that failed (``tool_error``) and a tool call the turn's end cut off
(the turn's reason).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import msgspec
from turnlog.engine import (
    IterationStarted,
    ReasoningDelta,
    Recorded,
    TextDelta,
    ToolCallsRequested,
    ToolCallStarted,
    ToolResultRecorded,
    TurnFailed,
    TurnFinalized,
    TurnStarted,
    UsageRecorded,
)
from turnlog.projections import token_details

#: The agent's name on turn spans (``gen_ai.agent.name``).
AGENT_NAME = "turnlog"

AttributeValue = str | int | float | bool | list[str]


@dataclass
class SpanPlan:
    """One span to emit: its name, kind (``internal`` or ``client``), times (RFC 3339, from the
    log), attributes, the error type that marks it failed (None: ok) and its children."""

    name: str
    kind: str
    start: str
    end: str
    attributes: dict[str, AttributeValue]
    error: str | None = None
    children: list[SpanPlan] = field(default_factory=list)


def nanoseconds(recorded_at: str) -> int:
    """An event's ``recorded_at`` (RFC 3339, UTC) as nanoseconds since the epoch, exactly."""
    dt = datetime.fromisoformat(recorded_at.replace("Z", "+00:00"))
    whole = int((dt.replace(microsecond=0) - datetime(1970, 1, 1, tzinfo=dt.tzinfo)).total_seconds())
    return whole * 1_000_000_000 + dt.microsecond * 1000


def _json(value: object) -> str:
    return msgspec.json.encode(value).decode()


class _Call:
    """The model call being folded: its span, and its output when content is kept."""

    __slots__ = ("plan", "reasoning", "text", "tool_calls")

    def __init__(self, plan: SpanPlan) -> None:
        self.plan = plan
        self.text: list[str] = []
        self.reasoning: list[str] = []
        self.tool_calls: list[dict[str, str]] = []


class TurnSpans:
    """One conversation's turns as span trees. ``apply(rec)`` returns the finished turn's tree
    at its ``TurnFinalized`` or ``TurnFailed`` (None otherwise, and for a turn whose start it did
    not see: a fold that joined a turn midway cannot say who or what it was)."""

    def __init__(self, conversation_id: str, *, content: bool = False) -> None:
        self.conversation_id = conversation_id
        self.content = content
        self._turn: SpanPlan | None = None
        self._started: TurnStarted | None = None
        self._call: _Call | None = None
        self._tools: dict[str, SpanPlan] = {}
        self._model = ""
        self._usage = [0, 0]
        self._handlers = {
            TurnStarted: self._turn_started,
            IterationStarted: self._iteration,
            TextDelta: self._text,
            ReasoningDelta: self._reasoning,
            ToolCallsRequested: self._calls_requested,
            UsageRecorded: self._usage_recorded,
            ToolCallStarted: self._tool_started,
            ToolResultRecorded: self._tool_result,
            TurnFinalized: self._finalized,
            TurnFailed: self._failed,
        }

    def apply(self, rec: Recorded) -> SpanPlan | None:
        handler = self._handlers.get(type(rec.event))
        if handler is None or (self._turn is None and type(rec.event) is not TurnStarted):
            return None
        return handler(rec)

    # -- a turn ---------------------------------------------------------------------------------

    def _common(self) -> dict[str, AttributeValue]:
        started = self._started
        assert started is not None
        return {"gen_ai.provider.name": started.provider, "gen_ai.conversation.id": self.conversation_id}

    def _turn_started(self, rec: Recorded) -> None:
        ev: TurnStarted = rec.event  # type: ignore[assignment]
        self._started, self._call, self._tools, self._model, self._usage = ev, None, {}, ev.model, [0, 0]
        attrs: dict[str, AttributeValue] = {
            "gen_ai.operation.name": "invoke_agent",
            **self._common(),
            "gen_ai.agent.name": AGENT_NAME,
            "gen_ai.request.model": ev.model,
            "turnlog.turn.id": rec.turn_id,
        }
        if ev.temperature is not None:
            attrs["gen_ai.request.temperature"] = ev.temperature
        if ev.max_tokens is not None:
            attrs["gen_ai.request.max_tokens"] = ev.max_tokens
        if self.content:
            attrs["gen_ai.input.messages"] = _json([{"role": "user", "parts": [_text(ev.user_message)]}])
            if ev.system_prompt:
                attrs["gen_ai.system_instructions"] = _json([_text(ev.system_prompt)])
        self._turn = SpanPlan(f"invoke_agent {AGENT_NAME}", "internal", rec.recorded_at, rec.recorded_at, attrs)

    def _iteration(self, rec: Recorded) -> None:
        ev: IterationStarted = rec.event  # type: ignore[assignment]
        model = ev.model or (self._started.model if self._started is not None else "")
        attrs: dict[str, AttributeValue] = {
            "gen_ai.operation.name": "chat",
            **self._common(),
            "gen_ai.request.model": model,
            "turnlog.iteration": ev.iteration,
        }
        plan = SpanPlan(f"chat {model}".rstrip(), "client", rec.recorded_at, rec.recorded_at, attrs)
        assert self._turn is not None
        self._turn.children.append(plan)
        self._call = _Call(plan)

    def _text(self, rec: Recorded) -> None:
        if self._call is not None:
            self._call.plan.end = rec.recorded_at
            if self.content:
                self._call.text.append(rec.event.text)  # type: ignore[attr-defined]

    def _reasoning(self, rec: Recorded) -> None:
        if self._call is not None:
            self._call.plan.end = rec.recorded_at
            if self.content:
                self._call.reasoning.append(rec.event.text)  # type: ignore[attr-defined]

    def _calls_requested(self, rec: Recorded) -> None:
        ev: ToolCallsRequested = rec.event  # type: ignore[assignment]
        if self._call is not None:
            self._call.plan.end = rec.recorded_at
            self._call.plan.attributes["gen_ai.response.finish_reasons"] = [ev.finish_reason]
            if self.content:
                self._call.tool_calls = [
                    {"type": "tool_call", "id": c.id, "name": c.name, "arguments": c.arguments} for c in ev.calls
                ]
            self._close_call(ev.finish_reason)

    def _usage_recorded(self, rec: Recorded) -> None:
        ev: UsageRecorded = rec.event  # type: ignore[assignment]
        self._usage[0] += ev.prompt_tokens
        self._usage[1] += ev.completion_tokens
        call = self._call.plan if self._call is not None else self._last_call()
        if call is None:
            return
        cached, reasoning = token_details(ev.raw)
        attrs = call.attributes
        attrs["gen_ai.usage.input_tokens"] = ev.prompt_tokens
        attrs["gen_ai.usage.output_tokens"] = ev.completion_tokens
        if cached:
            attrs["gen_ai.usage.cache_read.input_tokens"] = cached
        if reasoning:
            attrs["gen_ai.usage.reasoning.output_tokens"] = reasoning
        call.end = max(call.end, rec.recorded_at)

    def _last_call(self) -> SpanPlan | None:
        turn = self._turn
        chats = [c for c in turn.children if c.kind == "client"] if turn is not None else []
        return chats[-1] if chats else None

    def _close_call(self, finish: str | None) -> None:
        """The model call's answer is complete: its output, when content is kept."""
        call = self._call
        if call is None:
            return
        if self.content:
            parts: list[dict[str, str]] = []
            if call.reasoning:
                parts.append({"type": "reasoning", "content": "".join(call.reasoning)})
            if call.text:
                parts.append(_text("".join(call.text)))
            parts.extend(call.tool_calls)
            message: dict[str, object] = {"role": "assistant", "parts": parts}
            if finish is not None:
                message["finish_reason"] = finish
            call.plan.attributes["gen_ai.output.messages"] = _json([message])
        self._call = None

    # -- tools ------------------------------------------------------------------------------------

    def _tool_started(self, rec: Recorded) -> None:
        ev: ToolCallStarted = rec.event  # type: ignore[assignment]
        attrs: dict[str, AttributeValue] = {
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": ev.name,
            "gen_ai.tool.call.id": ev.call_id,
            "gen_ai.tool.type": "function",
            "gen_ai.conversation.id": self.conversation_id,
        }
        if self.content:
            attrs["gen_ai.tool.call.arguments"] = ev.arguments
        plan = SpanPlan(f"execute_tool {ev.name}", "internal", rec.recorded_at, rec.recorded_at, attrs)
        assert self._turn is not None
        self._turn.children.append(plan)
        self._tools[ev.call_id] = plan

    def _tool_result(self, rec: Recorded) -> None:
        ev: ToolResultRecorded = rec.event  # type: ignore[assignment]
        plan = self._tools.pop(ev.call_id, None)
        if plan is None:
            return
        plan.end = rec.recorded_at
        plan.attributes["turnlog.tool.duration_ms"] = ev.duration_ms
        if not ev.success:
            plan.error = "tool_error"
        elif self.content:
            plan.attributes["gen_ai.tool.call.result"] = ev.content

    # -- the end ----------------------------------------------------------------------------------

    def _end(self, rec: Recorded, finish: str | None, error: str | None) -> SpanPlan:
        turn = self._turn
        assert turn is not None
        if self._call is not None:
            if error is not None and finish is None:
                self._call.plan.end = rec.recorded_at
                if error == "llm_error":
                    self._call.plan.error = error
            else:
                self._call.plan.attributes["gen_ai.response.finish_reasons"] = [finish or "stop"]
                if self.content and self._call.text:
                    output = [
                        {"role": "assistant", "parts": [_text("".join(self._call.text))], "finish_reason": finish}
                    ]
                    turn.attributes["gen_ai.output.messages"] = _json(output)
            self._close_call(finish)
        for plan in self._tools.values():  # cut off by the turn's end
            plan.end, plan.error = rec.recorded_at, error or "interrupted"
        turn.end = rec.recorded_at
        turn.error = error
        turn.attributes["gen_ai.usage.input_tokens"] = self._usage[0]
        turn.attributes["gen_ai.usage.output_tokens"] = self._usage[1]
        if finish is not None:
            turn.attributes["gen_ai.response.finish_reasons"] = [finish]
        self._turn, self._started, self._call, self._tools = None, None, None, {}
        return turn

    def _finalized(self, rec: Recorded) -> SpanPlan:
        return self._end(rec, rec.event.finish_reason, None)  # type: ignore[attr-defined]

    def _failed(self, rec: Recorded) -> SpanPlan:
        return self._end(rec, None, rec.event.reason)  # type: ignore[attr-defined]


def _text(content: str) -> dict[str, str]:
    return {"type": "text", "content": content}
