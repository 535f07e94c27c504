"""turnlog.adapters.otel: conversations as OpenTelemetry GenAI spans (the ``otel`` extra).

    store.messages.observers = [OtelObserver()]            # live: each turn's spans as it ends
    await export_spans(store.log, conversation_id)         # past: the same spans, from the log

A turn is an ``invoke_agent turnlog`` span with a ``chat {model}`` child per model call and an
``execute_tool {name}`` child per tool call, with the GenAI semantic conventions' attributes and
the log's times; the conversation's text only with ``content=True``. ``TurnSpans`` is the fold
behind both (events in, ``SpanPlan`` trees out); ``json_lines_provider`` writes spans as JSON
lines (``turnlog otel export``).
"""

import inspect as _inspect

from ._console import json_lines_provider
from ._spans import AGENT_NAME, SpanPlan, TurnSpans, nanoseconds
from ._tracing import OtelObserver, emit, export_spans

__all__ = [
    "AGENT_NAME",
    "OtelObserver",
    "SpanPlan",
    "TurnSpans",
    "emit",
    "export_spans",
    "json_lines_provider",
    "nanoseconds",
]

# Exported classes and functions report this package as their ``__module__`` (as httpx's do), so
# reprs, tracebacks and docs name the public path, never a private module.
for _obj in map(globals().get, __all__):
    if isinstance(_obj, type) or _inspect.isfunction(_obj):
        _obj.__module__ = __name__
