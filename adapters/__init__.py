"""turnlog.adapters: the outside world (LLM providers, CLI, HTTP server).

The public names are re-exported here; the modules behind them are implementation detail.
"""

from .openai import OpenAILLM, RetryPolicy, Timeouts
from .providers import PRESETS, ProviderConfig
from .recorded import RecordedLLM, Recording
from .scripted import ScriptedLLM

__all__ = [
    "PRESETS",
    "OpenAILLM",
    "ProviderConfig",
    "RecordedLLM",
    "Recording",
    "RetryPolicy",
    "ScriptedLLM",
    "Timeouts",
]
