"""The per-route table of the OpenAPI document (``_openapi`` builds the document from it).

Each route has one entry in ``OPERATIONS``, keyed by ``(method, path)`` as the route is declared:
what it is for, its query parameters and headers, its request body, its answers as msgspec
structs, and the error codes it may answer with beyond ``COMMON``. Data only: a new route adds
its entry here, and the builder refuses an app with a route that has none.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import msgspec
from turnlog.projections import USAGE_DIMENSIONS, UsageReport

from ._answers import Created, Document, Health, Messages, RequestsPage, VerifyReport
from ._approvals import Decide
from ._auditing import JSONL, CheckpointStatus, LogPage
from ._bodies import NewConversation, NewTurn
from ._controls import Cancelled, CancelTurn
from ._erase import Erased, SubjectErased
from ._fork import Fork, Forked
from ._listing import ConversationDetail, ConversationPage

# -- the per-route table --------------------------------------------------------------------------


@dataclass(frozen=True)
class Param:
    """A query parameter or a request header."""

    name: str
    description: str
    schema: Mapping[str, Any]
    where: Literal["query", "header"] = "query"


#: What a text/event-stream answer is (protocol v1: docs/architecture.md, "SSE protocol v1").
SSE = "text/event-stream"


@dataclass(frozen=True)
class Operation:
    """One route's entry: ``answers`` maps each success status to its struct (or ``SSE``)."""

    summary: str
    description: str
    answers: Mapping[int, type[msgspec.Struct] | str]
    #: Error codes the route answers with, beyond those every route has (``COMMON``).
    errors: Sequence[str] = ()
    body: type[msgspec.Struct] | None = None
    #: False: an empty body is ``{}``.
    body_required: bool = True
    params: Sequence[Param] = ()
    #: Response headers of each success status.
    headers: Mapping[int, Mapping[str, str]] = field(default_factory=dict)
    #: The caller must authenticate (the service's Authenticator): 401 otherwise.
    auth: bool = True
    #: The route uses the service and the log: it may answer with the ``COMMON`` codes.
    common: bool = True


#: Codes any route may answer with: the service is not running, the log is down or refuses, or
#: an event read back does not hold (the answer is an error, never the forged content).
COMMON = (
    "not_started",
    "store_unavailable",
    "schema_out_of_date",
    "log_error",
    "concurrency_conflict",
    "integrity_broken",
    "illegal_event",
    "unknown_event_type",
    "replay_error",
)
#: A path with an ``{id}`` that names no conversation the caller may read; ``http_error`` when it
#: matches no route at all (an id holding ``/``).
CONVERSATION = ("not_found", "http_error")

MODE = Param(
    "mode",
    "SSE projection: `delta` sends only the new text of each step, `full` the whole text so far",
    {"enum": ["delta", "full"], "default": "delta"},
)
AFTER = Param("after", "only what follows this event version (an SSE frame's id)", {"type": "integer", "minimum": 0})
LIMIT = Param("limit", "at most this many (the server's page size by default)", {"type": "integer", "minimum": 1})
CURSOR = Param("cursor", "where the page starts: the `next` of the page before", {"type": "string"})
LAST_EVENT_ID = Param(
    "last-event-id", "resume after this frame id (the browser's EventSource sends it)", {"type": "string"}, "header"
)
TIME = {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?Z?)?$"}
SSE_HEADERS = {"turnlog-turn-id": "the turn started", "turnlog-version": "the version of its TurnStarted event"}

OPERATIONS: dict[tuple[str, str], Operation] = {
    ("GET", "/health"): Operation("Health", "The store answers. No authentication.", {200: Health}, auth=False),
    ("POST", "/conversations"): Operation(
        "Create a conversation",
        "Owned by the caller (tenant and subject, recorded in its first event). An empty body takes every default.",
        {201: Created},
        ("invalid_body", "too_large"),
        body=NewConversation,
        body_required=False,
        headers={201: {"location": "the conversation's URL, under the path the service is mounted at"}},
    ),
    ("POST", "/conversations/{id}/turns"): Operation(
        "Run a turn",
        "Starts the turn (a refusal is a JSON error and writes nothing), then streams its SSE frames "
        "from the log. The turn keeps running if the client disconnects: resume with GET .../events.",
        {200: SSE},
        (
            *CONVERSATION,
            "forbidden",
            "invalid_query",
            "invalid_body",
            "too_large",
            "turn_in_progress",
            "awaiting_approval",
            "turn_refused",
            "provider_unavailable",
            "conversation_too_large",
            "full_mode_too_large",
        ),
        body=NewTurn,
        params=(MODE,),
        headers={200: SSE_HEADERS},
    ),
    ("POST", "/conversations/{id}/cancel"): Operation(
        "Cancel the running turn",
        "Writes the cancel to the log; whichever server runs the turn ends it as failed (cancelled), "
        "partial output kept. 409 no_turn_running when the last turn has ended.",
        {200: Cancelled},
        (*CONVERSATION, "forbidden", "invalid_body", "too_large", "no_turn_running"),
        body=CancelTurn,
        body_required=False,
    ),
    ("POST", "/conversations/{id}/fork"): Operation(
        "Fork the conversation at a turn boundary",
        "A new conversation (the caller's) whose first event names this one, the version and its hash "
        "there; its history is this one's up to at_version. at_version must be a turn boundary: 1 (before "
        "the first turn) or a turn's last event; else 422 invalid_fork, nothing written. Regenerate or edit: "
        "fork before the turn, then POST a turn to the fork.",
        {201: Forked},
        (*CONVERSATION, "forbidden", "invalid_body", "too_large", "invalid_fork", "conversation_exists"),
        body=Fork,
        headers={201: {"location": "the new conversation's URL"}},
    ),
    ("POST", "/conversations/{id}/approvals"): Operation(
        "Decide on a tool call awaiting approval",
        "Records the decision (approve or deny, the reason, the caller's tenant and subject) on the "
        "conversation's parked turn, on any server. When it is the last decision the turn awaited, the "
        "turn goes on here and is streamed as POST .../turns streams a turn, from the decision's "
        "approval_decided frame (a denied call's result is success: false with the reason); otherwise "
        "that frame alone. 409 not_awaiting_approval when no turn is parked, already_decided for a "
        "second decision; 422 unknown_call for a call that awaits none. Nothing is written then.",
        {200: SSE},
        (
            *CONVERSATION,
            "forbidden",
            "invalid_query",
            "invalid_body",
            "too_large",
            "not_awaiting_approval",
            "already_decided",
            "unknown_call",
            "turn_refused",
            "provider_unavailable",
            "full_mode_too_large",
        ),
        body=Decide,
        params=(MODE,),
        headers={200: {"turnlog-turn-id": "the turn decided on", "turnlog-version": "the version of the decision"}},
    ),
    ("GET", "/conversations/{id}/events"): Operation(
        "Replay and follow",
        "The conversation's SSE frames after `after` (or Last-Event-ID), then the live turn's until it ends.",
        {200: SSE},
        (*CONVERSATION, "invalid_query", "full_mode_too_large"),
        params=(MODE, AFTER, LAST_EVENT_ID),
    ),
    ("GET", "/usage"): Operation(
        "Usage and cost",
        "The caller's tenant's tokens (prompt, cached, completion, reasoning) and their cost at the server's "
        "price table, grouped by conversation, subject, tenant, model or day. Needs the usage permission level.",
        {200: UsageReport},
        ("forbidden", "invalid_query", "not_found"),
        params=(
            Param("by", "what to group by", {"enum": list(USAGE_DIMENSIONS), "default": "conversation"}),
            Param("since", "from this UTC day or time, inclusive (2026-03-01 or 2026-03-01T12:00:00Z)", TIME),
            Param("until", "up to this UTC day or time, exclusive", TIME),
        ),
    ),
    ("GET", "/conversations"): Operation(
        "List conversations",
        "The conversations the caller may read, newest activity first, in pages.",
        {200: ConversationPage},
        ("invalid_query",),
        params=(LIMIT, CURSOR),
    ),
    ("GET", "/conversations/{id}"): Operation(
        "A conversation",
        "Its settings (from its first event) and its state (turns, usage, whether a turn is running).",
        {200: ConversationDetail},
        CONVERSATION,
    ),
    ("GET", "/conversations/{id}/messages"): Operation(
        "Message rows",
        "The conversation's message rows, folded from the log, in pages.",
        {200: Messages},
        (*CONVERSATION, "invalid_query"),
        params=(LIMIT, CURSOR),
    ),
    ("GET", "/conversations/{id}/verify"): Operation(
        "Verify the hash chain",
        "Every event's hash recomputed from its stored bytes: 200 when the chain holds, 409 when it is broken.",
        {200: VerifyReport, 409: VerifyReport},
        CONVERSATION,
    ),
    ("GET", "/conversations/{id}/requests"): Operation(
        "Requests sent to the model",
        "Auditors only: each model request rebuilt from the log, with its digest check, in pages.",
        {200: RequestsPage},
        (*CONVERSATION, "forbidden", "invalid_query", "provider_unavailable"),
        params=(
            AFTER,
            LAST_EVENT_ID,
            LIMIT,
        ),
    ),
    ("GET", "/conversations/{id}/log"): Operation(
        "The events as stored",
        "Checked against the hash chain, in pages; at a broken link the page stops and `broken` names it.",
        {200: LogPage},
        (*CONVERSATION, "invalid_query"),
        params=(AFTER, LIMIT),
    ),
    ("GET", "/conversations/{id}/checkpoint"): Operation(
        "Checkpoint status", "The newest signed checkpoint and what it covers.", {200: CheckpointStatus}, CONVERSATION
    ),
    ("GET", "/conversations/{id}/export"): Operation(
        "Export",
        "`turnlog export`'s JSON lines (a download); 409 no_checkpoint until a checkpoint covers the conversation.",
        {200: JSONL},
        (*CONVERSATION, "no_checkpoint"),
        headers={200: {"content-disposition": "attachment; filename=<id>.jsonl"}},
    ),
    ("DELETE", "/conversations/{id}"): Operation(
        "Erase a conversation's content",
        "Crypto-shredding (GDPR art. 17): the conversation's data key is destroyed and ConversationErased "
        "records who asked, when and why (`reason`, kept in clear). Its metadata stays (times, token counts, "
        "tool names, statuses); its content reads [erased]; verify and exports still pass; no turn may start "
        "in it again. The owner, or a principal of its tenant at the server's admin level. 409 "
        "turn_in_progress (cancel it first), conversation_erased (done already), not_encrypted (written "
        "before encryption).",
        {200: Erased},
        (*CONVERSATION, "forbidden", "invalid_query", "turn_in_progress", "conversation_erased", "not_encrypted"),
        params=(Param("reason", "why, recorded with the erasure in clear (no personal data)", {"type": "string"}),),
    ),
    ("DELETE", "/conversations"): Operation(
        "Erase a subject's conversations",
        "Every conversation `subject` created in the caller's tenant, in one call (the subject itself, or a "
        "principal at the server's admin level). Those that cannot be erased now are listed in `skipped` "
        "with their error's code (turn_in_progress, not_encrypted, conversation_erased).",
        {200: SubjectErased},
        ("forbidden", "invalid_query"),
        params=(
            Param("subject", "whose conversations (required)", {"type": "string", "minLength": 1}),
            Param("reason", "why, recorded with each erasure in clear (no personal data)", {"type": "string"}),
        ),
    ),
    ("GET", "/openapi.json"): Operation("This document", "OpenAPI 3.1.", {200: Document}, auth=False, common=False),
}
