"""The server's policy: what a request may choose, and what the server chooses for it.

A token holder may ask; the server decides. A ``Policy`` turns (principal, request body) into a
decision, for each new conversation (``conversation``: provider, model, system prompt,
temperature, max_tokens, thinking) and for each turn (``turn``, which also sees the
conversation's settings: model, temperature, max_tokens, thinking, the tools offered). The
service applies the decision and only the decision: the engine records the effective values
(``ConversationCreated``, ``TurnStarted``: what was decided is in the log) and sends exactly
those to the provider. A policy refuses a request by raising ``RequestError`` (``invalid_body``
answers 422, ``forbidden`` 403); either method may be a coroutine (a policy may look the
principal up somewhere).

``ServerPolicy`` is the default, configured by ``ServerConfig``: the model is the provider's
configured one unless ``allowed_models`` names the one a request asks for; the system prompt is
``ServerConfig.system_prompt`` unless ``allow_system_prompt``; ``max_tokens`` at most
``max_tokens_cap``; the tools a turn enables within ``allowed_tools``, ``default_tools`` when it
names none. Subclass it to decide per principal and reuse its checks (``decide_model`` ...).
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Sequence
from typing import NoReturn, Protocol, TypeVar, runtime_checkable

import msgspec
from turnlog.engine import ConversationCreated, RequestError

from ._auth import Principal
from ._bodies import NewConversation, NewTurn
from ._config import ServerConfig

T = TypeVar("T")


class ConversationDecision(msgspec.Struct, frozen=True, kw_only=True):
    """A new conversation's effective settings, recorded in ``ConversationCreated``."""

    #: The provider (one of the service's LLMs); None: the service's first.
    provider: str | None = None
    #: None: the provider's configured model.
    model: str | None = None
    system_prompt: str | None = None
    #: None: the provider's default.
    temperature: float | None = None
    max_tokens: int | None = None
    thinking: bool = False


class TurnDecision(msgspec.Struct, frozen=True, kw_only=True):
    """A turn's effective settings, recorded in ``TurnStarted``. None: the conversation's."""

    model: str | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    thinking: bool | None = None
    #: The tools offered (the principal's permission level still filters them); None: none.
    tools: list[str] | None = None


@runtime_checkable
class Policy(Protocol):
    """Decides what a request gets. Raise ``RequestError`` to refuse; may be async."""

    def conversation(
        self, principal: Principal, body: NewConversation
    ) -> ConversationDecision | Awaitable[ConversationDecision]: ...

    def turn(
        self, principal: Principal, body: NewTurn, conversation: ConversationCreated
    ) -> TurnDecision | Awaitable[TurnDecision]: ...


class ServerPolicy:
    """The default policy: ``ServerConfig``'s ``allowed_models``, ``allow_system_prompt``,
    ``system_prompt``, ``max_tokens_cap``, ``allowed_tools`` and ``default_tools``."""

    def __init__(self, config: ServerConfig | None = None) -> None:
        self.config = config or ServerConfig()

    def conversation(self, principal: Principal, body: NewConversation) -> ConversationDecision:
        return ConversationDecision(
            provider=body.provider,
            model=self.decide_model(body.model),
            system_prompt=self.decide_system_prompt(body.system_prompt),
            temperature=body.temperature,
            max_tokens=self.decide_max_tokens(body.max_tokens),
            thinking=body.thinking,
        )

    def turn(self, principal: Principal, body: NewTurn, conversation: ConversationCreated) -> TurnDecision:
        return TurnDecision(
            model=self.decide_model(body.model),
            temperature=body.temperature,
            max_tokens=self.decide_max_tokens(body.max_tokens),
            thinking=body.thinking,
            tools=self.decide_tools(body.enabled_tools),
        )

    # -- the checks, for subclasses too -----------------------------------------------------------

    def decide_model(self, requested: str | None) -> str | None:
        """``requested`` if the configuration allows it; None (the server's choice) if absent."""
        allowed = self.config.allowed_models
        if requested is None or requested in allowed:
            return requested
        if not allowed:
            refuse(
                "model", f"the server's policy decides the model; a request may not name one (it named {requested!r})"
            )
        refuse("model", f"model {requested!r} is not one the server's policy allows ({', '.join(allowed)})")

    def decide_system_prompt(self, requested: str | None) -> str | None:
        """``requested`` if clients may set the system prompt, else the server's (422 if one was sent)."""
        if requested is None:
            return self.config.system_prompt
        if not self.config.allow_system_prompt:
            refuse("system_prompt", "the server's policy decides the system prompt; a request may not set one")
        return requested

    def decide_max_tokens(self, requested: int | None) -> int | None:
        cap = self.config.max_tokens_cap
        if requested is not None and requested > cap:
            refuse("max_tokens", f"Expected `int` <= {cap} (the server's max_tokens cap)")
        return requested

    def needs_approval(self, principal: Principal, tool: str, arguments: str) -> bool:
        """Whether a call (the tool's name, its arguments as the model sent them) of a turn the
        principal started waits for a person's decision: ``approval_tools``. Optional on a
        ``Policy`` (sync); the turn parks until someone decides (``_approvals``)."""
        return tool in self.config.approval_tools

    def decide_tools(self, requested: Sequence[str] | None) -> list[str] | None:
        """The tools a turn enables: ``requested`` within ``allowed_tools``, else the defaults."""
        if requested is None:
            return list(self.config.default_tools) or None
        allowed = self.config.allowed_tools
        if allowed is not None:
            for i, name in enumerate(requested):
                if name not in allowed:
                    refuse(
                        f"enabled_tools[{i}]",
                        f"tool {name!r} is not one the server's policy allows ({', '.join(allowed) or 'none'})",
                    )
        return list(requested)


def refuse(field: str, why: str) -> NoReturn:
    """Raise the 422 a body gets for ``field``, worded as msgspec words its own."""
    raise RequestError("invalid_body", f"invalid body: {why} - at `$.{field}`")


async def decided(value: T | Awaitable[T]) -> T:
    """A policy's answer, awaited if the policy is async."""
    return await value if inspect.isawaitable(value) else value  # type: ignore[return-value]
