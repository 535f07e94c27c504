"""turnlog.adapters.llm: models behind the engine's LLM port.

``OpenAILLM`` streams any OpenAI-compatible chat-completions API (``ProviderConfig`` and its
``PRESETS`` say where and how); ``RecordedLLM`` plays raw recorded provider streams through that
same client from a local server; ``ScriptedLLM`` and ``EchoLLM`` answer without a network.
``StreamNormalizer`` (provider JSON to the engine's chunks) and ``SseEvents`` (the SSE wire
reader) are pure and usable on their own; ``LocalServer`` is the 127.0.0.1 fake provider.
"""

from ._fakeserver import LocalServer, Reply, Request, pieces
from ._normalise import StreamNormalizer
from ._openai import OpenAILLM, RetryPolicy, Timeouts, render_body
from ._providers import PRESETS, ProviderConfig
from ._recorded import RecordedLLM, Recording
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
