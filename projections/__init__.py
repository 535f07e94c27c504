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


def _claim_exports(namespace: dict[str, object], names: list[str], module: str) -> None:
    """Exported classes and functions report this package as their ``__module__`` (as httpx's
    do), so reprs, tracebacks and docs name the public path, never a private module. msgspec
    resolves a Struct's string annotations in its module's namespace on first use, so each Struct
    is resolved (and cached) before it is renamed."""
    import inspect

    import msgspec

    for name in names:
        obj = namespace[name]
        if inspect.isclass(obj) and issubclass(obj, msgspec.Struct):
            msgspec.json.Decoder(obj)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            obj.__module__ = module


_claim_exports(globals(), __all__, __name__)
