"""turnlog.adapters.llm: models behind the engine's LLM port.

``OpenAILLM`` streams any OpenAI-compatible chat-completions API (``ProviderConfig`` and its
``PRESETS`` say where and how); ``RecordedLLM`` plays raw recorded provider streams through that
same client from a local server, and ``RecordingLLM`` records them from any LLM it wraps;
``ScriptedLLM`` and ``EchoLLM`` answer without a network.
``StreamNormalizer`` (provider JSON to the engine's chunks) and ``SseEvents`` (the SSE wire
reader) are pure and usable on their own; ``LocalServer`` is the 127.0.0.1 fake provider.
"""

import inspect as _inspect

import msgspec as _msgspec

from ._fakeserver import LocalServer, Reply, Request, pieces
from ._normalise import StreamNormalizer
from ._openai import OpenAILLM, RetryPolicy, Timeouts, render_body
from ._providers import PRESETS, ProviderConfig
from ._recorded import RecordedLLM, Recording
from ._recording import RecordingLLM
from ._scripted import EchoLLM, ScriptedLLM
from ._wire import SseEvents

__all__ = [
    "PRESETS",
    "EchoLLM",
    "LocalServer",
    "OpenAILLM",
    "ProviderConfig",
    "RecordedLLM",
    "Recording",
    "RecordingLLM",
    "Reply",
    "Request",
    "RetryPolicy",
    "ScriptedLLM",
    "SseEvents",
    "StreamNormalizer",
    "Timeouts",
    "pieces",
    "render_body",
]

# Exported classes and functions report this package as their ``__module__`` (as httpx's do), so
# reprs, tracebacks and docs name the public path. msgspec resolves a Struct's string annotations
# in its module's namespace on first use: each Struct is resolved (and cached) before the rename.
for _obj in map(globals().get, __all__):
    if isinstance(_obj, type) and issubclass(_obj, _msgspec.Struct):
        _msgspec.json.Decoder(_obj)
    if isinstance(_obj, type) or _inspect.isfunction(_obj):
        _obj.__module__ = __name__
