"""Request bodies: what a client may send, and reading it within the size limit.

Bodies are msgspec structs that forbid unknown fields, so a misspelt option is a 422 naming the
field, not a setting silently ignored. Numbers are bounded by their types (msgspec constraints,
so the 422 names the field: ``Expected `float` <= 2.0 - at `$.temperature```): ``temperature``
0..2, ``max_tokens`` 1..``MAX_TOKENS_CEILING`` (a server's own cap, ``ServerConfig.max_tokens_cap``,
is lower and is the policy's to check, ``_policy``). What a client may choose at all (the model,
the system prompt, the tools) is the server's policy, not the body's. The size limit holds while
reading (a chunked body has no ``Content-Length`` to trust), and nothing is decoded past it.
"""

from __future__ import annotations

from typing import Annotated, TypeVar

import msgspec
from starlette.requests import Request
from turnlog.engine import RequestError

T = TypeVar("T")

#: The most ``max_tokens`` any body may name, whatever the server's cap (no model answers more).
MAX_TOKENS_CEILING = 1_000_000

Temperature = Annotated[float, msgspec.Meta(ge=0.0, le=2.0, description="sampling temperature, 0..2")]
MaxTokens = Annotated[
    int, msgspec.Meta(ge=1, le=MAX_TOKENS_CEILING, description="most tokens to generate (the server caps it lower)")
]


class NewConversation(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """``system_prompt`` and ``model`` only where the server's policy lets a client choose them
    (422 otherwise); the effective settings are the policy's and are recorded in
    ``ConversationCreated``."""

    system_prompt: str | None = None
    provider: str | None = None
    model: str | None = None
    temperature: Temperature | None = None
    max_tokens: MaxTokens | None = None
    thinking: bool = False
    title: str = ""


class NewTurn(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """``model`` only where the server's policy allows it; ``enabled_tools`` within the tools the
    policy allows (None: the policy's default tools). The effective settings are recorded in
    ``TurnStarted``."""

    message: str
    enabled_tools: list[str] | None = None
    thinking: bool | None = None
    model: str | None = None
    temperature: Temperature | None = None
    max_tokens: MaxTokens | None = None


async def read_body(request: Request, type_: type[T], *, limit: int, empty_ok: bool) -> T:
    """The request's JSON body as ``type_``: 413 over ``limit`` bytes, 422 if it does not fit.
    With ``empty_ok`` an empty body is ``{}``."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise RequestError("too_large", f"request body of {declared} bytes is over the {limit}-byte limit")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise RequestError("too_large", f"request body is over the {limit}-byte limit")
    if not body.strip() and empty_ok:
        body = bytearray(b"{}")
    try:
        return msgspec.json.decode(bytes(body), type=type_)
    except msgspec.ValidationError as exc:
        raise RequestError("invalid_body", f"invalid body: {exc}") from None
    except msgspec.DecodeError as exc:
        raise RequestError("invalid_body", f"the body is not valid JSON: {exc}") from None
