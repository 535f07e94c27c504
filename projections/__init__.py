"""turnlog.projections: folds from events to outputs. SSE frames (protocol v1), message rows as
data (and the ``MessageStore`` port they are kept behind), conversation summaries (and the
``ConversationIndex`` that lists them), the usage ledger (``UsageLedger``, one entry per model
call) and the price table that prices its reports, the readable transcript. No I/O: the SQL
stores are ``turnlog.adapters.stores.SqlMessageStore``, ``SqlConversationIndex`` and
``SqlUsageLedger``.
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
from ._prices import ModelPrice, PriceTable, UsageReport, UsageTotal, price_groups, usage_report
from ._rows import CommitObserver, MemoryMessageStore, MessageStore, catch_up, history_of, rebuild, row_text
from ._sse import MODES, Mode, SseProjector, project, stream_sse
from ._transcript import render, transcript_lines
from ._usage import (
    USAGE_DIMENSIONS,
    MemoryUsageLedger,
    UsageEntry,
    UsageFold,
    UsageGroup,
    UsageLedger,
    UsageQuery,
    fold_usage,
    group_entries,
    token_details,
)

__all__ = [
    "MODES",
    "USAGE_DIMENSIONS",
    "CommitObserver",
    "ConversationIndex",
    "ConversationSummary",
    "MemoryConversationIndex",
    "MemoryMessageStore",
    "MemoryUsageLedger",
    "MessageFold",
    "MessageRow",
    "MessageStore",
    "Mode",
    "ModelPrice",
    "PriceTable",
    "SseProjector",
    "SummaryFold",
    "UsageEntry",
    "UsageFold",
    "UsageGroup",
    "UsageLedger",
    "UsageQuery",
    "UsageReport",
    "UsageTotal",
    "catch_up",
    "fold_rows",
    "fold_summary",
    "fold_usage",
    "group_entries",
    "history_of",
    "price_groups",
    "project",
    "rebuild",
    "render",
    "row_text",
    "stream_sse",
    "token_details",
    "transcript_lines",
    "usage_report",
]

# Exported classes and functions report this package as their ``__module__`` (as httpx's do), so
# reprs, tracebacks and docs name the public path. msgspec resolves a Struct's string annotations
# in its module's namespace on first use: each Struct is resolved (and cached) before the rename.
for _obj in map(globals().get, __all__):
    if isinstance(_obj, type) and issubclass(_obj, _msgspec.Struct):
        _msgspec.json.Decoder(_obj)
    if isinstance(_obj, type) or _inspect.isfunction(_obj):
        _obj.__module__ = __name__
