"""The transcript projection: a stable, readable rendering of turns for snapshot tests.

Stable means: ids that a run invents (conversation, turn and message ids) are replaced by their
order of appearance (``<turn-1>``, ``<msg-2>``), times and tool durations are left out, and each
iteration's deltas are shown joined with their count. What the model was sent is shown by the
first 16 hex digits of the request digest; what it answered, verbatim.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from turnlog.engine import (
    ConversationCreated,
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


def _q(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


class _Names:
    def __init__(self) -> None:
        self._seen: dict[tuple[str, str], str] = {}
        self._count: dict[str, int] = {}

    def __call__(self, kind: str, value: str) -> str:
        key = (kind, value)
        if key not in self._seen:
            n = self._count.get(kind, 0) + 1
            self._count[kind] = n
            self._seen[key] = f"<{kind}-{n}>"
        return self._seen[key]


def render(events: Iterable[Recorded]) -> str:
    names = _Names()
    out: list[str] = []
    thinking: list[str] = []
    text: list[str] = []

    def flush_deltas() -> None:
        if thinking:
            out.append(f"    thinking ({len(thinking)} deltas): {_q(''.join(thinking))}")
            thinking.clear()
        if text:
            out.append(f"    text ({len(text)} deltas): {_q(''.join(text))}")
            text.clear()

    for rec in events:
        ev = rec.event
        if type(ev) is TextDelta:
            text.append(ev.text)
            continue
        if type(ev) is ReasoningDelta:
            thinking.append(ev.text)
            continue
        flush_deltas()
        if isinstance(ev, ConversationCreated):
            out.append(f"conversation {names('conv', rec.stream_id)} provider={ev.provider} model={ev.model}")
            if ev.system_prompt:
                out.append(f"  system: {_q(ev.system_prompt)}")
        elif isinstance(ev, TurnStarted):
            tools = ",".join(t.get("function", {}).get("name", "?") for t in ev.tools) or "-"
            out.append(f"turn {names('turn', rec.turn_id)} v{rec.version}")
            out.append(
                f"  settings: provider={ev.provider} model={ev.model} thinking={'on' if ev.thinking else 'off'} "
                f"temperature={ev.temperature} max_tokens={ev.max_tokens} max_iterations={ev.max_iterations} "
                f"tools={tools} level={ev.permission_level}"
            )
            names("msg", ev.user_message_id)
            names("msg", ev.assistant_message_id)
            out.append(f"  user {names('msg', ev.user_message_id)}: {_q(ev.user_message)}")
        elif isinstance(ev, IterationStarted):
            out.append(f"  iteration {ev.iteration} request sha256:{ev.request_sha256[:16]}")
        elif isinstance(ev, UsageRecorded):
            out.append(
                f"    usage: prompt={ev.prompt_tokens} completion={ev.completion_tokens} total={ev.total_tokens}"
            )
        elif isinstance(ev, ToolCallsRequested):
            out.append(f"    tool calls requested (finish={ev.finish_reason}):")
            for c in ev.calls:
                out.append(f"      {c.id} {c.name} {c.arguments}")
        elif isinstance(ev, ToolCallStarted):
            out.append(f"    tool_call {ev.call_id} {ev.name} {ev.arguments}")
        elif isinstance(ev, ToolResultRecorded):
            status = "ok" if ev.success else "FAILED"
            out.append(f"    tool_result {ev.call_id} {ev.name} {status}: {_q(ev.content)}")
        elif isinstance(ev, TurnFinalized):
            u = ev.usage
            out.append(
                f"  finalized {names('msg', ev.message_id)} finish={ev.finish_reason} token_count={ev.token_count} "
                f"usage={u.prompt_tokens}/{u.completion_tokens}/{u.total_tokens}"
            )
        elif isinstance(ev, TurnFailed):
            out.append(f"  failed reason={ev.reason} iteration={ev.iteration}: {_q(ev.message)}")
    flush_deltas()
    return "\n".join(out) + "\n"
