"""turnlog.projections: folds from events to outputs. SSE frames (protocol v1), message rows as
data (and the ``MessageStore`` port they are kept behind), the readable transcript. No I/O: the
SQL row store is ``turnlog.adapters.stores.SqlMessageStore``.
"""

from ._messages import MessageFold, MessageRow, fold_rows
from ._rows import MemoryMessageStore, MessageStore, catch_up, history_of, rebuild, row_text
from ._sse import MODES, Mode, SseProjector, project, stream_sse
from ._transcript import render

__all__ = [
    "MODES",
    "MemoryMessageStore",
    "MessageFold",
    "MessageRow",
    "MessageStore",
    "Mode",
    "SseProjector",
    "catch_up",
    "fold_rows",
    "history_of",
    "project",
    "rebuild",
    "render",
    "row_text",
    "stream_sse",
]
