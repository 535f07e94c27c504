"""Listing: the caller's conversations, one conversation's settings and state, its messages in pages.

    GET /conversations?limit=&cursor=                 {"items": [...], "next": CURSOR | null}
    GET /conversations/{id}                           {"id", "settings": {...}, "state": {...item, "live"}}
    GET /conversations/{id}/messages?limit=&cursor=   {"conversation_id", "messages": [...], "next": CURSOR | null}

**The list is an index query, never a scan of the log.** Each conversation has a summary
(``turnlog.projections.ConversationSummary``) that the row sink keeps with the rows, in the same
writes; a page is one range of an index on ``(tenant, subject, updated_at, id)`` (or ``(tenant,
updated_at, id)`` for an auditor). Who sees which conversation is the one rule of ``_tenancy``
(``may``): ``readable_subjects`` turns it into the index's filter, and every summary of a page
is checked by ``may`` again before it is shown (a narrower rule can never leak one).

**Pages, newest first by last activity** (a conversation's creation, a turn's start or end). The
cursor is opaque: base64url of a small JSON array, the ``(updated_at, id)`` of the last item
shown. A page never repeats a conversation and never misses one that existed when paging began
and kept still; one that was active in the meantime moves to the top (the next first page shows
it), and conversations created while a client pages are never slipped in behind its cursor. A
messages cursor is the ``seq`` of the last row shown, so concatenated pages are the rows.

A conversation is indexed when it is created (``TurnEngine.create_conversation`` hands its first
event to the row sink, as a turn's batches are); one whose indexing failed is indexed at its first
turn, when the row store catches its summary up; a server that starts over an empty index and a
log that is not (a database just migrated to 0006) fills it first (``backfill``).
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Callable
from typing import Any, Literal, Protocol

import msgspec
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from turnlog.engine import ConfigError, ConversationCreated, EventLog, ForkPoint, RequestError
from turnlog.projections import ConversationIndex, ConversationSummary, MessageStore, catch_up, fold_summary

from ._auth import Authenticator, Principal, principal_of
from ._config import ServerConfig
from ._rows import MessageRows
from ._tenancy import Tenancy, may, valid_id

logger = logging.getLogger("turnlog.server")

Status = Literal["live", "awaiting_approval", "finalized", "failed"]


# -- what the endpoints answer (``_openapi`` documents these structs) -----------------------------


class TokenUsage(msgspec.Struct, frozen=True):
    """Tokens the conversation's turns used: each finished turn's sum, a failed one's so far."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ConversationItem(msgspec.Struct, frozen=True):
    """One conversation of the list. ``updated_at``: its last activity (creation, a turn's start
    or end); ``last_status``: its last turn's, null before the first; ``parent``: the
    conversation it was forked from (null: not a fork; ``POST .../fork``)."""

    id: str
    title: str
    created_at: str
    updated_at: str
    turns: int
    last_status: Status | None
    usage: TokenUsage
    parent: str | None


class ConversationPage(msgspec.Struct, frozen=True):
    """At most ``limit`` conversations, newest first; ``next``: the ``cursor`` of the next page."""

    items: list[ConversationItem]
    next: str | None


class ConversationSettings(msgspec.Struct, frozen=True):
    """What the conversation was created with (its first event, ``ConversationCreated``)."""

    system_prompt: str | None
    provider: str
    model: str
    temperature: float | None
    max_tokens: int | None
    thinking: bool
    title: str
    tenant: str
    subject: str
    #: A fork's parent, the version it branches off and the parent's hash there (null: not a fork).
    fork_of: ForkPoint | None = None


class ConversationState(ConversationItem, frozen=True):
    """The conversation as the list shows it, and whether a turn is running (from the log)."""

    live: bool


class ConversationDetail(msgspec.Struct, frozen=True):
    id: str
    settings: ConversationSettings
    state: ConversationState


def item_of(s: ConversationSummary) -> ConversationItem:
    usage = TokenUsage(s.prompt_tokens, s.completion_tokens, s.total_tokens)
    return ConversationItem(s.id, s.title, s.created_at, s.updated_at, s.turns, s.last_status, usage, s.parent)  # type: ignore[arg-type]


# -- cursors ----------------------------------------------------------------------------------------


def encode_cursor(*position: str | int) -> str:
    """An opaque cursor for a position (base64url of a JSON array, no padding)."""
    return base64.urlsafe_b64encode(msgspec.json.encode(position)).rstrip(b"=").decode()


def decode_cursor(raw: str, kinds: tuple[type, ...]) -> tuple[Any, ...]:
    """The position a cursor of ours holds, shaped as ``kinds``; 422 ``invalid_query`` otherwise."""
    try:
        position = msgspec.json.decode(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
    except (binascii.Error, ValueError, msgspec.DecodeError):
        position = None
    if (
        not isinstance(position, list)
        or len(position) != len(kinds)
        or not all(type(p) is k for p, k in zip(position, kinds, strict=True))
        # What a cursor holds reaches the store: its strings follow the one rule for ids (a NUL
        # is no text PostgreSQL can hold), its numbers fit the columns (a seq is 32 bits).
        or not all(valid_id(p) if isinstance(p, str) else 0 <= p < 1 << 31 for p in position)
    ):
        raise RequestError("invalid_query", f"cursor {raw[:80]!r} is not one this server gave (use a page's next)")
    return tuple(position)


def page_limit(request: Request, most: int) -> int:
    """``?limit=`` from 1 to ``most`` (absent: ``most``); 422 ``invalid_query`` otherwise (an
    empty ``limit=`` too: the document says integer)."""
    raw = request.query_params.get("limit")
    if raw is None:
        return most
    if not raw.isdigit() or not 1 <= int(raw) <= most:
        raise RequestError("invalid_query", f"limit must be an integer from 1 to {most}, not {raw[:40]!r}")
    return int(raw)


# -- who sees which conversations -----------------------------------------------------------------


def readable_subjects(principal: Principal, *, auditor_level: int) -> tuple[str, ...] | None:
    """The subjects whose conversations of its tenant ``may`` lets the principal read: None for
    all of them (an auditor); else its own and the tenant's shared ones (subject ``""``).
    ``tests/conversations`` checks this filter against ``may`` itself."""
    if principal.level >= auditor_level:
        return None
    return tuple(dict.fromkeys((principal.subject, "")))


class Conversations:
    """The service's part for listing: the index the row sink keeps, filtered by ``may``."""

    def __init__(self, log: EventLog, messages: MessageStore, rows: MessageRows, *, auditor_level: int) -> None:
        self._log = log
        self._messages = messages
        self._rows = rows
        self._auditor_level = auditor_level

    @property
    def index(self) -> ConversationIndex | None:
        return self._messages.conversations

    async def page(
        self, principal: Principal, *, limit: int, before: tuple[str, str] | None
    ) -> tuple[list[ConversationSummary], tuple[str, str] | None]:
        """A page of the conversations the principal may read, and where the next one starts."""
        index = self.index
        if index is None:
            raise ConfigError("the service's row store keeps no conversation index (MessageStore.conversations)")
        subjects = readable_subjects(principal, auditor_level=self._auditor_level)
        found = await index.page(principal.tenant, subjects, limit=limit + 1, before=before)
        shown = found[:limit]
        nxt = (shown[-1].updated_at, shown[-1].id) if len(found) > limit else None
        return [s for s in shown if self._may_read(principal, s)], nxt

    def _may_read(self, principal: Principal, s: ConversationSummary) -> bool:
        created = ConversationCreated(tenant=s.tenant, subject=s.subject)
        return may(principal, created, "read", auditor_level=self._auditor_level)

    async def detail(self, conversation_id: str, created: ConversationCreated) -> ConversationDetail:
        """Settings from the first event; state from the summary, caught up with the log first
        when a crash left it behind (as the rows are), and whether a turn is live."""
        last, live = await self._rows.fresh(conversation_id, summary=True)
        index = self.index
        summary = await index.get(conversation_id) if index is not None else None
        if summary is None:  # no index, or a live turn whose summary was never written
            summary = fold_summary(conversation_id, [rec async for rec in self._log.iter_stream(conversation_id)])
        assert summary is not None and last is not None  # the caller read its first event
        item = item_of(summary)
        settings = ConversationSettings(
            created.system_prompt,
            created.provider,
            created.model,
            created.temperature,
            created.max_tokens,
            created.thinking,
            created.title,
            created.tenant,
            created.subject,
            created.parent or None,
        )
        return ConversationDetail(
            conversation_id, settings, ConversationState(*msgspec.structs.astuple(item), live=live)
        )

    async def backfill(self) -> int:
        """Fill an empty index from the log (a database just migrated to revision 0006): every
        conversation's rows and summary caught up. Returns the conversations indexed."""
        index = self.index
        if index is None or not await index.empty():
            return 0
        streams = await self._log.streams()
        if streams:
            logger.warning("the conversation index is empty: indexing %d conversations from the log", len(streams))
        for conversation_id in streams:
            await catch_up(self._log, self._messages, conversation_id)
        return len(streams)


# -- endpoints --------------------------------------------------------------------------------------


class _Service(Protocol):
    """What the endpoints use of the service (``_service.TurnService``, which imports this module)."""

    config: ServerConfig
    authenticate: Authenticator
    tenancy: Tenancy
    rows: MessageRows
    conversations: Conversations


def routes(service_of: Callable[[Request], _Service]) -> list[Route]:
    """The listing routes. ``service_of``: the app's own way to find its service (``_app``: 503
    ``not_started`` until it is started), called first by every endpoint."""

    async def list_conversations(request: Request) -> Response:
        service = service_of(request)
        who = await principal_of(request, service.authenticate)
        limit = page_limit(request, service.config.max_conversations_page)
        raw = request.query_params.get("cursor")
        before = decode_cursor(raw, (str, str)) if raw else None
        page, nxt = await service.conversations.page(who, limit=limit, before=before)  # type: ignore[arg-type]
        body = ConversationPage([item_of(s) for s in page], encode_cursor(*nxt) if nxt else None)
        return Response(msgspec.json.encode(body), media_type="application/json")

    async def get_conversation(request: Request) -> Response:
        service = service_of(request)
        who = await principal_of(request, service.authenticate)
        conv = request.path_params["id"]
        created = await service.tenancy.created(conv, who, "read")
        detail = await service.conversations.detail(conv, created)
        return Response(msgspec.json.encode(detail), media_type="application/json")

    async def messages(request: Request) -> Response:
        """One page of the message rows: a long conversation is never one huge answer."""
        service = service_of(request)
        who = await principal_of(request, service.authenticate)
        conv = request.path_params["id"]
        await service.tenancy.check(conv, who, "read")
        limit = page_limit(request, service.config.max_messages_page)
        raw = request.query_params.get("cursor")
        (after,) = decode_cursor(raw, (int,)) if raw else (0,)
        rows, more = await service.rows.page(conv, after, limit)
        nxt = encode_cursor(rows[-1]["seq"]) if more and rows else None
        return JSONResponse({"conversation_id": conv, "messages": rows, "next": nxt})

    return [
        Route("/conversations", list_conversations, methods=["GET"]),
        Route("/conversations/{id}", get_conversation, methods=["GET"]),
        Route("/conversations/{id}/messages", messages, methods=["GET"]),
    ]
