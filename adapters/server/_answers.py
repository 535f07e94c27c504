"""What the endpoints answer, as msgspec structs: the service's answers described for the OpenAPI
document (``_openapi``), which turns them into JSON Schemas. The endpoints build their JSON where
they are (``_app``, ``_listing``, ``_controls``); schemathesis checks every answer of the running
service against these (``tests/embedding/test_schemathesis.py``), so a field added there and not
here, or retyped, is caught.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec


class Created(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A new conversation; its URL is in the ``Location`` header."""

    id: str


class Health(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    ok: bool


class Message(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A message row (one user row and one assistant row per turn), ``content`` decoded."""

    id: str
    conversation_id: str
    turn_id: str
    seq: int
    role: Literal["user", "assistant"]
    content: dict[str, Any]
    token_count: int | None
    usage: dict[str, Any] | None
    status: Literal["live", "awaiting_approval", "finalized", "failed"]
    created_at: str


class Messages(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """At most ``limit`` rows after the ``cursor``; ``next``: the ``cursor`` of the next page."""

    conversation_id: str
    messages: list[Message]
    next: str | None


class VerifyReport(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The conversation's hash chain recomputed: ``broken`` names each broken link."""

    ok: bool
    events: int
    broken: list[str]


class RebuiltRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One call to the model, its body rebuilt from the log; ``match``: the digests agree."""

    turn_id: str
    iteration: int
    version: int
    model: str
    sha256: str
    recorded_sha256: str
    match: bool
    body: dict[str, Any]


class RequestsPage(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """At most ``limit`` requests after version ``after``; ``next`` is the ``after`` of the next page."""

    conversation_id: str
    requests: list[RebuiltRequest]
    next: int | None


class ErrorDetail(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    status: int
    code: str
    message: str


class Error(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Every error the service answers with (``ERROR_STATUS`` maps its code to the status)."""

    error: ErrorDetail


class _Step(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag_field="type"):
    id: str
    index: int


class ThinkingStep(_Step, frozen=True, tag="thinking"):
    content: str


class TextStep(_Step, frozen=True, tag="text"):
    content: str


class ToolCallStep(_Step, frozen=True, tag="tool_call"):
    """``id_ref``: the provider's id of the call."""

    id_ref: str
    name: str
    arguments: str


class ToolResultStep(_Step, frozen=True, tag="tool_result"):
    """``id_ref``: the step id of the call it answers."""

    id_ref: str
    name: str
    content: str
    success: bool


class ProcessStep(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The data of a ``process_step`` frame (``delta`` mode: the new text; ``full``: all of it)."""

    step: ThinkingStep | TextStep | ToolCallStep | ToolResultStep


class Done(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The data of the ``done`` frame: the stored assistant message, usage summed over iterations."""

    message_id: str
    token_count: int
    usage: dict[str, int]


class StreamError(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The data of an ``error`` frame: the turn failed (``reason``: llm_error, tool_error,
    max_iterations, cancelled, interrupted, internal), or the log cannot be served
    (``integrity_broken``, no ``id``)."""

    content: str
    reason: str


class ApprovalRequired(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The data of an ``approval_required`` frame: a tool call waits for a person's decision (the
    turn is parked; the stream ends after the last such frame). ``arguments``: the model's JSON."""

    call_id: str
    name: str
    arguments: str


class ApprovalDecidedFrame(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The data of an ``approval_decided`` frame: ``decision`` is ``approve`` or ``deny``."""

    call_id: str
    decision: str
    reason: str


#: The frames of protocol v1 (docs/architecture.md, "SSE protocol v1"), by event name.
FRAMES: dict[str, tuple[type[msgspec.Struct], bool]] = {
    "process_step": (ProcessStep, True),
    "done": (Done, True),
    "error": (StreamError, False),
    "approval_required": (ApprovalRequired, True),
    "approval_decided": (ApprovalDecidedFrame, True),
}


class Document(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """This document."""

    openapi: str
    info: dict[str, Any]
    paths: dict[str, Any]
    components: dict[str, Any]
