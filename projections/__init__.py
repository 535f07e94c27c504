"""turnlog.projections: folds from events to outputs. SSE frames (protocol v1), message rows as
data (and the ``MessageStore`` port they are kept behind), conversation summaries (and the
``ConversationIndex`` that lists them), the readable transcript. No I/O: the SQL stores are
``turnlog.adapters.stores.SqlMessageStore`` and ``SqlConversationIndex``.
"""

import inspect as _inspect

import msgspec as _msgspec

from ._conversations import (
    ConversationIndex,
    ConversationSummary,
    MemoryConversationIndex,
    SummaryFold,
    fold_summary,
)
from ._messages import MessageFold, MessageRow, fold_rows
from ._rows import MemoryMessageStore, MessageStore, catch_up, history_of, rebuild, row_text
from ._sse import MODES, Mode, SseProjector, project, stream_sse
from ._transcript import render

__all__ = [
    "MODES",
    "ConversationIndex",
    "ConversationSummary",
    "MemoryConversationIndex",
    "MemoryMessageStore",
    "MessageFold",
    "MessageRow",
    "MessageStore",
    "Mode",
    "SseProjector",
    "SummaryFold",
    "catch_up",
    "fold_rows",
    "fold_summary",
    "history_of",
    "project",
    "rebuild",
    "render",
    "row_text",
    "stream_sse",
]

# Exported classes and functions report this package as their ``__module__`` (as httpx's do), so
# reprs, tracebacks and docs name the public path. msgspec resolves a Struct's string annotations
# in its module's namespace on first use: each Struct is resolved (and cached) before the rename.
for _obj in map(globals().get, __all__):
    if isinstance(_obj, type) and issubclass(_obj, _msgspec.Struct):
        _msgspec.json.Decoder(_obj)
    if isinstance(_obj, type) or _inspect.isfunction(_obj):
        _obj.__module__ = __name__
