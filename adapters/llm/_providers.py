"""Provider configurations: where an OpenAI-compatible server is and how to talk to it.

A ``ProviderConfig`` is the seed's per-conversation provider row (base URL, default model, max
tokens, API key) minus the key itself: it names where the key comes from (an environment variable
or a resolver callable) and the key is read only when a request is sent, straight into the auth
header. So a config can be printed, logged or recorded without leaking anything; the event log
records only ``name`` and the model.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from turnlog.engine import ConfigError


@dataclass(frozen=True)
class ProviderConfig:
    #: Recorded in the log (``TurnStarted.provider``) and named in every error message.
    name: str
    #: ``https://host/v1``: requests go to ``{base_url}/chat/completions``.
    base_url: str
    #: Used when neither the conversation nor the turn names a model.
    model: str = ""
    #: Sent as ``max_tokens`` when the turn does not set it; None sends nothing.
    max_tokens: int | None = None
    #: Environment variable holding the API key (None: no key, e.g. a local server).
    api_key_env: str | None = None
    #: Or a callable returning the key (a secrets manager); takes precedence over the variable.
    api_key_resolver: Callable[[], str | None] | None = field(default=None, repr=False)
    #: The provider requires the reasoning streamed before tool calls to be sent back with them
    #: (``reasoning_content`` on each assistant message that made tool calls, in its own turn's
    #: tool loop and in every later turn's request): DeepSeek's thinking mode (400 without it), and
    #: any provider whose docs ask the same. A plain answer's reasoning is never sent back.
    #: OpenRouter's ``reasoning_details`` are not round-tripped: their signatures are not recorded.
    round_trip_reasoning: bool = False
    #: Body fields merged in when the turn asks for thinking, and when it does not.
    thinking_on: Mapping[str, Any] = field(default_factory=dict)
    thinking_off: Mapping[str, Any] = field(default_factory=dict)
    #: Ask for a final usage chunk (``stream_options.include_usage``); a few servers reject it.
    include_usage: bool = True
    #: Header carrying the key and its prefix (Azure: ``api-key`` with no prefix).
    auth_header: str = "Authorization"
    auth_scheme: str = "Bearer"
    #: Extra non-secret headers and query parameters (Azure's ``api-version``).
    headers: Mapping[str, str] = field(default_factory=dict)
    query: Mapping[str, str] = field(default_factory=dict)

    def api_key(self) -> str | None:
        """The key, read now. Never store it anywhere else."""
        if self.api_key_resolver is not None:
            return self.api_key_resolver() or None
        if self.api_key_env:
            return os.environ.get(self.api_key_env) or None
        return None

    def auth_headers(self) -> dict[str, str]:
        key = self.api_key()
        if not key:
            return {}
        return {self.auth_header: f"{self.auth_scheme} {key}" if self.auth_scheme else key}

    @property
    def url(self) -> str:
        return self.base_url.rstrip("/") + "/chat/completions"

    def with_(self, **changes: Any) -> ProviderConfig:
        return replace(self, **changes)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ProviderConfig:
        """The provider of ``turnlog chat`` and ``turnlog demo --llm openai``:

        - ``TURNLOG_PROVIDER``: a preset name (default ``openai``);
        - ``OPENAI_BASE_URL``: overrides the preset's URL (any OpenAI-compatible server);
        - ``OPENAI_API_KEY``: the key (read at request time, never copied);
        - ``TURNLOG_MODEL``: the model (default: the preset's).
        """
        env = os.environ if env is None else env
        name = env.get("TURNLOG_PROVIDER", "openai")
        if name not in PRESETS:
            raise ConfigError(f"TURNLOG_PROVIDER={name!r} is not a known provider; pick one of {', '.join(PRESETS)}")
        config = PRESETS[name]
        preset_env = config.api_key_env

        def resolve() -> str | None:
            # Read at request time from the live mapping: the key is never copied into the config.
            return env.get("OPENAI_API_KEY") or (env.get(preset_env) if preset_env else None)

        changes: dict[str, Any] = {"api_key_resolver": resolve}
        if env.get("OPENAI_BASE_URL"):
            changes["base_url"] = env["OPENAI_BASE_URL"]
        if env.get("TURNLOG_MODEL"):
            changes["model"] = env["TURNLOG_MODEL"]
        config = replace(config, **changes)
        if not config.model:
            raise ConfigError(f"provider {config.name!r} has no default model: set TURNLOG_MODEL")
        return config


def _preset(name: str, base_url: str, model: str, key_env: str | None, **kw: Any) -> ProviderConfig:
    return ProviderConfig(name=name, base_url=base_url, model=model, api_key_env=key_env, **kw)


#: Named presets. Thinking switches are the providers' documented request fields.
PRESETS: dict[str, ProviderConfig] = {
    "openai": _preset("openai", "https://api.openai.com/v1", "gpt-4o-mini", "OPENAI_API_KEY"),
    "deepseek": _preset(
        "deepseek",
        "https://api.deepseek.com",
        "deepseek-chat",
        "DEEPSEEK_API_KEY",
        round_trip_reasoning=True,
        thinking_on={"thinking": {"type": "enabled"}},
        thinking_off={"thinking": {"type": "disabled"}},
    ),
    "openrouter": _preset(
        "openrouter",
        "https://openrouter.ai/api/v1",
        "openai/gpt-4o-mini",
        "OPENROUTER_API_KEY",
        thinking_on={"reasoning": {"enabled": True}},
    ),
    "groq": _preset(
        "groq",
        "https://api.groq.com/openai/v1",
        "llama-3.3-70b-versatile",
        "GROQ_API_KEY",
        thinking_on={"reasoning_format": "parsed"},
    ),
    "mistral": _preset(
        "mistral", "https://api.mistral.ai/v1", "mistral-small-latest", "MISTRAL_API_KEY", include_usage=False
    ),
    # Ollama's /v1 turns thinking off only when told (reasoning_effort "none"), so both are sent.
    "ollama": _preset(
        "ollama",
        "http://127.0.0.1:11434/v1",
        "llama3.2",
        None,
        thinking_on={"reasoning_effort": "medium"},
        thinking_off={"reasoning_effort": "none"},
    ),
    "vllm": _preset(
        "vllm",
        "http://127.0.0.1:8000/v1",
        "",
        None,
        thinking_on={"chat_template_kwargs": {"enable_thinking": True}},
        thinking_off={"chat_template_kwargs": {"enable_thinking": False}},
    ),
}
