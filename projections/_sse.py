"""SSE protocol v1: the frames a browser receives, projected from events one at a time.

Seed-compatible: event names ``process_step``, ``done``, ``error``; step types ``thinking``,
``text``, ``tool_call``, ``tool_result`` with the seed's fields. Differences on purpose: every frame
has ``id: <version>`` (the version of the one event it was projected from, so ``Last-Event-ID``
resumes exactly); one step index counter; ``done`` carries the stored message id and the usage
summed over iterations; ``error`` follows a persisted TurnFailed and names its ``reason``.

Modes: ``full`` (the seed's: a thinking/text frame carries the step's whole text so far; bytes grow
with the square of the answer) and ``delta`` (only the new text; bytes grow linearly).

Approvals: ``approval_required`` (one frame per call awaiting a decision: ``{"call_id", "name",
"arguments"}``; the turn is parked and a live stream ends after the last one) and
``approval_decided`` (``{"call_id", "decision", "reason"}``).

Events that produce no frame: ConversationCreated, TurnStarted, IterationStarted,
ToolCallsRequested, UsageRecorded, CancelRequested (the ``error`` frame of the failure it causes
says who asked), TurnResumed. At most one frame per event.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from typing import Literal

import msgspec
from turnlog.engine import (
    ApprovalDecided,
    ApprovalRequested,
    ConfigError,
    IterationStarted,
    ReasoningDelta,
    Recorded,
    TextDelta,
    ToolCallStarted,
    ToolResultRecorded,
    TurnEngine,
    TurnFailed,
    TurnFinalized,
    TurnRequest,
    TurnStarted,
)

from ._steps import TurnSteps

Mode = Literal["full", "delta"]
MODES: tuple[Mode, ...] = ("full", "delta")


class _TextStep(msgspec.Struct):
    id: str
    index: int
    type: str
    content: str


class _ToolCallStep(msgspec.Struct):
    id: str
    index: int
    type: str
    id_ref: str
    name: str
    arguments: str


class _ToolResultStep(msgspec.Struct):
    id: str
    index: int
    type: str
    id_ref: str
    name: str
    content: str
    success: bool


class _Done(msgspec.Struct):
    message_id: str
    token_count: int
    usage: dict[str, int]


class _ApprovalRequired(msgspec.Struct):
    call_id: str
    name: str
    arguments: str


class _ApprovalDecided(msgspec.Struct):
    call_id: str
    decision: str
    reason: str


class _Error(msgspec.Struct):
    content: str
    reason: str


_enc = msgspec.json.Encoder()
_encode = _enc.encode


def _frame(version: int, event: bytes, data: bytes) -> bytes:
    return b"id: %d\nevent: %s\ndata: %s\n\n" % (version, event, data)


#: (step index, kind) -> the bytes of a text/thinking frame between its id and its content: the
#: same for every delta of a step, so each delta encodes only its text (``_TextStep``'s encoding).
_TEXT_HEADS: dict[tuple[int, str], bytes] = {}


def _text_head(index: int, kind: str) -> bytes:
    head = _TEXT_HEADS.get((index, kind))
    if head is None:
        if len(_TEXT_HEADS) >= 4096:
            _TEXT_HEADS.clear()
        encoded = _enc.encode(_TextStep(f"step-{index}", index, kind, ""))
        head = _TEXT_HEADS[(index, kind)] = b'\nevent: process_step\ndata: {"step":' + encoded[: -len(b'"",}') + 1]
    return head


def _text_frame(version: int, index: int, kind: str, content: str) -> bytes:
    return b"id: %d%s%s}}\n\n" % (version, _text_head(index, kind), _enc.encode(content))


class SseProjector:
    """Folds one conversation's events into frames. Feed it every event from the start of the
    turn (or of the conversation); ``frame`` returns the bytes for one event, or None."""

    __slots__ = ("_head", "_head_step", "_text", "_thinking", "mode", "steps")

    def __init__(self, mode: Mode = "delta") -> None:
        if mode not in MODES:
            raise ConfigError(f"SSE mode must be 'full' or 'delta', not {mode!r}")
        self.mode = mode
        self.steps = TurnSteps()
        self._thinking = ""
        self._text = ""
        #: The text step whose frame head (``_text_head``) is ``_head``: every text delta of a step
        #: shares it, so a delta looks it up by one comparison, not a dict lookup.
        self._head_step: int | None = None
        self._head = b""

    def frame(self, rec: Recorded) -> bytes | None:
        ev = rec.event
        # Ordered by frequency: text deltas dominate every turn; a replay frames ~100k of them a
        # turn, so their path is inlined (what ``_text_frame`` makes, byte for byte).
        if type(ev) is TextDelta:
            index = self.steps.text_step
            if index is None:
                index, _ = self.steps.text()
            if index != self._head_step:
                self._head = _text_head(index, "text")
                self._head_step = index
            if self.mode == "full":
                self._text += ev.text
                return b"id: %d%s%s}}\n\n" % (rec.version, self._head, _encode(self._text))
            return b"id: %d%s%s}}\n\n" % (rec.version, self._head, _encode(ev.text))
        if type(ev) is ReasoningDelta:
            index, _ = self.steps.thinking()
            if self.mode == "full":
                self._thinking += ev.text
                return _text_frame(rec.version, index, "thinking", self._thinking)
            return _text_frame(rec.version, index, "thinking", ev.text)
        if type(ev) is ToolCallStarted:
            index = self.steps.tool_call(ev)
            call = _ToolCallStep(f"step-{index}", index, "tool_call", ev.call_id, ev.name, ev.arguments)
            return _frame(rec.version, b"process_step", b'{"step":' + _enc.encode(call) + b"}")
        if type(ev) is ToolResultRecorded:
            index, call_index = self.steps.tool_result(ev)
            # As in the seed, a result's id_ref names the step id of the call it answers.
            result = _ToolResultStep(
                f"step-{index}", index, "tool_result", f"step-{call_index}", ev.name, ev.content, ev.success
            )
            return _frame(rec.version, b"process_step", b'{"step":' + _enc.encode(result) + b"}")
        if type(ev) is TurnFinalized:
            usage = {
                "prompt_tokens": ev.usage.prompt_tokens,
                "completion_tokens": ev.usage.completion_tokens,
                "total_tokens": ev.usage.total_tokens,
            }
            return _frame(rec.version, b"done", _enc.encode(_Done(ev.message_id, ev.token_count, usage)))
        if type(ev) is TurnFailed:
            return _frame(rec.version, b"error", _enc.encode(_Error(ev.message, ev.reason)))
        if type(ev) is ApprovalRequested:
            required = _ApprovalRequired(ev.call_id, ev.name, ev.arguments)
            return _frame(rec.version, b"approval_required", _enc.encode(required))
        if type(ev) is ApprovalDecided:
            decided = _ApprovalDecided(ev.call_id, ev.decision, ev.reason)
            return _frame(rec.version, b"approval_decided", _enc.encode(decided))
        if type(ev) is IterationStarted:
            self._thinking = ""
            self._text = ""
        elif type(ev) is TurnStarted:
            self._thinking = ""
            self._text = ""
        self.steps.on_phase(ev)
        return None


def project(events: Iterable[Recorded], mode: Mode = "delta", after_version: int = 0) -> list[bytes]:
    """Frames for events after ``after_version``; the fold still sees every event it is given."""
    proj = SseProjector(mode)
    out: list[bytes] = []
    for rec in events:
        f = proj.frame(rec)
        if f is not None and rec.version > after_version:
            out.append(f)
    return out


async def stream_sse(
    engine: TurnEngine, conversation_id: str, request: TurnRequest, mode: Mode = "delta"
) -> AsyncIterator[bytes]:
    """One turn run by ``engine`` as SSE frames (protocol v1), each sent after its event committed."""
    projector = SseProjector(mode)
    turn = engine.run_turn(conversation_id, request)
    try:
        async for rec in turn:
            frame = projector.frame(rec)
            if frame is not None:
                yield frame
    finally:
        await turn.aclose()
