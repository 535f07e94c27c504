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
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
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
        "invalid_body": 422,
        "invalid_query": 422,
        # A turn or conversation that cannot start now.
        "turn_refused": 409,
        "turn_in_progress": 409,
        "conversation_exists": 409,
        "provider_unavailable": 409,
        # A cancel, but the conversation's last turn has ended (nothing to stop, nothing written).
        "no_turn_running": 409,
        # The service is not running (never started: a mounted app whose lifespan did not run;
        # or stopping): it refuses rather than answer from an unrecovered log.
        "not_started": 503,
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
