"""The HTTP service: Starlette over the event log, with resumable SSE (the ``server`` extra).

    POST /conversations                      {"system_prompt", "provider", "model", ...} -> 201 {"id"}
    POST /conversations/{id}/turns?mode=     {"message", "enabled_tools", "thinking", ...} -> SSE (v1)
    GET  /conversations/{id}/events?after=   SSE replay (or from Last-Event-ID), then live to the turn's end
    GET  /conversations/{id}/messages        the message rows
    GET  /conversations/{id}/verify          the hash chain, recomputed
    GET  /health                             no auth: the store answers

Why it is built this way:
- **The turn is the log's, not the socket's.** ``POST .../turns`` starts the turn (so a refusal is a
  plain 409/404 JSON answer), then hands it to a task the service owns. The response streams frames
  by following the log, like any other reader: a client that disconnects only stops its reader,
  and resumes with ``Last-Event-ID`` on this server or any other one over the same log. Frames
  are read from the log after commit, so they are durable before they are visible.
- **Every SSE stream is a projection of the log**: ``id:`` is the event's version, so resuming
  after id N yields exactly the frames a full replay has after N. Replays (``GET .../events``) are
  checked by the state machine on the way out: a server never serves a forged log.
- **Tenancy** is part of the conversation's first event (``ConversationCreated.tenant``). A
  conversation of another tenant answers 404 on every endpoint, exactly like one that does not
  exist, so ids cannot be probed. The principal's permission level is the turn's, so it reaches
  the tool permission check.
- **Crash recovery**: at start the service fails (``interrupted``) every turn whose newest event is
  older than ``recover_grace`` seconds, then sweeps again every ``recover_grace / 2`` seconds, so
  a turn orphaned by a dead server ends on whichever server is up. A turn this process runs is
  never swept; a live turn on another server is spared while it keeps writing (grace longer than
  its longest silence: tool timeout, the model's idle timeout).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from turnlog.engine import (
    LLM,
    Clock,
    ConfigError,
    ConversationCreated,
    ConversationFold,
    EngineConfig,
    EventLog,
    Ids,
    LogError,
    Recorded,
    ReplayError,
    SystemClock,
    ToolRegistry,
    TurnEngine,
    TurnFailed,
    TurnFinalized,
    TurnInProgress,
    TurnlogError,
    TurnRefused,
    TurnRequest,
    TurnStarted,
    UuidIds,
    recover,
    verify,
)
from turnlog.projections import MODES, MessageStore, Mode, SseProjector, catch_up

logger = logging.getLogger("turnlog.server")

_TERMINAL = (TurnFinalized, TurnFailed)
#: Replayed frames are sent in writes of about this many bytes, not one write per frame.
_REPLAY_WRITE = 64 * 1024
_SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}


# -- auth -----------------------------------------------------------------------------------------


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


# -- request bodies -------------------------------------------------------------------------------


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


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})


def _error_response(status: int, code: str, message: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"status": status, "code": code, "message": message}}, status, headers=headers)


@dataclass(frozen=True)
class ServerConfig:
    #: Largest request body accepted (413 above it).
    max_body: int = 1 << 20
    #: Seconds of silence after which an SSE stream sends a ``: keep-alive`` comment.
    heartbeat: float = 15.0
    #: The ``retry:`` hint sent first on every SSE stream (milliseconds).
    retry_ms: int = 2000
    #: Turns whose newest event is older than this are recovered as interrupted (see the module
    #: docstring); 0 recovers every live turn at start and disables the periodic sweep.
    recover_grace: float = 60.0
    #: On shutdown, running turns get this long to end before they are cancelled (recorded as
    #: TurnFailed(cancelled), partial output kept).
    shutdown_grace: float = 10.0
    #: Conversations whose settings (first event: tenant, provider) are kept in memory; that
    #: event never changes, so the cache needs no invalidation.
    conversation_cache: int = 100_000


# -- the service ----------------------------------------------------------------------------------


class TurnService:
    """What the HTTP layer drives: engines per provider, the turns this process runs, recovery."""

    def __init__(
        self,
        log: EventLog,
        messages: MessageStore,
        llms: LLM | Mapping[str, LLM],
        *,
        tools: ToolRegistry | None = None,
        authenticate: Authenticator = open_access,
        config: ServerConfig | None = None,
        engine_config: EngineConfig | None = None,
        clock: Clock | None = None,
        ids: Ids | None = None,
    ) -> None:
        self.log = log
        self.messages = messages
        self.config = config or ServerConfig()
        self.authenticate = authenticate
        self.clock = clock or SystemClock()
        providers = {llms.provider: llms} if isinstance(llms, LLM) else dict(llms)
        if not providers:
            raise ConfigError("the service needs at least one LLM")
        self.default_provider = next(iter(providers))
        self.engines = {
            name: TurnEngine(
                log, llm, tools=tools, messages=messages, clock=self.clock, ids=ids or UuidIds(), config=engine_config
            )
            for name, llm in providers.items()
        }
        #: conversation id -> the task running its turn in this process.
        self.running: dict[str, asyncio.Task[None]] = {}
        self._created: dict[str, ConversationCreated] = {}
        self._sweeper: asyncio.Task[None] | None = None

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        done = await recover(self.log, clock=self.clock, older_than=self.config.recover_grace, messages=self.messages)
        for r in done:
            logger.warning("recovered turn %s of %s as interrupted (version %d)", r.turn_id, r.stream_id, r.version)
        if self.config.recover_grace > 0:
            self._sweeper = asyncio.get_running_loop().create_task(self._sweep())

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(self.config.recover_grace / 2)
            try:
                # Candidates from the rows (a turn's user row is "live" until it ends), not a
                # question to the log per conversation: the sweep costs O(live turns).
                try:
                    candidates: list[str] | None = await self.messages.live_conversations()
                except NotImplementedError:
                    candidates = None
                done = await recover(
                    self.log,
                    clock=self.clock,
                    older_than=self.config.recover_grace,
                    messages=self.messages,
                    skip=set(self.running),
                    streams=candidates,
                )
            except LogError as exc:
                logger.warning("recovery sweep failed (retrying later): %s", exc)
                continue
            for r in done:
                logger.warning("recovered orphaned turn %s of %s as interrupted", r.turn_id, r.stream_id)

    async def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        tasks = list(self.running.values())
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=self.config.shutdown_grace)
            for task in pending:
                task.cancel()
            # Each cancelled turn records TurnFailed(cancelled) before its task ends.
            await asyncio.gather(*pending, return_exceptions=True)

    # -- conversations ------------------------------------------------------------------------

    async def created(self, conversation_id: str, principal: Principal) -> ConversationCreated:
        """The conversation's settings; 404 unless it exists and belongs to the principal's tenant."""
        created = self._created.get(conversation_id)
        if created is None:
            first = await self.log.read(conversation_id, 0, 1)
            if first and isinstance(first[0].event, ConversationCreated):
                created = first[0].event
                self._remember(conversation_id, created)
        if created is None or created.tenant != principal.tenant:
            # Same answer for "not yours" as for "not there": ids cannot be probed.
            raise ApiError(404, "not_found", f"no conversation {conversation_id!r}")
        return created

    def _remember(self, conversation_id: str, created: ConversationCreated) -> None:
        # A conversation's first event never changes: safe to cache for ever (bounded, FIFO).
        if len(self._created) >= self.config.conversation_cache:
            self._created.pop(next(iter(self._created)))
        self._created[conversation_id] = created

    async def create(self, principal: Principal, body: NewConversation) -> str:
        provider = body.provider or self.default_provider
        engine = self.engines.get(provider)
        if engine is None:
            raise ApiError(
                422, "invalid_body", f"unknown provider {provider!r}; this server has {', '.join(self.engines)}"
            )
        conv = await engine.create_conversation(
            system_prompt=body.system_prompt,
            model=body.model or getattr(getattr(engine.llm, "config", None), "model", "") or "",
            temperature=body.temperature,
            max_tokens=body.max_tokens,
            thinking=body.thinking,
            tenant=principal.tenant,
            title=body.title,
        )
        return conv

    async def start_turn(self, conversation_id: str, principal: Principal, body: NewTurn) -> Recorded:
        """Start a turn and hand it to a task of the service. Returns its TurnStarted."""
        created = await self.created(conversation_id, principal)
        # No shortcut on self.running: a turn's task outlives its last commit by a moment, and
        # the log (the engine's refusal, across servers too) is the one judge of "running".
        engine = self.engines.get(created.provider)
        if engine is None:
            raise ApiError(
                409,
                "provider_unavailable",
                f"conversation {conversation_id!r} uses provider {created.provider!r}, which this server "
                f"does not have ({', '.join(self.engines)})",
            )
        request = TurnRequest(
            body.message,
            enabled_tools=body.enabled_tools,
            thinking=body.thinking,
            model=body.model,
            temperature=body.temperature,
            max_tokens=body.max_tokens,
            permission_level=principal.level,
            user_id=principal.subject or None,
        )
        turn = engine.run_turn(conversation_id, request)
        # The first step writes TurnStarted or refuses (TurnInProgress, also across servers).
        started = await turn.__anext__()
        assert isinstance(started.event, TurnStarted)
        task = asyncio.get_running_loop().create_task(self._drive(conversation_id, turn))
        self.running[conversation_id] = task
        return started

    async def _drive(self, conversation_id: str, turn: AsyncIterator[Recorded]) -> None:
        try:
            async for _ in turn:
                pass
        except LogError as exc:
            # The log itself failed (or another server recovered this turn): nothing more can be
            # recorded here; readers see the log as it is.
            logger.error("turn of %s stopped: %s", conversation_id, exc)
        finally:
            # A next turn of this conversation may already have started (its events are in the
            # log as soon as ours ended): forget only our own task.
            if self.running.get(conversation_id) is asyncio.current_task():
                del self.running[conversation_id]

    # -- reading ------------------------------------------------------------------------------

    async def frames(self, conversation_id: str, after: int, mode: Mode) -> AsyncIterator[bytes]:
        """The conversation's frames after version ``after``: replayed (and checked by the state
        machine), then followed live until the running turn ends. Ends at once when no turn runs."""
        yield b"retry: %d\n\n" % self.config.retry_ms
        projector = SseProjector(mode)
        fold = ConversationFold()
        live = False
        buffer: list[bytes] = []
        size = 0
        try:
            async for rec in self.log.iter_stream(conversation_id):
                fold.apply(rec)
                frame = projector.frame(rec)
                if frame is not None and rec.version > after:
                    buffer.append(frame)
                    size += len(frame)
                    if size >= _REPLAY_WRITE:
                        yield b"".join(buffer)
                        buffer, size = [], 0
                live = type(rec.event) is TurnStarted or (live and type(rec.event) not in _TERMINAL)
            if buffer:
                yield b"".join(buffer)
            if live:
                async for chunk in self._follow(conversation_id, fold.version, projector, fold, after):
                    yield chunk
        except ReplayError as exc:
            # The headers are gone: the stream can only end. It ends without a terminal frame,
            # so the client knows it did not get the whole turn; the operator gets the reason.
            logger.error("conversation %s cannot be replayed: %s", conversation_id, exc)

    async def turn_frames(self, started: Recorded, mode: Mode) -> AsyncIterator[bytes]:
        """The frames of one turn from its start, live, until it ends."""
        yield b"retry: %d\n\n" % self.config.retry_ms
        projector = SseProjector(mode)
        projector.frame(started)
        async for chunk in self._follow(started.stream_id, started.version, projector, None, started.version):
            yield chunk

    async def _follow(
        self,
        conversation_id: str,
        start: int,
        projector: SseProjector,
        fold: ConversationFold | None,
        after: int,
    ) -> AsyncIterator[bytes]:
        """Follow the log from version ``start``; frames of versions up to ``after`` are folded, not sent."""
        frame = projector.frame
        # aclosing: the follower is released the moment the turn ends or the client goes.
        async with contextlib.aclosing(self.log.follow(conversation_id, start, idle=self.config.heartbeat)) as pages:
            async for page in pages:
                if not page:
                    yield b": keep-alive\n\n"
                    continue
                out = []
                end = False
                for rec in page:
                    if fold is not None:
                        fold.apply(rec)
                    f = frame(rec)
                    if f is not None and rec.version > after:
                        out.append(f)
                    if type(rec.event) in _TERMINAL:
                        end = True
                        break
                # One write per committed batch: a 256-delta batch is one send, not 256.
                if out:
                    yield b"".join(out)
                if end:
                    return

    async def rows(self, conversation_id: str) -> list[dict[str, Any]]:
        last = await self.log.last(conversation_id)
        if (
            last is not None
            and conversation_id not in self.running
            and type(last.event) in (*_TERMINAL, ConversationCreated)
            and await self.messages.applied_version(conversation_id) < last.version
        ):
            # A crash between a turn's last commit and its rows: the rows are a projection, so
            # they are recomputed from the log before they are served.
            await catch_up(self.log, self.messages, conversation_id)
        out = []
        for row in await self.messages.rows(conversation_id):
            item = msgspec.to_builtins(row)
            item["content"] = json.loads(row.content)
            item["usage"] = json.loads(row.usage) if row.usage else None
            out.append(item)
        return out


# -- HTTP -----------------------------------------------------------------------------------------


def _mode(request: Request) -> Mode:
    mode = request.query_params.get("mode", "delta")
    if mode not in MODES:
        raise ApiError(422, "invalid_query", f"mode must be 'full' or 'delta', not {mode!r}")
    return mode  # type: ignore[return-value]


def _after(request: Request) -> int:
    raw = request.headers.get("last-event-id") or request.query_params.get("after") or "0"
    try:
        after = int(raw)
    except ValueError:
        raise ApiError(
            422, "invalid_query", f"Last-Event-ID / after must be an event id (an integer), not {raw!r}"
        ) from None
    if after < 0:
        raise ApiError(422, "invalid_query", f"Last-Event-ID / after must not be negative, not {after}")
    return after


def create_app(service: TurnService, *, manage_lifecycle: bool = True) -> Starlette:
    """The ASGI app. With ``manage_lifecycle`` the app's lifespan starts the service (recovery,
    sweeper) and stops it (running turns get ``shutdown_grace``), and closes nothing else: the
    caller owns the log."""
    cfg = service.config

    async def principal_of(request: Request) -> Principal:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        given = token.strip() if scheme.lower() == "bearer" else None
        found = service.authenticate(given)
        if isinstance(found, Awaitable):
            found = await found
        if found is None:
            raise ApiError(
                401,
                "unauthorized",
                "a valid bearer token is required" if given else "missing bearer token",
                {"www-authenticate": "Bearer"},
            )
        return found

    async def read_body(request: Request, type_: type[Any], *, empty_ok: bool) -> Any:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > cfg.max_body:
            raise ApiError(413, "too_large", f"request body of {declared} bytes is over the {cfg.max_body}-byte limit")
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > cfg.max_body:
                raise ApiError(413, "too_large", f"request body is over the {cfg.max_body}-byte limit")
        if not body.strip() and empty_ok:
            body = bytearray(b"{}")
        try:
            return msgspec.json.decode(bytes(body), type=type_)
        except msgspec.ValidationError as exc:
            raise ApiError(422, "invalid_body", f"invalid body: {exc}") from None
        except msgspec.DecodeError as exc:
            raise ApiError(422, "invalid_body", f"the body is not valid JSON: {exc}") from None

    async def health(request: Request) -> Response:
        await service.log.last("__health__")
        return JSONResponse({"ok": True})

    async def create_conversation(request: Request) -> Response:
        who = await principal_of(request)
        body = await read_body(request, NewConversation, empty_ok=True)
        conv = await service.create(who, body)
        return JSONResponse({"id": conv}, 201, headers={"location": f"/conversations/{conv}"})

    async def start_turn(request: Request) -> Response:
        who = await principal_of(request)
        conv = request.path_params["id"]
        await service.created(conv, who)
        mode = _mode(request)
        body = await read_body(request, NewTurn, empty_ok=False)
        started = await service.start_turn(conv, who, body)
        headers = {**_SSE_HEADERS, "turnlog-turn-id": started.turn_id, "turnlog-version": str(started.version)}
        return StreamingResponse(service.turn_frames(started, mode), media_type="text/event-stream", headers=headers)

    async def events(request: Request) -> Response:
        who = await principal_of(request)
        conv = request.path_params["id"]
        await service.created(conv, who)
        mode, after = _mode(request), _after(request)
        return StreamingResponse(
            service.frames(conv, after, mode), media_type="text/event-stream", headers=_SSE_HEADERS
        )

    async def messages(request: Request) -> Response:
        who = await principal_of(request)
        conv = request.path_params["id"]
        await service.created(conv, who)
        return JSONResponse({"conversation_id": conv, "messages": await service.rows(conv)})

    async def verify_conversation(request: Request) -> Response:
        who = await principal_of(request)
        conv = request.path_params["id"]
        await service.created(conv, who)
        report = await verify(service.log, conv)
        return JSONResponse(
            {"ok": report.ok, "events": report.events, "broken": [str(b) for b in report.broken]},
            200 if report.ok else 409,
        )

    async def api_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        return _error_response(exc.status, exc.code, exc.message, exc.headers)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return _error_response(exc.status_code, "http_error", exc.detail, exc.headers)

    async def turn_refused(request: Request, exc: Exception) -> Response:
        if isinstance(exc, TurnInProgress):
            return _error_response(409, "turn_in_progress", str(exc))
        return _error_response(404, "not_found", str(exc))

    async def store_error(request: Request, exc: Exception) -> Response:
        logger.error("%s %s: %s", request.method, request.url.path, exc)
        return _error_response(503, "store_unavailable", str(exc))

    async def turnlog_error(request: Request, exc: Exception) -> Response:
        # A log that cannot be read back (IllegalEvent, UnknownEventType, ...): say so, never guess.
        logger.error("%s %s: %s", request.method, request.url.path, exc)
        return _error_response(500, type(exc).__name__, str(exc))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if manage_lifecycle:
            await service.start()
        try:
            yield
        finally:
            if manage_lifecycle:
                await service.stop()

    routes = [
        Route("/health", health, methods=["GET"]),
        Route("/conversations", create_conversation, methods=["POST"]),
        Route("/conversations/{id}/turns", start_turn, methods=["POST"]),
        Route("/conversations/{id}/events", events, methods=["GET"]),
        Route("/conversations/{id}/messages", messages, methods=["GET"]),
        Route("/conversations/{id}/verify", verify_conversation, methods=["GET"]),
    ]
    handlers: dict[Any, Any] = {
        ApiError: api_error,
        HTTPException: http_error,
        TurnRefused: turn_refused,
        LogError: store_error,
        TurnlogError: turnlog_error,
    }
    return Starlette(routes=routes, exception_handlers=handlers, lifespan=lifespan)
