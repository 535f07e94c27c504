"""The event catalogue, the envelope, and the one canonical encoding of both.

Events are frozen msgspec structs in one tagged union, so a payload decodes in one call with no
``if type == ...`` ladder. Each type carries a schema version (``SCHEMA``); an old payload is
upcast by the functions registered in ``UPCASTERS`` before it is converted, so old logs stay
readable. Evolution rule: add fields with defaults; never rename or retype a field.

The hash chain: ``hash = sha256(header + payload)`` where ``payload`` is the exact stored bytes of
the event and ``header`` is the JSON array ``[prev_hash, stream_id, version, turn_id, recorded_at,
type, schema]``. The global ``position`` is not hashed: the store assigns it at commit time.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, Union

import msgspec

from ._errors import UnknownEventType

GENESIS_HASH = "0" * 64


class Event(msgspec.Struct, frozen=True, tag_field="type"):
    SCHEMA: ClassVar[int] = 1


# --- value objects ---------------------------------------------------------------------------


class Usage(msgspec.Struct, frozen=True):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
            self.total_tokens + other.total_tokens,
        )


class ToolCall(msgspec.Struct, frozen=True):
    id: str
    name: str
    arguments: str


# --- conversation ----------------------------------------------------------------------------


class ForkPoint(msgspec.Struct, frozen=True):
    """Where a forked conversation branches off: its parent's event at ``version`` (a turn
    boundary), whose chain hash is ``hash``. The hash commits the fork to the parent's history up
    to there: ``verify`` checks it."""

    conversation_id: str
    version: int
    hash: str


class ConversationCreated(Event, tag="conversation_created"):
    """Opens a stream. Settings here are the defaults of every turn of the conversation."""

    system_prompt: str | None = None
    provider: str = "scripted"
    model: str = ""
    temperature: float | None = None
    max_tokens: int | None = None
    thinking: bool = False
    tenant: str = ""
    title: str = ""
    #: Who created it (the authenticated principal's subject; "" when unauthenticated).
    subject: str = ""
    #: A fork's parent and the point it branches off; unset (``msgspec.UNSET``, falsy) when not a
    #: fork, and then not written at all: a conversation that is not a fork has the bytes it had
    #: before forks existed. Its history is the parent's turns up to there, then its own.
    parent: ForkPoint | msgspec.UnsetType = msgspec.UNSET


# --- a turn ----------------------------------------------------------------------------------


class TurnStarted(Event, tag="turn_started"):
    user_message: str
    user_message_id: str
    assistant_message_id: str
    provider: str
    model: str
    temperature: float | None
    max_tokens: int | None
    thinking: bool
    tools: list[dict[str, Any]]
    system_prompt: str | None
    max_iterations: int
    permission_level: int = 1
    #: Who asked: the principal's tenant and subject ("" when the caller is not authenticated).
    tenant: str = ""
    subject: str = ""
    #: The server that runs the turn (its server id; "" for a turn run outside a server): crash
    #: recovery ends the turn at once when that server is known to be gone.
    owner: str = ""
    #: How the request repeats earlier turns: ``"text"`` (turns recorded before issue 12: each
    #: turn's user words and last answer only) or ``"full"`` (their tool calls, results and the
    #: reasoning the provider requires). Recorded so an old turn's requests rebuild exactly.
    history: str = "text"
    #: How many of the oldest earlier turns the history trim left out of this turn's requests.
    history_dropped: int = 0


class IterationStarted(Event, tag="iteration_started"):
    iteration: int
    request_sha256: str
    #: The model named in the request whose digest this is ("" in logs written before it was kept).
    model: str = ""


class ReasoningDelta(Event, tag="reasoning_delta"):
    iteration: int
    text: str


class TextDelta(Event, tag="text_delta"):
    iteration: int
    text: str


class ToolCallsRequested(Event, tag="tool_calls_requested"):
    iteration: int
    calls: list[ToolCall]
    finish_reason: str = "tool_calls"


class UsageRecorded(Event, tag="usage_recorded"):
    iteration: int
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    # The provider's own usage object (cache and reasoning token details), kept verbatim.
    raw: dict[str, Any] | None = None


class ToolCallStarted(Event, tag="tool_call_started"):
    iteration: int
    call_id: str
    name: str
    arguments: str


class ToolResultRecorded(Event, tag="tool_result_recorded"):
    iteration: int
    call_id: str
    name: str
    content: str
    success: bool
    duration_ms: float


class TurnFinalized(Event, tag="turn_finalized"):
    message_id: str
    token_count: int
    usage: Usage
    finish_reason: str = "stop"


FAILURE_REASONS = (
    "llm_error",
    "tool_error",
    "max_iterations",
    "cancelled",
    "interrupted",
    "internal",
    "too_large",
)


class TurnFailed(Event, tag="turn_failed"):
    reason: str
    message: str
    iteration: int


# --- controls: what a person does to a running turn ------------------------------------------


class CancelRequested(Event, tag="cancel_requested"):
    """Someone asked to stop the running turn (its envelope's ``turn_id`` names it); the time is
    the envelope's ``recorded_at``. It changes no state: the process running the turn learns of it
    from the log and ends the turn with ``TurnFailed(cancelled)``."""

    #: Who asked: the principal's tenant and subject ("" when the caller is not authenticated).
    tenant: str = ""
    subject: str = ""
    #: Why, in the asker's words (optional).
    reason: str = ""


# --- approvals: a person decides on a tool call before it runs ----------------------------------


class ApprovalRequested(Event, tag="approval_requested"):
    """A tool call of ``iteration`` needs a person's decision before it runs: one event per such
    call (in call order). The first one parks the turn (``awaiting_approval``): no process runs
    it, nothing waits on a socket, until every call awaiting a decision has one."""

    iteration: int
    call_id: str
    name: str
    arguments: str


class ApprovalDecided(Event, tag="approval_decided"):
    """A person's decision on a call awaiting approval: ``approve`` or ``deny``, why, and who
    decided (the principal's tenant and subject); when is the envelope's ``recorded_at``."""

    iteration: int
    call_id: str
    decision: str
    reason: str = ""
    tenant: str = ""
    subject: str = ""


APPROVAL_DECISIONS = ("approve", "deny")


class TurnResumed(Event, tag="turn_resumed"):
    """A turn taken up again from the log: after the last decision of a parked turn
    (``cause="approval"``), or by recovery after its process died (``cause="recovery"``). Names
    the server that runs it from here (``owner``) and who caused it."""

    cause: str
    owner: str = ""
    tenant: str = ""
    subject: str = ""


# --- erasure: a conversation's content forgotten on request -------------------------------------


#: What a content field reads as once its conversation was erased (its key destroyed): the
#: projections show it, and collapse a run of erased deltas into one.
ERASED_TEXT = "[erased]"


class ConversationErased(Event, tag="conversation_erased"):
    """The conversation's content was erased (crypto-shredding: its data key was destroyed; the
    stored ciphertext stays, so the hash chain still verifies). Who asked (the principal's tenant
    and subject, or an operator), and why; when is the envelope's ``recorded_at``. Legal when no
    turn is live; no turn may start after it. ``reason`` is kept in clear: it must not repeat
    the content it erases."""

    tenant: str = ""
    subject: str = ""
    reason: str = ""


AnyEvent = Union[
    ConversationCreated,
    TurnStarted,
    IterationStarted,
    ReasoningDelta,
    TextDelta,
    ToolCallsRequested,
    UsageRecorded,
    ToolCallStarted,
    ToolResultRecorded,
    TurnFinalized,
    TurnFailed,
    CancelRequested,
    ApprovalRequested,
    ApprovalDecided,
    TurnResumed,
    ConversationErased,
]

EVENT_TYPES: dict[str, type[Event]] = {cls.__struct_config__.tag: cls for cls in AnyEvent.__args__}  # type: ignore[attr-defined]
TERMINAL_TYPES = (TurnFinalized, TurnFailed)


def event_type(event: Event) -> str:
    return event.__struct_config__.tag  # type: ignore[return-value]


# --- envelope --------------------------------------------------------------------------------


class NewEvent(msgspec.Struct, frozen=True):
    """An event on its way into the log: the store gives it a version, a position and a hash."""

    event: Event
    turn_id: str = ""


class Recorded(msgspec.Struct, frozen=True, gc=False):
    """An event as the log holds it. ``gc=False``: the cycle collector does not track it (it holds
    strings, bytes and an event, never a cycle); a replay makes one per event, and tracking them
    made the collector walk every page read (bench/replay_check.py)."""

    stream_id: str
    version: int
    position: int
    turn_id: str
    recorded_at: str
    type: str
    schema: int
    prev_hash: str
    hash: str
    event: Event
    # The exact stored payload bytes: the hash covers these, not a re-encoding.
    payload: bytes


# --- codec -----------------------------------------------------------------------------------

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(AnyEvent)
_header_encoder = msgspec.json.Encoder()

# (type, from_schema) -> function taking the decoded dict of that schema and returning the dict of
# schema from_schema + 1. Registered by the module that retires a schema.
UPCASTERS: dict[tuple[str, int], Callable[[dict[str, Any]], dict[str, Any]]] = {}


def encode_event(event: Event) -> bytes:
    return _encoder.encode(event)


def decode_event(type_: str, schema: int, payload: bytes) -> Event:
    cls = EVENT_TYPES.get(type_)
    if cls is None:
        raise UnknownEventType(f"unknown event type {type_!r}; this build of turnlog is older than the log")
    if schema == cls.SCHEMA:
        return _decoder.decode(payload)
    if schema > cls.SCHEMA:
        raise UnknownEventType(
            f"event type {type_!r} has schema {schema} but this build reads up to {cls.SCHEMA}; upgrade turnlog"
        )
    data = msgspec.json.decode(payload)
    for version in range(schema, cls.SCHEMA):
        upcast = UPCASTERS.get((type_, version))
        if upcast is None:
            raise UnknownEventType(f"no upcaster for event type {type_!r} from schema {version}")
        data = upcast(data)
    return msgspec.convert(data, AnyEvent)


def chain_hash(
    prev_hash: str,
    stream_id: str,
    version: int,
    turn_id: str,
    recorded_at: str,
    type_: str,
    schema: int,
    payload: bytes,
) -> str:
    header = _header_encoder.encode([prev_hash, stream_id, version, turn_id, recorded_at, type_, schema])
    return hashlib.sha256(header + b"\n" + payload).hexdigest()


def seal(
    stream_id: str,
    events: Sequence[NewEvent],
    *,
    head_version: int,
    head_hash: str,
    first_position: int,
    recorded_at: str,
) -> list[Recorded]:
    """Give new events their versions, positions and chained hashes. Every store uses this one
    function, so every store writes the same bytes and `verify` means the same thing on each.

    Produces exactly ``chain_hash``'s bytes, but encodes the header parts that repeat within a
    batch (stream id, turn id, time, type) once per batch instead of once per event."""
    out: list[Recorded] = []
    prev = head_hash
    version = head_version
    position = first_position
    sid = _header_encoder.encode(stream_id)
    tails: dict[tuple[str, str, int], bytes] = {}
    sha256 = hashlib.sha256
    encode = _encoder.encode
    for new in events:
        version += 1
        ev = new.event
        type_ = ev.__struct_config__.tag
        schema = ev.SCHEMA
        key = (new.turn_id, type_, schema)  # type: ignore[assignment]
        tail = tails.get(key)  # type: ignore[arg-type]
        if tail is None:
            tail = tails[key] = b"," + _header_encoder.encode([new.turn_id, recorded_at, type_, schema])[1:]  # type: ignore[index]
        payload = encode(ev)
        h = sha256(b'["%s",%s,%d%s\n%s' % (prev.encode(), sid, version, tail, payload)).hexdigest()
        out.append(
            Recorded(stream_id, version, position, new.turn_id, recorded_at, type_, schema, prev, h, ev, payload)
        )  # type: ignore[arg-type]
        prev = h
        position += 1
    return out


#: (type, schema) pairs this build decodes directly, with no upcasting.
CURRENT = frozenset((tag, cls.SCHEMA) for tag, cls in EVENT_TYPES.items())


def load(
    stream_id: str,
    version: int,
    position: int,
    turn_id: str,
    recorded_at: str,
    type_: str,
    schema: int,
    prev_hash: str,
    hash_: str,
    payload: bytes,
) -> Recorded:
    """Rebuild an envelope from a stored row."""
    return Recorded(
        stream_id,
        version,
        position,
        turn_id,
        recorded_at,
        type_,
        schema,
        prev_hash,
        hash_,
        _decoder.decode(payload) if (type_, schema) in CURRENT else decode_event(type_, schema, payload),
        payload,
    )
