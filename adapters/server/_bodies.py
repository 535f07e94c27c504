"""Request bodies: what a client may send, and reading it within the size limit.

Bodies are msgspec structs that forbid unknown fields, so a misspelt option is a 422 naming the
field, not a setting silently ignored. Numbers are bounded by their types (msgspec constraints,
so the 422 names the field: ``Expected `float` <= 2.0 - at `$.temperature```): ``temperature``
0..2, ``max_tokens`` 1..``MAX_TOKENS_CEILING`` (a server's own cap, ``ServerConfig.max_tokens_cap``,
is lower and is the policy's to check, ``_policy``). What a client may choose at all (the model,
the system prompt, the tools) is the server's policy, not the body's. The size limit holds while
reading (a chunked body has no ``Content-Length`` to trust), and nothing is decoded past it.

Texts that stay with a conversation are bounded too (``check_texts``): a ``title`` at most
``ServerConfig.max_title`` characters (200), one line with no control character (a NUL cannot
be stored in PostgreSQL's index of conversations), a ``system_prompt`` at most
``max_system_prompt`` (65,536), a 422 naming the field otherwise; a body's size alone let one
request record a 1 MB title.

**Deadline.** The body must arrive within ``body_timeout`` seconds of the app starting to read
it: 408 ``request_timeout`` otherwise, and the connection is closed. A client that disconnects mid-body gets nothing: ``request.stream()``
raises Starlette's ``ClientDisconnect``, which ``_errors.QuietDisconnects`` turns into one
``info`` line instead of a traceback.
"""

from __future__ import annotations

import asyncio
import re
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


#: A 408 closes the connection: the client is too slow to wait for. (A 413 does not: a client
#: still sending would get a reset instead of the answer; h11 drops the rest it sends.)
_CLOSE = {"connection": "close"}


async def read_body(request: Request, type_: type[T], *, limit: int, deadline: float | None, empty_ok: bool) -> T:
    """The request's JSON body as ``type_``: 413 over ``limit`` bytes, 408 when it has not all
    arrived after ``deadline`` seconds (None: no deadline), 422 if it does not fit. With
    ``empty_ok`` an empty body is ``{}``."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise RequestError("too_large", f"request body of {declared} bytes is over the {limit}-byte limit")
    body = bytearray()
    try:
        async with asyncio.timeout(deadline):
            async for chunk in request.stream():
                body += chunk
                if len(body) > limit:
                    raise RequestError("too_large", f"request body is over the {limit}-byte limit")
    except TimeoutError:
        raise RequestError(
            "request_timeout",
            f"the request body did not arrive within {deadline:g} s ({len(body):,} bytes came); send it at once",
            _CLOSE,
        ) from None
    if not body.strip() and empty_ok:
        body = bytearray(b"{}")
    try:
        return msgspec.json.decode(bytes(body), type=type_)
    except msgspec.ValidationError as exc:
        raise RequestError("invalid_body", f"invalid body: {exc}") from None
    except msgspec.DecodeError as exc:
        raise RequestError("invalid_body", f"the body is not valid JSON: {exc}") from None


def check_texts(body: NewConversation, *, max_title: int, max_system_prompt: int) -> NewConversation:
    """``body`` if its title and system prompt are within the server's limits (characters) and
    its title is one line of text; 422 ``invalid_body`` naming the field otherwise, worded as
    msgspec words its own."""
    for field, value, most in (
        ("title", body.title, max_title),
        ("system_prompt", body.system_prompt, max_system_prompt),
    ):
        if value is not None and len(value) > most:
            raise RequestError(
                "invalid_body",
                f"invalid body: Expected `str` of length <= {most} (the server's limit), "
                f"got {len(value):,} characters - at `$.{field}`",
            )
    if _CONTROL.search(body.title):
        # The title is a column of the conversation index: PostgreSQL's text holds no NUL, so one
        # left the conversation unlisted and its reads failing.
        raise RequestError(
            "invalid_body", "invalid body: a title is one line of text, no control characters - at `$.title`"
        )
    return body


#: C0 and C1 control characters (not format characters: an emoji's joiners are text).
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
