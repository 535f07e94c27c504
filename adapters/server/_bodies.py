"""Request bodies: what a client may send, and reading it within the size limit.

Bodies are msgspec structs that forbid unknown fields, so a misspelt option is a 422 naming the
field, not a setting silently ignored. The size limit holds while reading (a chunked body has no
``Content-Length`` to trust), and nothing is decoded past it.
"""

from __future__ import annotations

from typing import TypeVar

import msgspec
from starlette.requests import Request
from turnlog.engine import RequestError

T = TypeVar("T")


class NewConversation(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    system_prompt: str | None = None
    provider: str | None = None
    model: str | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    thinking: bool = False
    title: str = ""


class NewTurn(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    message: str
    enabled_tools: list[str] | None = None
    thinking: bool | None = None
    model: str | None = None
    temperature: float | None = None
    max_tokens: int | None = None


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
