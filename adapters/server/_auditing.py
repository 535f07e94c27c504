"""What an auditor (and the web console's audit page) reads of one conversation, as JSON.

    GET /conversations/{id}/log?after=&limit=   its events as stored, in pages: the timeline
    GET /conversations/{id}/checkpoint          the newest signed checkpoint and how much of it it anchors
    GET /conversations/{id}/export              `turnlog export`'s JSON lines, as a download

The log page is read the one way every read is (the hash chain checked link by link), but a
break does not turn the whole page into an error: the events before the first broken link are
answered, with ``broken`` naming it, and nothing at or after it is. An auditor sees where the
log stops holding; no forged content is ever served. ``GET .../verify`` says the same in one
word.

The checkpoint status costs O(log n) reads: the newest version a checkpoint covers is found by
halving (positions grow with versions in a stream). The export is the CLI's, byte for byte
(``turnlog.engine.export_conversation``); without a checkpoint covering the conversation it is
409 ``no_checkpoint`` before anything is sent.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol

import msgspec
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route
from turnlog.engine import (
    CheckpointLog,
    ConfigError,
    EventLog,
    IntegrityError,
    Recorded,
    RequestError,
    export_conversation,
)

from ._auth import Authenticator, principal_of
from ._config import ServerConfig
from ._listing import page_limit
from ._tenancy import Tenancy

#: Events a model's answer writes and events of a tool's run: the timeline's "actor" column.
_MODEL = frozenset({"iteration_started", "reasoning_delta", "text_delta", "tool_calls_requested", "usage_recorded"})
_TOOL = frozenset({"tool_call_started", "tool_result_recorded"})


class LogEvent(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One stored event: its envelope, who caused it and the event itself (``data``)."""

    version: int
    position: int
    type: str
    schema: int
    turn_id: str
    recorded_at: str
    #: ``subject@tenant`` for what a person did (created, started, cancelled), ``model``, ``tool``
    #: or ``turnlog`` (the engine: a turn's end, a recovery).
    actor: str
    prev_hash: str
    hash: str
    data: dict[str, Any]


class LogPage(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """At most ``limit`` events after ``after``; ``next``: the ``after`` of the next page; ``broken``:
    the first broken link when the page stops at one (nothing at or after it is answered)."""

    conversation_id: str
    events: list[LogEvent]
    next: int | None
    broken: str | None


class CheckpointInfo(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    origin: str
    size: int
    root: str
    timestamp: str
    key_id: str


class CheckpointStatus(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``anchored``: the newest version the checkpoint covers (0: none); ``events``: the
    conversation's last version. ``status``: ``anchored`` (every event), ``partial`` (later events
    are not yet covered), ``none`` (no checkpoint covers it, or the log keeps none)."""

    conversation_id: str
    status: str
    anchored: int
    events: int
    checkpoint: CheckpointInfo | None


class _Service(Protocol):
    config: ServerConfig
    authenticate: Authenticator
    tenancy: Tenancy
    log: EventLog


def actor_of(rec: Recorded) -> str:
    ev = rec.event
    tenant = getattr(ev, "tenant", None)
    if tenant is not None:
        subject = getattr(ev, "subject", "") or ""
        return f"{subject}@{tenant}" if subject else f"@{tenant}"
    if rec.type in _MODEL:
        return "model"
    return "tool" if rec.type in _TOOL else "turnlog"


def _event(rec: Recorded) -> LogEvent:
    data = msgspec.to_builtins(rec.event)
    return LogEvent(
        rec.version,
        rec.position,
        rec.type,
        rec.schema,
        rec.turn_id,
        rec.recorded_at,
        actor_of(rec),
        rec.prev_hash,
        rec.hash,
        data if isinstance(data, dict) else {"value": data},
    )


async def log_page(log: EventLog, conv: str, after: int, limit: int) -> LogPage:
    """Events after ``after``, checked; those before the first broken link when there is one."""
    broken = None
    page: list[Recorded] = []
    last = await log.last(conv)
    if last is None or after >= last.version:
        return LogPage(conv, [], None, None)
    try:
        chain = await log.chain_after(conv, after)
        page = await log.read(conv, after, limit + 1)
        chain.check(page)
    except IntegrityError as exc:
        broken = str(exc)
        page = [rec for rec in page if rec.version < exc.version]
    except msgspec.DecodeError as exc:
        broken = f"stream {conv!r}: a stored payload after version {after} cannot be decoded ({exc})"
        page = []
    more = broken is None and len(page) > limit
    page = page[:limit]
    return LogPage(conv, [_event(rec) for rec in page], page[-1].version if more else None, broken)


async def checkpoint_status(log: EventLog, conv: str) -> CheckpointStatus:
    last = await log.last(conv)
    events = last.version if last is not None else 0
    cp = await log.last_checkpoint() if isinstance(log, CheckpointLog) else None
    anchored = 0
    if cp is not None and last is not None:
        if last.position <= cp.size:
            anchored = events
        else:
            # The newest version whose position the checkpoint covers: positions grow with versions.
            lo, hi = 0, events
            while lo < hi:
                mid = (lo + hi + 1) // 2
                rec = (await log.read(conv, mid - 1, 1))[0]
                lo, hi = (mid, hi) if rec.position <= cp.size else (lo, mid - 1)
            anchored = lo
    status = "none" if anchored == 0 else "anchored" if anchored == events else "partial"
    info = CheckpointInfo(cp.origin, cp.size, cp.root, cp.timestamp, cp.key_id) if cp is not None else None
    return CheckpointStatus(conv, status, anchored, events, info)


def _after(request: Request) -> int:
    raw = request.query_params.get("after", "0")
    try:
        after = int(raw)
    except ValueError:
        raise RequestError("invalid_query", f"after must be an event version (an integer), not {raw!r}") from None
    if after < 0:
        raise RequestError("invalid_query", f"after must not be negative, not {after}")
    return after


def routes(service_of: Callable[[Request], _Service]) -> list[Route]:
    """The audit routes; ``service_of`` as for ``_listing.routes``."""

    async def _readable(request: Request) -> tuple[_Service, str]:
        service = service_of(request)
        who = await principal_of(request, service.authenticate)
        conv = request.path_params["id"]
        await service.tenancy.check(conv, who, "read")
        return service, conv

    async def log(request: Request) -> Response:
        service, conv = await _readable(request)
        after = _after(request)
        limit = page_limit(request, service.config.max_log_page)
        body = await log_page(service.log, conv, after, limit)
        return Response(msgspec.json.encode(body), media_type="application/json")

    async def checkpoint(request: Request) -> Response:
        service, conv = await _readable(request)
        body = await checkpoint_status(service.log, conv)
        return Response(msgspec.json.encode(body), media_type="application/json")

    async def export(request: Request) -> Response:
        service, conv = await _readable(request)
        lines = export_conversation(service.log, conv)
        try:
            first = await anext(lines)
        except ConfigError as exc:
            await lines.aclose()
            raise RequestError("no_checkpoint", str(exc)) from None

        async def body() -> AsyncIterator[bytes]:
            yield first
            async for line in lines:
                yield line

        disposition = f'attachment; filename="{conv}.jsonl"'
        return StreamingResponse(body(), media_type=JSONL, headers={"content-disposition": disposition})

    return [
        Route("/conversations/{id}/log", log, methods=["GET"]),
        Route("/conversations/{id}/checkpoint", checkpoint, methods=["GET"]),
        Route("/conversations/{id}/export", export, methods=["GET"]),
    ]


#: The export's media type (JSON lines).
JSONL = "application/jsonl"
