"""Errors over HTTP: one table from an error's stable ``code`` to its status, one JSON shape.

Every error turnlog raises on purpose is a ``TurnlogError`` whose ``code`` never changes for a
condition (``turnlog.engine``); the service's own refusals are ``RequestError`` with a code per
instance. So the HTTP layer needs no list of exception classes: it answers any of them with

    {"error": {"status": 404, "code": "not_found", "message": "..."}}

and the status comes from ``ERROR_STATUS``. A code the table does not know takes its base
class's status (a new kind of ``LogError`` is still 503), and 500 at the root: an unknown
condition is the server's fault until the table says otherwise. Starlette's own
``HTTPException`` (unknown route, wrong method) keeps its status, with code ``http_error``.
5xx answers are logged with their route: the client gets the message, the operator the context.

A client that disconnects before its request body has arrived is answered nothing and costs one
``info`` line (``QuietDisconnects``): Starlette raises ``ClientDisconnect`` from
``request.stream()``, which no handler may answer (there is no one to answer), so it used to
reach uvicorn as "Exception in ASGI application" with a full traceback per connection.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send
from turnlog.engine import RequestError, TurnlogError

logger = logging.getLogger("turnlog.server")

#: The HTTP status of each error code.
ERROR_STATUS: Mapping[str, int] = MappingProxyType(
    {
        # The request itself (RequestError).
        "unauthorized": 401,
        # A conversation the caller may read but not act on so (an auditor starting a turn).
        "forbidden": 403,
        # Also ConversationNotFound, and a conversation the caller may not read (another tenant's,
        # another subject's): ids cannot be probed.
        "not_found": 404,
        "too_large": 413,
        # The body did not all arrive within ServerConfig.body_timeout (the connection is closed).
        "request_timeout": 408,
        # What uvicorn would answer in plain text (``turnlog serve``, ``_connections``): a request
        # h11 cannot parse (a malformed request line or header, e.g. Content-Length).
        "invalid_http": 400,
        "invalid_body": 422,
        "invalid_query": 422,
        # A turn or conversation that cannot start now.
        "turn_refused": 409,
        "turn_in_progress": 409,
        "conversation_exists": 409,
        "provider_unavailable": 409,
        # A cancel, but the conversation's last turn has ended (nothing to stop, nothing written).
        "no_turn_running": 409,
        # Approvals (``_approvals``): a new turn while one is parked; a decision with no parked
        # turn, or on a call already decided (nothing written); a call that awaits no decision.
        "awaiting_approval": 409,
        "not_awaiting_approval": 409,
        "already_decided": 409,
        "unknown_call": 422,
        # A fork at a version that is not a turn boundary of its parent (``_fork``).
        "invalid_fork": 422,
        # Erasure (``_erase``): a turn in an erased conversation, or a second erase; an erase of
        # a conversation written before encryption (no key: cannot be crypto-shredded).
        "conversation_erased": 409,
        "not_encrypted": 409,
        # An export of a conversation no signed checkpoint covers yet (``_auditing``).
        "no_checkpoint": 409,
        # A new turn in a conversation at its size limit (EngineConfig); nothing written.
        "conversation_too_large": 413,
        # ?mode=full on a conversation with more events than ServerConfig.max_full_mode_events.
        "full_mode_too_large": 422,
        # The service is not running (never started: a mounted app whose lifespan did not run;
        # or stopping): it refuses rather than answer from an unrecovered log.
        "not_started": 503,
        # ``turnlog serve``: a request on a connection beyond ServerConfig.max_connections.
        "server_busy": 503,
        # The log refused or could not be reached: try again later (or on another server).
        "log_error": 503,
        "concurrency_conflict": 503,
        "schema_out_of_date": 503,
        "store_unavailable": 503,
        # A log that cannot be read back, a provider or a setting that failed: never guess.
        "replay_error": 500,
        "illegal_event": 500,
        "unknown_event_type": 500,
        "integrity_broken": 500,
        "llm_error": 500,
        "malformed_stream": 500,
        "config_invalid": 500,
        "turnlog_error": 500,
    }
)


def status_of(exc: TurnlogError) -> int:
    """The status of the error's code, else of its nearest base class's code, else 500."""
    codes = [exc.code, *(cls.__dict__["code"] for cls in type(exc).__mro__ if "code" in cls.__dict__)]
    return next((ERROR_STATUS[code] for code in codes if code in ERROR_STATUS), 500)


def error_response(status: int, code: str, message: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"status": status, "code": code, "message": message}}, status, headers=headers)


async def turnlog_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, TurnlogError)
    status = status_of(exc)
    if status >= 500:
        logger.error("%s %s: %s", request.method, request.url.path, exc)
    headers = exc.headers if isinstance(exc, RequestError) else None
    return error_response(status, exc.code, str(exc), headers)


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return error_response(exc.status_code, "http_error", exc.detail, exc.headers)


#: Starlette's ``exception_handlers``: every turnlog error by its code, and Starlette's own.
EXCEPTION_HANDLERS: Mapping[Any, Any] = MappingProxyType({TurnlogError: turnlog_error, HTTPException: http_error})


class QuietDisconnects:
    """ASGI middleware: a request whose client went away mid-body ends with one ``info`` line
    and no answer (uvicorn sends nothing to a closed connection, and logs nothing when the app
    returns without answering one)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self.app(scope, receive, send)
        except ClientDisconnect:
            client = scope.get("client") or ("?", 0)
            logger.info(
                "%s %s: client %s:%s disconnected before its request body arrived",
                scope.get("method"),
                scope.get("path"),
                *client,
            )
