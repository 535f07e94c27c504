"""Who is calling: a request becomes a ``Principal`` (tenant, subject, permission level).

Authentication is a plain callable, ``Authenticator``, that receives the Starlette ``Request`` and
returns a principal (or None: 401), sync or async. It sees the whole request, so a deployment
brings its own without subclassing anything: a bearer token (``bearer_token(request)``), a JWT, a
session cookie, a gateway's header. ``TokenAuth`` (static bearer tokens) and ``open_access`` (one
tenant, no tokens) are the two this package ships. A refused request answers 401 with
``WWW-Authenticate: Bearer``.

The principal's tenant and subject are the actor written into the events a person causes
(``ConversationCreated``, ``TurnStarted``) and decide which conversations the caller sees
(``_tenancy``); its level is the turn's tool permission level and, at ``auditor_level``, lets it
read the other subjects' conversations of its tenant.
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
    """Who is calling: the tenant whose conversations they may see, the subject (the person or
    service) acting, and their permission level."""

    tenant: str
    level: int = 1
    subject: str = ""


#: Turns a request into its principal, or None (401). May be sync or async.
Authenticator = Callable[[Request], "Principal | Awaitable[Principal | None] | None"]


def bearer_token(request: Request) -> str | None:
    """The token of the request's ``Authorization: Bearer`` header; None without one."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


class _TokenEntry(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    # The file names the subject explicitly: a forgotten subject would silently make every
    # conversation the token creates the whole tenant's. ``""`` says so on purpose.
    tenant: str
    subject: str
    level: int = 1


class TokenAuth:
    """Static bearer tokens, each mapped to a principal. Tokens are compared in constant time."""

    def __init__(self, tokens: Mapping[str, Principal]) -> None:
        if not tokens:
            raise ConfigError("TokenAuth needs at least one token")
        self._tokens = [(t.encode(), p) for t, p in tokens.items()]

    def __call__(self, request: Request) -> Principal | None:
        token = bearer_token(request)
        if token is None:
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
        """``{"TOKEN": {"tenant": "acme", "subject": "ann", "level": 2}, ...}`` (level defaults to 1)."""
        raw = json.loads(Path(path).read_text())
        if not isinstance(raw, dict):
            raise ConfigError(f"{path}: expected a JSON object of token -> {{tenant, subject, level}}")
        tokens = {}
        for i, (token, entry) in enumerate(raw.items(), 1):
            try:
                e = msgspec.convert(entry, _TokenEntry)
            except msgspec.ValidationError as exc:
                # The token itself never goes into a message: name the entry by its place.
                raise ConfigError(f"{path}: token #{i}: {exc}") from None
            tokens[token] = Principal(e.tenant, level=e.level, subject=e.subject)
        return cls(tokens)


def open_access(request: Request) -> Principal:
    """No authentication: every caller is the one tenant ``""``, subject ``""``, level 1."""
    return Principal(tenant="", level=1)


async def principal_of(request: Request, authenticate: Authenticator) -> Principal:
    """The request's principal, as the authenticator decides; 401 when it finds none."""
    found = authenticate(request)
    if isinstance(found, Awaitable):
        found = await found
    if found is None:
        raise RequestError(
            "unauthorized",
            "a valid bearer token is required" if bearer_token(request) else "missing bearer token",
            {"www-authenticate": "Bearer"},
        )
    return found
