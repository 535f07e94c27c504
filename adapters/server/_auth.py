"""Who is calling: a request's bearer token becomes a ``Principal`` (tenant, permission level).

Authentication is a plain callable, ``Authenticator``, so a deployment brings its own (JWT,
sessions, a gateway's header) without subclassing anything; ``TokenAuth`` (static tokens) and
``open_access`` (one tenant, no tokens) are the two this package ships. The principal's tenant
decides which conversations the caller sees (``_tenancy``); its level is the turn's tool
permission level.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path

import msgspec
from starlette.requests import Request
from turnlog.engine import ConfigError, RequestError


class Principal(msgspec.Struct, frozen=True):
    """Who is calling: the tenant whose conversations they see, and their tool permission level."""

    tenant: str
    level: int = 1
    subject: str = ""


#: Turns the bearer token (None when the request has none) into a principal, or None: 401.
Authenticator = Callable[[str | None], "Principal | Awaitable[Principal | None] | None"]


class TokenAuth:
    """Static bearer tokens, each mapped to a principal. Tokens are compared in constant time."""

    def __init__(self, tokens: Mapping[str, Principal]) -> None:
        if not tokens:
            raise ConfigError("TokenAuth needs at least one token")
        self._tokens = [(t.encode(), p) for t, p in tokens.items()]

    def __call__(self, token: str | None) -> Principal | None:
        if not token:
            return None
        given = token.encode()
        found = None
        for known, principal in self._tokens:
            # No early exit: the time taken does not tell how many tokens were compared.
            if hmac.compare_digest(known, given):
                found = principal
        return found

    @classmethod
    def from_file(cls, path: str | Path) -> TokenAuth:
        """``{"TOKEN": {"tenant": "acme", "level": 2}, ...}``"""
        raw = json.loads(Path(path).read_text())
        if not isinstance(raw, dict):
            raise ConfigError(f"{path}: expected a JSON object of token -> {{tenant, level}}")
        return cls({t: msgspec.convert(p, Principal) for t, p in raw.items()})


def open_access(token: str | None) -> Principal:
    """No authentication: every caller is the one tenant ``""`` with permission level 1."""
    return Principal(tenant="", level=1)


async def principal_of(request: Request, authenticate: Authenticator) -> Principal:
    """The request's principal, from its ``Authorization: Bearer`` header; 401 without one."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    given = token.strip() if scheme.lower() == "bearer" else None
    found = authenticate(given)
    if isinstance(found, Awaitable):
        found = await found
    if found is None:
        raise RequestError(
            "unauthorized",
            "a valid bearer token is required" if given else "missing bearer token",
            {"www-authenticate": "Bearer"},
        )
    return found
