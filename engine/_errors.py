"""Every error turnlog raises for a user-facing condition: one tree, each with a stable ``code``.

    TurnlogError                      code
     ├── LogError                     log_error            the event log refused or could not do something
     │    ├── ConcurrencyError        concurrency_conflict a stale expected_version: nothing was written
     │    ├── SchemaError             schema_out_of_date   the schema is missing or old: run `turnlog db upgrade`
     │    └── StoreUnavailable        store_unavailable    the database cannot be reached
     ├── ReplayError                  replay_error         a log that cannot be folded
     │    ├── IllegalEvent            illegal_event        an event not legal in the turn's current state
     │    └── UnknownEventType        unknown_event_type   a payload this build cannot read
     ├── IntegrityError               integrity_broken     stored events that do not chain (changed, missing)
     ├── TurnRefused                  turn_refused         a turn or conversation cannot start (or stop)
     │    ├── ConversationNotFound    not_found            no such conversation
     │    ├── ConversationExists      conversation_exists  the id is taken
     │    ├── TurnInProgress          turn_in_progress     another turn is live
     │    ├── NoTurnRunning           no_turn_running      a cancel, but no turn of the conversation is live
     │    ├── TurnAwaitingApproval    awaiting_approval    (a TurnInProgress) the live turn is parked awaiting approval
     │    ├── NotAwaitingApproval     not_awaiting_approval  a decision, but no turn is parked awaiting one
     │    ├── UnknownCall             unknown_call         a decision for a call that awaits none
     │    ├── AlreadyDecided          already_decided      a second decision on one call
     │    ├── InvalidFork             invalid_fork         a fork's version is not a turn boundary of its parent
     │    ├── ConversationErasedError conversation_erased  its content was erased: no turn may start, nothing more to erase
     │    ├── NotEncrypted            not_encrypted        an erase of a conversation written before encryption (cannot be shredded)
     │    ├── MessageTooLarge         too_large            the user message is above the engine's limit
     │    └── ConversationTooLarge    conversation_too_large  the conversation is at its size limit: no new turn
     ├── LLMError                     llm_error            the provider failed: becomes TurnFailed(llm_error)
     │    └── MalformedStream         malformed_stream     the provider's stream is not what it should be
     ├── ConfigError                  config_invalid       a setting or argument is missing or wrong
     └── RequestError                 (its own code)       an HTTP request the service refuses

Callers catch the base class they care about; programs read ``code``, which never changes for a
condition (messages may improve). Messages name the object, its state and what to do. The HTTP
service maps codes to statuses through one table (``turnlog.adapters.server``).
"""

from __future__ import annotations

from typing import ClassVar


class TurnlogError(Exception):
    """Base class of every error turnlog raises on purpose."""

    code: ClassVar[str] = "turnlog_error"


class LogError(TurnlogError):
    code = "log_error"


class ConcurrencyError(LogError):
    code = "concurrency_conflict"

    def __init__(self, stream_id: str, expected_version: int, actual_version: int) -> None:
        self.stream_id = stream_id
        self.expected_version = expected_version
        self.actual_version = actual_version
        super().__init__(
            f"stream {stream_id!r}: expected version {expected_version} but the log is at "
            f"version {actual_version}; another writer appended first and nothing was written"
        )


class SchemaError(LogError):
    code = "schema_out_of_date"


class StoreUnavailable(LogError):
    code = "store_unavailable"


class ReplayError(TurnlogError):
    code = "replay_error"


class IllegalEvent(ReplayError):
    code = "illegal_event"

    def __init__(self, *, stream_id: str, version: int, event_type: str, state: str, why: str = "") -> None:
        self.stream_id = stream_id
        self.version = version
        self.event_type = event_type
        self.state = state
        detail = f": {why}" if why else ""
        super().__init__(
            f"stream {stream_id!r} version {version}: event {event_type} is not legal in state {state!r}{detail}"
        )


class UnknownEventType(ReplayError):
    code = "unknown_event_type"


class IntegrityError(TurnlogError):
    code = "integrity_broken"

    def __init__(self, stream_id: str, version: int, why: str) -> None:
        self.stream_id = stream_id
        self.version = version
        super().__init__(f"stream {stream_id!r}: first broken link at version {version}: {why}")


class TurnRefused(TurnlogError):
    code = "turn_refused"


class ConversationNotFound(TurnRefused):
    code = "not_found"

    def __init__(self, stream_id: str) -> None:
        self.stream_id = stream_id
        super().__init__(f"unknown conversation {stream_id!r}: create it first")


class ConversationExists(TurnRefused):
    code = "conversation_exists"

    def __init__(self, stream_id: str) -> None:
        self.stream_id = stream_id
        super().__init__(f"conversation {stream_id!r} already exists")


class TurnInProgress(TurnRefused):
    code = "turn_in_progress"

    def __init__(self, stream_id: str, turn_id: str) -> None:
        self.stream_id = stream_id
        self.turn_id = turn_id
        super().__init__(
            f"conversation {stream_id!r} already has a live turn {turn_id!r}; wait for it to end "
            f"(or run `turnlog recover` if its process died)"
        )


class NoTurnRunning(TurnRefused):
    """A cancel for a conversation whose last turn has ended (or that has none): nothing is written."""

    code = "no_turn_running"

    def __init__(self, stream_id: str, turn_id: str = "") -> None:
        self.stream_id = stream_id
        self.turn_id = turn_id
        last = f"its last turn {turn_id!r} has already ended" if turn_id else "it has no turn yet"
        super().__init__(f"conversation {stream_id!r} has no running turn to cancel: {last}")


class TurnAwaitingApproval(TurnInProgress):
    """A new turn (or a resume) in a conversation whose turn is parked awaiting approval."""

    code = "awaiting_approval"

    def __init__(self, stream_id: str, turn_id: str, calls: list[str] | None = None) -> None:
        TurnRefused.__init__(
            self,
            f"conversation {stream_id!r} has turn {turn_id!r} awaiting approval of its tool call(s)"
            f"{' ' + ', '.join(calls) if calls else ''}: approve or deny them (POST .../approvals, "
            f"`turnlog approve` / `turnlog deny`) or cancel the turn",
        )
        self.stream_id = stream_id
        self.turn_id = turn_id
        self.calls = list(calls or [])


class NotAwaitingApproval(TurnRefused):
    """A decision for a conversation whose turn is not parked awaiting approval: nothing written."""

    code = "not_awaiting_approval"

    def __init__(self, stream_id: str, why: str) -> None:
        self.stream_id = stream_id
        super().__init__(f"conversation {stream_id!r} has no turn awaiting approval: {why}")


class UnknownCall(TurnRefused):
    """A decision naming a call that is not awaiting approval in the parked turn."""

    code = "unknown_call"

    def __init__(self, stream_id: str, call_id: str, waiting: list[str]) -> None:
        self.stream_id = stream_id
        self.call_id = call_id
        super().__init__(
            f"conversation {stream_id!r}: no tool call {call_id!r} awaits approval "
            f"(awaiting: {', '.join(waiting) or 'none'})"
        )


class AlreadyDecided(TurnRefused):
    """A second decision on one call: the first stands, nothing written."""

    code = "already_decided"

    def __init__(self, stream_id: str, call_id: str, decision: str) -> None:
        self.stream_id = stream_id
        self.call_id = call_id
        super().__init__(
            f"conversation {stream_id!r}: tool call {call_id!r} was already decided ({decision}); a decision is final"
        )


class InvalidFork(TurnRefused):
    """A fork that cannot be made: the version is not a turn boundary of the parent (a turn was
    live there, or the parent has no such version), or the chain of forks is at its limit.
    Nothing is written."""

    code = "invalid_fork"

    def __init__(self, stream_id: str, why: str) -> None:
        self.stream_id = stream_id
        super().__init__(f"cannot fork conversation {stream_id!r}: {why}")


class MessageTooLarge(TurnRefused):
    """A user message above ``EngineConfig.max_message_bytes``: the turn is refused, nothing is
    written. The same code as a request body that is too large (the HTTP answer is 413)."""

    code = "too_large"

    def __init__(self, stream_id: str, size: int, limit: int) -> None:
        self.stream_id = stream_id
        self.size = size
        self.limit = limit
        super().__init__(
            f"conversation {stream_id!r}: the message is {size:,} bytes (UTF-8), above the limit of {limit:,} "
            f"(max_message_bytes); send a shorter message"
        )


class ConversationTooLarge(TurnRefused):
    """A conversation at one of its size limits (``EngineConfig.max_conversation_bytes``,
    ``max_conversation_events``): no new turn starts in it, nothing is written. ``what`` names
    the limit it reached."""

    code = "conversation_too_large"

    def __init__(self, stream_id: str, what: str, size: int, limit: int) -> None:
        self.stream_id = stream_id
        self.what = what
        self.size = size
        self.limit = limit
        if what == "max_conversation_events":
            holds = f"it holds {size:,} events, the limit is {limit:,}"
        else:
            holds = f"its messages with this one come to {size:,} bytes (UTF-8), above the limit of {limit:,}"
        super().__init__(
            f"conversation {stream_id!r} is too large for another turn: {holds} ({what}); start a new conversation"
        )


class ConversationErasedError(TurnRefused):
    """A turn (or another erase) in a conversation whose content was erased (``ConversationErased``)."""

    code = "conversation_erased"

    def __init__(self, stream_id: str) -> None:
        self.stream_id = stream_id
        super().__init__(f"conversation {stream_id!r} was erased: no turn may start in it; start a new conversation")


class NotEncrypted(TurnRefused):
    """An erase of a conversation that has no data key: it was written before encryption was on
    (or with it off), so its content is in the log in clear and cannot be crypto-shredded."""

    code = "not_encrypted"

    def __init__(self, stream_id: str, why: str = "written before encryption was on") -> None:
        self.stream_id = stream_id
        super().__init__(
            f"conversation {stream_id!r} has no data key ({why}): its content cannot be crypto-shredded; "
            "nothing was erased"
        )


class LLMError(TurnlogError):
    """The model provider failed. `message` is safe to log: adapters never put secrets in it."""

    code = "llm_error"

    def __init__(self, message: str, *, provider: str = "", status: int | None = None, retries: int = 0) -> None:
        self.provider = provider
        self.status = status
        self.retries = retries
        super().__init__(message)


class MalformedStream(LLMError):
    """A provider's stream event whose data is not the JSON chunk it should be."""

    code = "malformed_stream"


class ConfigError(TurnlogError):
    code = "config_invalid"


class RequestError(TurnlogError):
    """An HTTP request the service refuses. ``code`` is per instance (``invalid_body``,
    ``unauthorized``, ``too_large``...); the service's status table maps it to a status."""

    def __init__(self, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        self.code = code  # type: ignore[misc]
        self.message = message
        self.headers = dict(headers or {})
        super().__init__(message)
