"""The HTTP routes: Starlette over the turn service, with resumable SSE (the ``server`` extra).

    POST /conversations                      {"system_prompt", "provider", "model", ...} -> 201 {"id"}
    POST /conversations/{id}/turns?mode=     {"message", "enabled_tools", "thinking", ...} -> SSE (v1)
    POST /conversations/{id}/cancel          {"reason"} (optional) -> 200 {"turn_id", "version"}: stop the running turn (``_controls``)
    POST /conversations/{id}/fork            {"at_version"} -> 201 {"id", "parent"}: branch off at a turn boundary (``_fork``)
    POST /conversations/{id}/approvals?mode= {"call_id", "decision", "reason"} -> SSE: decide on a parked turn's call (``_approvals``)
    GET  /conversations/{id}/events?after=   SSE replay (or from Last-Event-ID), then live to the turn's end
    GET  /conversations?limit=&cursor=       the caller's conversations, newest first, in pages (``_listing``)
    GET  /conversations/{id}                 its settings and state (``_listing``)
    GET  /conversations/{id}/messages        the message rows, in pages (``?limit=&cursor=``; ``_listing``)
    DELETE /conversations/{id}?reason=       erase its content (crypto-shredding; ``_erase``) -> 200 {"id", "erased"}
    GET  /conversations/{id}/verify          the hash chain, recomputed
    GET  /conversations/{id}/requests        auditors: every request sent to the model, rebuilt and checked
    GET  /conversations/{id}/log             the events as stored, checked, in pages (``_auditing``)
    GET  /conversations/{id}/checkpoint      the newest signed checkpoint and what it anchors (``_auditing``)
    GET  /conversations/{id}/export          ``turnlog export``'s JSON lines, as a download (``_auditing``)
    GET  /                                   no auth: the web console's page (``_console``; its files under /console)
    GET  /usage?by=&since=&until=            the tenant's tokens and cost, grouped (``_usage``; usage level)
    GET  /health                             no auth: the store answers
    GET  /openapi.json                       no auth: the OpenAPI 3.1 document of these routes (``_openapi``)

Each endpoint is a small function that checks in a fixed order (who is calling: 401; may they see
the conversation: 404; may they do this with it: 403; the query and the body: 422, 413) and then
makes one call on the service, which it finds in ``request.app.state.service`` (503 ``not_started``
until the app's lifespan, or the host's through ``mount``, has started it). Why the service
works as it does is told where it does it: turns that belong to the log (``_service``), SSE frames
that are durable before they are visible (``_frames``), who may read, write or audit which
conversation (``_tenancy``), recovery grace (``_recovery``) and statuses by error code
(``_errors``).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import TypeAlias

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from turnlog.engine import ConfigError, RequestError, verify
from turnlog.projections import MODES, Mode

from ._approvals import Decide
from ._auditing import routes as audit_routes
from ._auth import Principal, principal_of
from ._bodies import NewConversation, NewTurn, check_texts, read_body
from ._console import routes as console_routes
from ._controls import CancelTurn
from ._erase import routes as erase_routes
from ._errors import EXCEPTION_HANDLERS, QuietDisconnects
from ._fork import routes as fork_routes
from ._frames import SSE_HEADERS
from ._listing import page_limit
from ._listing import routes as listing_routes
from ._openapi import openapi_json
from ._service import TurnService
from ._tenancy import Action
from ._usage import routes as usage_routes

ServiceSource: TypeAlias = "TurnService | Callable[[], AbstractAsyncContextManager[TurnService]]"
"""A service, or a function opening one (an ``asynccontextmanager`` that opens the store, yields
the service and closes the store): what ``create_app`` and ``mount`` run."""


def create_app(service: ServiceSource, *, manage_lifecycle: bool = True) -> Starlette:
    """The ASGI app, run on its own (``turnlog serve``). Its lifespan opens the service if given a
    function that opens one, starts it (recovery, sweeper) and stops it (running turns get
    ``shutdown_grace``); it closes only what that function opened. With ``manage_lifecycle=False``
    the caller starts and stops the service. Mounted in another app, Starlette never runs this
    app's lifespan: use ``mount(app, path, service)``. Until its service is started the app
    answers every request with 503 ``not_started``."""
    if not manage_lifecycle and not isinstance(service, TurnService):
        raise ConfigError("create_app(manage_lifecycle=False) needs a TurnService the caller starts, not a function")
    return build_app(service, lifespan=manage_lifecycle)


def build_app(source: ServiceSource, *, lifespan: bool) -> Starlette:
    app = Starlette(
        routes=_ROUTES,
        middleware=[Middleware(QuietDisconnects)],
        exception_handlers=dict(EXCEPTION_HANDLERS),
        lifespan=functools.partial(_lifespan, source=source) if lifespan else None,
    )
    app.state.service = source if isinstance(source, TurnService) else None
    return app


@contextlib.asynccontextmanager
async def _lifespan(app: Starlette, source: ServiceSource) -> AsyncIterator[None]:
    # Yields nothing: what a lifespan yields becomes every request's state.
    async with running(app, source):
        yield


@contextlib.asynccontextmanager
async def running(app: Starlette, source: ServiceSource) -> AsyncIterator[TurnService]:
    """The service of ``app`` opened (from ``source``), started, and at exit stopped (and closed)."""
    async with contextlib.AsyncExitStack() as stack:
        service = source if isinstance(source, TurnService) else await stack.enter_async_context(source())
        if not isinstance(service, TurnService):
            raise ConfigError(f"the function given for the turnlog service yielded a {type(service).__name__}")
        if service.started:
            raise ConfigError("this TurnService is already started: mount or run it once")
        app.state.service = service
        await service.start()
        stack.push_async_callback(service.stop)
        yield service


# -- what every endpoint reads first --------------------------------------------------------------

NOT_STARTED = (
    "the turnlog service is not running, so it answers nothing (an unrecovered log would refuse turns "
    "in every conversation a crash left live). Mounted in another app? Starlette does not run a mounted "
    "app's lifespan: mount it with turnlog.adapters.server.mount(app, '/path', service), which starts "
    "and stops it with the host app"
)


def _service(request: Request) -> TurnService:
    service: TurnService | None = request.app.state.service
    if service is None or not service.started:
        raise RequestError("not_started", NOT_STARTED)
    return service


async def _caller(request: Request) -> Principal:
    return await principal_of(request, _service(request).authenticate)


async def _conversation(request: Request, action: Action = "read") -> tuple[str, Principal]:
    """The path's conversation id and the caller, once the caller may ``action`` it (401, 404 or
    403 otherwise, the id checked first and the same 404 for any id the caller may not read;
    see ``_tenancy``)."""
    who = await _caller(request)
    conv = request.path_params["id"]
    await _service(request).tenancy.check(conv, who, action)
    return conv, who


def _mode(request: Request) -> Mode:
    mode = request.query_params.get("mode", "delta")
    if mode not in MODES:
        raise RequestError("invalid_query", f"mode must be 'full' or 'delta', not {mode!r}")
    return mode  # type: ignore[return-value]


def _after(request: Request) -> int:
    raw = request.headers.get("last-event-id") or request.query_params.get("after") or "0"
    try:
        after = int(raw)
    except ValueError:
        raise RequestError(
            "invalid_query", f"Last-Event-ID / after must be an event id (an integer), not {raw!r}"
        ) from None
    if after < 0:
        raise RequestError("invalid_query", f"Last-Event-ID / after must not be negative, not {after}")
    return after


# -- endpoints ------------------------------------------------------------------------------------


async def health(request: Request) -> Response:
    await _service(request).log.last("__health__")
    return JSONResponse({"ok": True})


async def create_conversation(request: Request) -> Response:
    service = _service(request)
    who = await _caller(request)
    cfg = service.config
    body = await read_body(
        request, NewConversation, limit=cfg.max_body, deadline=cfg.body_timeout or None, empty_ok=True
    )
    check_texts(body, max_title=cfg.max_title, max_system_prompt=cfg.max_system_prompt)
    conv = await service.create(who, body)
    # Under the path the app is mounted at (a host app's "/chat", a proxy's root path).
    location = f"{request.scope.get('root_path', '')}/conversations/{conv}"
    return JSONResponse({"id": conv}, 201, headers={"location": location})


async def start_turn(request: Request) -> Response:
    service = _service(request)
    conv, who = await _conversation(request, "write")
    mode = _mode(request)
    body = await read_body(
        request, NewTurn, limit=service.config.max_body, deadline=service.config.body_timeout or None, empty_ok=False
    )
    await service.frames.admit(conv, mode)  # 422 full_mode_too_large before the turn starts
    started = await service.start_turn(conv, who, body)
    headers = {**SSE_HEADERS, "turnlog-turn-id": started.turn_id, "turnlog-version": str(started.version)}
    return StreamingResponse(service.frames.turn(started, mode), media_type="text/event-stream", headers=headers)


async def cancel(request: Request) -> Response:
    service = _service(request)
    conv, who = await _conversation(request, "write")
    body = await read_body(
        request, CancelTurn, limit=service.config.max_body, deadline=service.config.body_timeout or None, empty_ok=True
    )
    cancelled = await service.controls.cancel(conv, who, body)
    return JSONResponse({"turn_id": cancelled.turn_id, "version": cancelled.version})


async def approve(request: Request) -> Response:
    """A decision on a call of the parked turn; the turn goes on here once every call is decided,
    streamed from the decision on (``_approvals``)."""
    service = _service(request)
    conv, who = await _conversation(request, "write")
    mode = _mode(request)
    cfg = service.config
    body = await read_body(request, Decide, limit=cfg.max_body, deadline=cfg.body_timeout or None, empty_ok=False)
    await service.frames.admit(conv, mode)
    decided = await service.approvals.decide(conv, who, body)
    headers = {**SSE_HEADERS, "turnlog-turn-id": decided.turn_id, "turnlog-version": str(decided.version)}
    frames = service.frames.conversation(conv, decided.version - 1, mode)
    return StreamingResponse(frames, media_type="text/event-stream", headers=headers)


async def events(request: Request) -> Response:
    conv, _ = await _conversation(request)
    mode, after = _mode(request), _after(request)
    await _service(request).frames.admit(conv, mode)  # 422 full_mode_too_large before any frame
    frames = _service(request).frames.conversation(conv, after, mode)
    return StreamingResponse(frames, media_type="text/event-stream", headers=SSE_HEADERS)


async def verify_conversation(request: Request) -> Response:
    conv, _ = await _conversation(request)
    report = await verify(_service(request).log, conv)
    return JSONResponse(
        {"ok": report.ok, "events": report.events, "broken": [str(b) for b in report.broken]},
        200 if report.ok else 409,
    )


def _limit(request: Request, most: int) -> int:
    return page_limit(request, most)


async def requests(request: Request) -> Response:
    """One page of requests: those after version ``after`` (0), at most ``limit`` of them; each
    carries its history, so a whole long conversation in one answer would grow without bound."""
    conv, who = await _conversation(request, "audit")
    service = _service(request)
    after = _after(request)
    limit = _limit(request, service.config.max_requests_page)
    page, more = await service.requests(conv, who, after=after, limit=limit)
    nxt = page[-1]["version"] if more and page else None
    return JSONResponse({"conversation_id": conv, "requests": page, "next": nxt})


_ROUTES = [
    Route("/health", health, methods=["GET"]),
    Route("/openapi.json", openapi_json, methods=["GET"]),
    Route("/conversations", create_conversation, methods=["POST"]),
    Route("/conversations/{id}/turns", start_turn, methods=["POST"]),
    Route("/conversations/{id}/cancel", cancel, methods=["POST"]),
    Route("/conversations/{id}/approvals", approve, methods=["POST"]),
    Route("/conversations/{id}/events", events, methods=["GET"]),
    Route("/conversations/{id}/verify", verify_conversation, methods=["GET"]),
    Route("/conversations/{id}/requests", requests, methods=["GET"]),
    # GET /conversations, /conversations/{id}, /conversations/{id}/messages (pages): ``_listing``.
    *listing_routes(_service),
    # POST /conversations/{id}/fork: a conversation branching off at a turn boundary (``_fork``).
    *fork_routes(_service),
    # DELETE /conversations/{id}: erasure (``_erase``).
    *erase_routes(_service),
    # GET /conversations/{id}/log, .../checkpoint, .../export: ``_auditing``.
    *audit_routes(_service),
    # GET /usage: the tenant's tokens and cost (``_usage``).
    *usage_routes(_service),
    # GET / and /console/*: the web console (``_console``), not in /openapi.json.
    *console_routes(),
]
