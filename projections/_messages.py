"""The messages projection: the stored rows, one user row and one assistant row per turn.

Seed-compatible assistant content: the JSON object ``{text, steps, tool_calls}`` (``tool_calls``
only when there were any), plus ``token_count`` and ``usage``. Differences: a ``status``
(``live``, ``finalized``, ``failed``), usage summed over iterations instead of the last one, a
failed turn keeps its partial output and says why under ``error``, and the user row is stored too
(the seed left that to its caller) with content ``{"text": ..., "attachments": []}``.

``text`` is the answer of the last iteration, as in the seed; earlier iterations' text stays in
``steps``. Per-delta work is O(1): text is collected in lists and joined once, at the end.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

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
    Usage,
    UsageRecorded,
)

from ._steps import TurnSteps, step_id


class MessageRow(msgspec.Struct, frozen=True):
    id: str
    conversation_id: str
    turn_id: str
    seq: int
    role: str
    content: str
    token_count: int | None
    usage: str | None
    status: str
    created_at: str


def _dumps(obj: Any) -> str:
    # ensure_ascii=False as in the seed: stored text stays readable.
    return json.dumps(obj, ensure_ascii=False)


class _TurnRows:
    """Accumulates one turn's assistant content."""

    def __init__(self, rec: Recorded, ev: TurnStarted) -> None:
        self.turn_id = rec.turn_id
        self.started = ev
        self.user_seq = rec.version
        self.user_created_at = rec.recorded_at
        self.steps = TurnSteps()
        # step index -> step dict; thinking/text steps hold a list of parts until the end.
        self.step_list: list[dict[str, Any]] = []
        self.parts: dict[int, list[str]] = {}
        self.text_parts: list[str] = []  # this iteration's answer text
        self.tool_calls: list[dict[str, Any]] = []
        self.usage = Usage()

    def user_row(self, conversation_id: str, status: str) -> MessageRow:
        content = _dumps({"text": self.started.user_message, "attachments": []})
        return MessageRow(
            self.started.user_message_id,
            conversation_id,
            self.turn_id,
            self.user_seq,
            "user",
            content,
            None,
            None,
            status,
            self.user_created_at,
        )

    def _text_step(self, kind: str, index: int, opened: bool, text: str) -> None:
        if opened:
            parts: list[str] = []
            self.parts[index] = parts
            self.step_list.append({"id": step_id(index), "index": index, "type": kind, "content": parts})
        self.parts[index].append(text)

    def apply(self, ev: object) -> None:
        if type(ev) is TextDelta:
            index, opened = self.steps.text()
            self._text_step("text", index, opened, ev.text)
            self.text_parts.append(ev.text)
        elif type(ev) is ReasoningDelta:
            index, opened = self.steps.thinking()
            self._text_step("thinking", index, opened, ev.text)
        elif type(ev) is UsageRecorded:
            self.usage = self.usage + Usage(ev.prompt_tokens, ev.completion_tokens, ev.total_tokens)
        elif type(ev) is IterationStarted:
            self.steps.on_phase(ev)
            self.text_parts = []
        elif type(ev) is ToolCallsRequested:
            self.tool_calls.extend(
                {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                for c in ev.calls
            )
        elif type(ev) is ToolCallStarted:
            index = self.steps.tool_call(ev)
            self.step_list.append(
                {
                    "id": step_id(index),
                    "index": index,
                    "type": "tool_call",
                    "id_ref": ev.call_id,
                    "name": ev.name,
                    "arguments": ev.arguments,
                }
            )
        elif type(ev) is ToolResultRecorded:
            index, call_index = self.steps.tool_result(ev)
            self.step_list.append(
                {
                    "id": step_id(index),
                    "index": index,
                    "type": "tool_result",
                    "id_ref": step_id(call_index),
                    "name": ev.name,
                    "content": ev.content,
                    "success": ev.success,
                }
            )

    def assistant_row(self, conversation_id: str, rec: Recorded) -> MessageRow:
        ev = rec.event
        steps = [
            {**s, "content": "".join(s["content"])} if isinstance(s.get("content"), list) else s for s in self.step_list
        ]
        content: dict[str, Any] = {"text": "".join(self.text_parts), "steps": steps}
        if self.tool_calls:
            content["tool_calls"] = self.tool_calls
        if isinstance(ev, TurnFinalized):
            status, token_count, usage = "finalized", ev.token_count, ev.usage
        else:
            assert isinstance(ev, TurnFailed)
            status, token_count, usage = "failed", self.usage.completion_tokens, self.usage
            content["error"] = {"reason": ev.reason, "message": ev.message}
        usage_json = _dumps(msgspec.to_builtins(usage))
        return MessageRow(
            self.started.assistant_message_id,
            conversation_id,
            self.turn_id,
            rec.version,
            "assistant",
            _dumps(content),
            token_count,
            usage_json,
            status,
            rec.recorded_at,
        )


class MessageFold:
    """Rows of one conversation. ``apply`` returns the rows that changed (to upsert)."""

    def __init__(self, conversation_id: str) -> None:
        self.conversation_id = conversation_id
        self.version = 0
        self._turn: _TurnRows | None = None

    def apply(self, rec: Recorded) -> list[MessageRow]:
        self.version = rec.version
        ev = rec.event
        turn = self._turn
        if turn is not None and type(ev) in _PER_TURN:
            turn.apply(ev)
            return []
        if type(ev) is TurnStarted:
            self._turn = _TurnRows(rec, ev)
            return [self._turn.user_row(self.conversation_id, "live")]
        if turn is not None and type(ev) in (TurnFinalized, TurnFailed):
            status = "finalized" if type(ev) is TurnFinalized else "failed"
            rows = [turn.user_row(self.conversation_id, status), turn.assistant_row(self.conversation_id, rec)]
            self._turn = None
            return rows
        return []


_PER_TURN = frozenset(
    {
        TextDelta,
        ReasoningDelta,
        UsageRecorded,
        IterationStarted,
        ToolCallsRequested,
        ToolCallStarted,
        ToolResultRecorded,
    }
)


def fold_rows(conversation_id: str, events: Iterable[Recorded]) -> list[MessageRow]:
    """Every row of a conversation, rebuilt from its events, in ``seq`` order."""
    fold = MessageFold(conversation_id)
    rows: dict[str, MessageRow] = {}
    for rec in events:
        for row in fold.apply(rec):
            rows[row.id] = row
    return sorted(rows.values(), key=lambda r: r.seq)
