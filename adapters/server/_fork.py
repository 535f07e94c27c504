"""``POST /conversations/{id}/fork``: a new conversation branching off this one at a turn boundary.

Body ``{"at_version": N}``. ``N`` must be a version at which no turn of the conversation is live:
its first event (version 1: a fork with none of its turns) or a turn's last event (``finalized``
or ``failed``); else 422 ``invalid_fork`` and nothing is written. Answer 201
``{"id", "parent": {"conversation_id", "version", "hash"}}`` with a ``location`` header: the fork's
first event names the parent, the version and the parent's chain hash there, its history is the
parent's up to ``N`` (read through the link, nothing copied), and ``GET .../verify`` checks the
link. Regenerating the last answer, or editing an earlier message, is a fork at the boundary
before that turn, then a new turn (``POST /conversations/{fork}/turns``) with the same or the
edited message: the original conversation is never rewritten.

Who may fork: whoever may write the parent (its owner; an auditor reads, it does not write:
403), answered 404 for a conversation the caller may not read, as every route does
(``_tenancy``). The fork is the caller's (its tenant and subject) and takes the parent's
settings as recorded (system prompt, model, temperature, max tokens, thinking, title), which the
server's policy decided when the parent was created; each of its turns is decided by the policy
as any turn is (tools, model).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Protocol

import msgspec
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from turnlog.engine import ConversationCreated, EventLog, ForkPoint, TurnEngine

from ._auth import Authenticator, principal_of
from ._bodies import read_body
from ._config import ServerConfig
from ._tenancy import Tenancy


class Fork(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """The body of ``POST .../fork``."""

    #: The parent's version the fork branches off: a turn boundary (1: before its first turn).
    at_version: Annotated[int, msgspec.Meta(ge=1, le=2**62)]


class Forked(msgspec.Struct, frozen=True):
    """The answer of ``POST .../fork``: the new conversation and the point it branches off."""

    id: str
    parent: ForkPoint


class _Service(Protocol):
    log: EventLog
    tenancy: Tenancy
    config: ServerConfig
    authenticate: Authenticator

    def _engine_of(self, conversation_id: str, created: ConversationCreated) -> TurnEngine: ...


def routes(service_of: Callable[[Request], Any]) -> list[Route]:
    """``POST /conversations/{id}/fork``. ``service_of``: the app's way to find its started service."""

    async def fork(request: Request) -> Response:
        service: _Service = service_of(request)
        who = await principal_of(request, service.authenticate)
        parent = request.path_params["id"]
        created = await service.tenancy.created(parent, who, "write")
        cfg = service.config
        body = await read_body(request, Fork, limit=cfg.max_body, deadline=cfg.body_timeout or None, empty_ok=False)
        engine = service._engine_of(parent, created)
        conv = await engine.fork(parent, body.at_version, tenant=who.tenant, subject=who.subject)
        first = (await service.log.read(conv, 0, 1))[0].event
        assert isinstance(first, ConversationCreated) and first.parent
        location = f"{request.scope.get('root_path', '')}/conversations/{conv}"
        answer = msgspec.to_builtins(Forked(conv, first.parent))
        return JSONResponse(answer, 201, headers={"location": location})

    return [Route("/conversations/{id}/fork", fork, methods=["POST"])]
