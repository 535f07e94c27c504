"""turnlog.engine: the domain. Events, the turn state machine and its fold, the turn runner, tools,
the request builder, the ports (event log, LLM, messages, clock, ids), audit, and the in-memory
log as the reference store. It imports msgspec, transitions and the standard library only: the
stores, the HTTP service and the LLM clients are adapters (``turnlog.adapters``).
"""

import inspect as _inspect

import msgspec as _msgspec

from ._audit import RebuiltRequest, Recovered, RequestCheck, check_requests, rebuild_requests, recover, replay
from ._cancel import cancel_turn
from ._checkpoint import (
    DEFAULT_ORIGIN,
    Checkpoint,
    CheckpointLog,
    SignatureVerifier,
    Signer,
    checkpoint_body,
    checkpoint_if_grown,
    create_checkpoint,
)
from ._errors import (
    ConcurrencyError,
    ConfigError,
    ConversationExists,
    ConversationNotFound,
    IllegalEvent,
    IntegrityError,
    LLMError,
    LogError,
    MalformedStream,
    NoTurnRunning,
    ReplayError,
    RequestError,
    SchemaError,
    StoreUnavailable,
    TurnInProgress,
    TurnlogError,
    TurnRefused,
    UnknownEventType,
)
from ._events import (
    GENESIS_HASH,
    CancelRequested,
    ConversationCreated,
    Event,
    IterationStarted,
    NewEvent,
    ReasoningDelta,
    Recorded,
    TextDelta,
    ToolCall,
    ToolCallsRequested,
    ToolCallStarted,
    ToolResultRecorded,
    TurnFailed,
    TurnFinalized,
    TurnStarted,
    Usage,
    UsageRecorded,
    chain_hash,
    load,
    seal,
)
from ._export import EXPORT_FORMAT, ExportReport, export_conversation, verify_export
from ._llm import (
    LLM,
    ErrorChunk,
    FinishChunk,
    LLMChunk,
    LLMRequest,
    ReasoningChunk,
    TextChunk,
    ToolCallChunk,
    UsageChunk,
)
from ._log import PAGE, EventLog
from ._machine import STATES, TRANSITIONS, ConversationFold, mermaid
from ._memory import InMemoryEventLog
from ._merkle import (
    EMPTY_ROOT,
    Frontier,
    InclusionProof,
    inclusion_proof,
    merkle_leaf,
    merkle_root,
    verify_inclusion,
)
from ._ports import Clock, CommitSink, FixedClock, Ids, Messages, SequentialIds, SystemClock, UuidIds
from ._request import LogHistory, PriorMessage, PriorTurns, TurnHistory
from ._runner import EngineConfig, TurnEngine, TurnRequest
from ._tools import ToolContext, ToolRegistry, ToolResult
from ._verify import Broken, LogReport, Problem, VerifyReport, verify, verify_log

__all__ = [
    "DEFAULT_ORIGIN",
    "EMPTY_ROOT",
    "EXPORT_FORMAT",
    "GENESIS_HASH",
    "LLM",
    "PAGE",
    "STATES",
    "TRANSITIONS",
    "Broken",
    "CancelRequested",
    "Checkpoint",
    "CheckpointLog",
    "Clock",
    "CommitSink",
    "ConcurrencyError",
    "ConfigError",
    "ConversationCreated",
    "ConversationExists",
    "ConversationFold",
    "ConversationNotFound",
    "EngineConfig",
    "ErrorChunk",
    "Event",
    "EventLog",
    "ExportReport",
    "FinishChunk",
    "FixedClock",
    "Frontier",
    "Ids",
    "IllegalEvent",
    "InMemoryEventLog",
    "InclusionProof",
    "IntegrityError",
    "IterationStarted",
    "LLMChunk",
    "LLMError",
    "LLMRequest",
    "LogError",
    "LogHistory",
    "LogReport",
    "MalformedStream",
    "Messages",
    "NewEvent",
    "NoTurnRunning",
    "PriorMessage",
    "PriorTurns",
    "Problem",
    "ReasoningChunk",
    "ReasoningDelta",
    "RebuiltRequest",
    "Recorded",
    "Recovered",
    "ReplayError",
    "RequestCheck",
    "RequestError",
    "SchemaError",
    "SequentialIds",
    "SignatureVerifier",
    "Signer",
    "StoreUnavailable",
    "SystemClock",
    "TextChunk",
    "TextDelta",
    "ToolCall",
    "ToolCallChunk",
    "ToolCallStarted",
    "ToolCallsRequested",
    "ToolContext",
    "ToolRegistry",
    "ToolResult",
    "ToolResultRecorded",
    "TurnEngine",
    "TurnFailed",
    "TurnFinalized",
    "TurnHistory",
    "TurnInProgress",
    "TurnRefused",
    "TurnRequest",
    "TurnStarted",
    "TurnlogError",
    "UnknownEventType",
    "Usage",
    "UsageChunk",
    "UsageRecorded",
    "UuidIds",
    "VerifyReport",
    "cancel_turn",
    "chain_hash",
    "check_requests",
    "checkpoint_body",
    "checkpoint_if_grown",
    "create_checkpoint",
    "export_conversation",
    "inclusion_proof",
    "load",
    "merkle_leaf",
    "merkle_root",
    "mermaid",
    "rebuild_requests",
    "recover",
    "replay",
    "seal",
    "verify",
    "verify_export",
    "verify_inclusion",
    "verify_log",
]

# Exported classes and functions report this package as their ``__module__`` (as httpx's do), so
# reprs, tracebacks and docs name the public path. msgspec resolves a Struct's string annotations
# in its module's namespace on first use: each Struct is resolved (and cached) before the rename.
for _obj in map(globals().get, __all__):
    if isinstance(_obj, type) and issubclass(_obj, _msgspec.Struct):
        _msgspec.json.Decoder(_obj)
    if isinstance(_obj, type) or _inspect.isfunction(_obj):
        _obj.__module__ = __name__
