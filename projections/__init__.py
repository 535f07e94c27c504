"""turnlog.projections: pure folds over the event log (SSE frames, message rows, transcript, history)."""

# The engine imports projections and projections import the engine's events: whichever package
# is imported first, let the engine finish initialising before any projection module loads.
import turnlog.engine  # noqa: F401  (isort: skip)

from .history import TurnHistory, prior_messages
from .messages import MessageFold, MessageRow, fold_rows
from .rowstore import MemoryMessageStore, MessageStore, SqlMessageStore, catch_up, rebuild
from .sse import SseProjector, project
from .transcript import render

__all__ = [
    "MemoryMessageStore",
    "MessageFold",
    "MessageRow",
    "MessageStore",
    "SqlMessageStore",
    "SseProjector",
    "TurnHistory",
    "catch_up",
    "fold_rows",
    "prior_messages",
    "project",
    "rebuild",
    "render",
]
