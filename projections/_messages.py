"""The messages projection: the stored rows, one user row and one assistant row per turn.

Seed-compatible assistant content: the JSON object ``{text, steps, tool_calls}`` (``tool_calls``
only when there were any), plus ``token_count`` and ``usage``. Differences: a ``status``
(``live``, ``finalized``, ``failed``), usage summed over iterations instead of the last one, a
failed turn keeps its partial output and says why under ``error``, and the user row is stored too
(the seed left that to its caller) with content ``{"text": ..., "attachments": []}``.

A turn parked awaiting approval has its rows written at once, status ``awaiting_approval`` (the
assistant row holds the output so far and the calls under ``approvals``, each with its decision
once made), and ``live`` again when it goes on; the final row keeps ``approvals``.

``text`` is the answer of the last iteration, as in the seed; earlier iterations' text stays in
``steps``. Per-delta work is O(1): text is collected in ``ShownText`` (every few thousand parts
joined into a chunk, never rejoined) and joined once, at the end; the answer and its text step
share one.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import msgspec
from turnlog.engine import (
    ERASED_TEXT,
    ApprovalDecided,
    ApprovalRequested,
    IterationStarted,
    ReasoningDelta,
    Recorded,
    TextDelta,
    TextParts,
    ToolCallsRequested,
    ToolCallStarted,
    ToolResultRecorded,
    TurnFailed,
    TurnFinalized,
    TurnResumed,
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
        self.parts: dict[int, ShownText] = {}
        #: This iteration's answer text: the parts of its text step (one text step per iteration,
        #: ``TurnSteps``), the same list, so the answer is held (and joined) once.
        self.text_parts = ShownText()
        self.tool_calls: list[dict[str, Any]] = []
        self.usage = Usage()
        #: Calls that needed a person's decision, with it once made (call id -> entry).
        self.approvals: dict[str, dict[str, Any]] = {}

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

    def _text_step(self, kind: str, index: int, opened: bool, text: str) -> ShownText:
        if opened:
            parts = ShownText()
            self.parts[index] = parts
            self.step_list.append({"id": step_id(index), "index": index, "type": kind, "content": parts})
        parts = self.parts[index]
        parts.add(text)
        return parts

    def apply(self, ev: object) -> None:
        if type(ev) is TextDelta:
            index, opened = self.steps.text()
            self.text_parts = self._text_step("text", index, opened, ev.text)
        elif type(ev) is ReasoningDelta:
            index, opened = self.steps.thinking()
            self._text_step("thinking", index, opened, ev.text)
        elif type(ev) is UsageRecorded:
            self.usage = self.usage + Usage(ev.prompt_tokens, ev.completion_tokens, ev.total_tokens)
        elif type(ev) is IterationStarted:
            self.steps.on_phase(ev)
            self.text_parts = ShownText()
        elif type(ev) is ToolCallsRequested:
            self.tool_calls.extend(
                {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                for c in ev.calls
            )
        elif type(ev) is ApprovalRequested:
            self.approvals[ev.call_id] = {
                "call_id": ev.call_id,
                "name": ev.name,
                "arguments": ev.arguments,
                "decision": None,
            }
        elif type(ev) is ApprovalDecided:
            entry = self.approvals.get(ev.call_id)
            if entry is not None:
                entry.update(decision=ev.decision, reason=ev.reason, tenant=ev.tenant, subject=ev.subject)
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

    def assistant_row(self, conversation_id: str, rec: Recorded, *, final: bool = False) -> MessageRow:
        """The assistant row as of ``rec``. ``final``: the turn ended, nothing more is folded, and
        the parts are released once joined (before the row's JSON is made: a long answer is held
        once as text, not also as parts, while it is encoded)."""
        ev = rec.event
        # The answer is the last text step's content: joined once, the one string in both places.
        text = self.text_parts.join()
        steps = [
            {**s, "content": text if s["content"] is self.text_parts else s["content"].join()}
            if isinstance(s.get("content"), ShownText)
            else s
            for s in self.step_list
        ]
        if final:
            self.step_list, self.parts, self.text_parts = [], {}, ShownText()
        content: dict[str, Any] = {"text": text, "steps": steps}
        if self.tool_calls:
            content["tool_calls"] = self.tool_calls
        if self.approvals:
            content["approvals"] = [dict(a) for a in self.approvals.values()]
        if isinstance(ev, TurnFinalized):
            status, token_count, usage = "finalized", ev.token_count, ev.usage
        elif isinstance(ev, TurnFailed):
            status, token_count, usage = "failed", self.usage.completion_tokens, self.usage
            content["error"] = {"reason": ev.reason, "message": ev.message}
        else:
            # Parked (awaiting a decision) or taken up again: the turn's output so far.
            status = "awaiting_approval" if type(ev) is not TurnResumed else "live"
            token_count, usage = self.usage.completion_tokens, self.usage
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


class ShownText(TextParts):
    """``TextParts`` as the rows and the transcript show a text: an erased conversation's deltas
    each read ``ERASED_TEXT``, and a run of them is kept once. Told apart by identity: the log
    hands out the one ``ERASED_TEXT`` object for every value it cannot decrypt, while a model
    that streamed that very string made a string of its own, which is kept as often as it came."""

    __slots__ = ()

    def add(self, text: str) -> None:
        parts = self.parts
        if text is ERASED_TEXT and parts and parts[-1] is ERASED_TEXT:
            return
        TextParts.add(self, text)


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
        if turn is not None and type(ev) in APPROVAL_EVENTS:
            # The rows show a parked turn (status ``awaiting_approval``, the calls and decisions
            # under ``approvals``) and its going on (``live`` again).
            turn.apply(ev)
            if type(ev) is TurnResumed and not turn.approvals:
                return []
            status = "live" if type(ev) is TurnResumed else "awaiting_approval"
            return [turn.user_row(self.conversation_id, status), turn.assistant_row(self.conversation_id, rec)]
        if type(ev) is TurnStarted:
            self._turn = _TurnRows(rec, ev)
            return [self._turn.user_row(self.conversation_id, "live")]
        if turn is not None and type(ev) in (TurnFinalized, TurnFailed):
            status = "finalized" if type(ev) is TurnFinalized else "failed"
            self._turn = None
            return [
                turn.user_row(self.conversation_id, status),
                turn.assistant_row(self.conversation_id, rec, final=True),
            ]
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


#: Events that change a live turn's rows: it parks, a decision is made, it goes on.
APPROVAL_EVENTS = frozenset({ApprovalRequested, ApprovalDecided, TurnResumed})


def fold_rows(conversation_id: str, events: Iterable[Recorded]) -> list[MessageRow]:
    """Every row of a conversation, rebuilt from its events, in ``seq`` order."""
    fold = MessageFold(conversation_id)
    rows: dict[str, MessageRow] = {}
    for rec in events:
        for row in fold.apply(rec):
            rows[row.id] = row
    return sorted(rows.values(), key=lambda r: r.seq)
