"""Every error turnlog raises on purpose.

    TurnlogError
     ├── LogError                  the event log refused or could not do something
     │    ├── ConcurrencyError     a stale expected_version: nothing was written
     │    ├── SchemaError          the database schema is missing or old: run `turnlog db upgrade`
     │    └── StoreUnavailable     the database cannot be reached
     ├── ReplayError               a log that cannot be folded
     │    ├── IllegalEvent         an event that is not legal in the turn's current state
     │    └── UnknownEventType     a payload whose type or schema version this build cannot read
     ├── IntegrityError            the hash chain is broken (see `verify`)
     ├── TurnRefused               a turn cannot start (another turn is live, unknown conversation)
     │    └── TurnInProgress
     ├── LLMError                  the model provider failed; becomes TurnFailed(reason=llm_error)
     └── ConfigError               a setting is missing or wrong

Callers catch the base class they care about. Messages name the object, its state and what to do.
"""

from __future__ import annotations


class TurnlogError(Exception):
    """Base class of every error turnlog raises on purpose."""


class LogError(TurnlogError):
    pass


class ConcurrencyError(LogError):
    def __init__(self, stream_id: str, expected_version: int, actual_version: int) -> None:
        self.stream_id = stream_id
        self.expected_version = expected_version
        self.actual_version = actual_version
        super().__init__(
            f"stream {stream_id!r}: expected version {expected_version} but the log is at "
            f"version {actual_version}; another writer appended first and nothing was written"
        )


class SchemaError(LogError):
    pass


class StoreUnavailable(LogError):
    pass


class ReplayError(TurnlogError):
    pass


class IllegalEvent(ReplayError):
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
    pass


class IntegrityError(TurnlogError):
    def __init__(self, stream_id: str, version: int, why: str) -> None:
        self.stream_id = stream_id
        self.version = version
        super().__init__(f"stream {stream_id!r}: first broken link at version {version}: {why}")


class TurnRefused(TurnlogError):
    pass


class TurnInProgress(TurnRefused):
    def __init__(self, stream_id: str, turn_id: str) -> None:
        self.stream_id = stream_id
        self.turn_id = turn_id
        super().__init__(
            f"conversation {stream_id!r} already has a live turn {turn_id!r}; wait for it to end "
            f"(or run `turnlog recover` if its process died)"
        )


class LLMError(TurnlogError):
    """The model provider failed. `message` is safe to log: adapters never put secrets in it."""

    def __init__(self, message: str, *, provider: str = "", status: int | None = None, retries: int = 0) -> None:
        self.provider = provider
        self.status = status
        self.retries = retries
        super().__init__(message)


class ConfigError(TurnlogError):
    pass
