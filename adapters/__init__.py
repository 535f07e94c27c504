"""turnlog.adapters: the outside world (LLM providers, CLI, HTTP server).

The public names are re-exported here; the modules behind them are implementation detail.
The HTTP service lives in ``turnlog.adapters.server`` (``TurnService``, ``create_app``,
``Principal``, ``TokenAuth``, ``ServerConfig``): it needs the ``server`` extra, so it is not
imported here.
"""

from .openai import OpenAILLM, RetryPolicy, Timeouts
from .providers import PRESETS, ProviderConfig
from .recorded import RecordedLLM, Recording
from .scripted import EchoLLM, ScriptedLLM

__all__ = [
    "PRESETS",
    "EchoLLM",
    "OpenAILLM",
    "ProviderConfig",
    "RecordedLLM",
    "Recording",
    "RetryPolicy",
    "ScriptedLLM",
    "Timeouts",
]
