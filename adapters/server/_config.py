"""Every limit of the HTTP service, in one place (``turnlog serve`` flags map onto it)."""

from __future__ import annotations

from dataclasses import dataclass

from turnlog.projections import PriceTable


@dataclass(frozen=True)
class ServerConfig:
    #: Largest request body accepted (413 above it).
    max_body: int = 1 << 20
    #: Seconds of silence after which an SSE stream sends a ``: keep-alive`` comment.
    heartbeat: float = 15.0
    #: The ``retry:`` hint sent first on every SSE stream (milliseconds).
    retry_ms: int = 2000
    #: Turns whose newest event is older than this are recovered as interrupted (see
    #: ``_recovery``); 0 recovers every live turn at start and disables the periodic sweep.
    recover_grace: float = 60.0
    #: On shutdown, running turns get this long to end before they are cancelled (recorded as
    #: TurnFailed(cancelled), partial output kept).
    shutdown_grace: float = 10.0
    #: Conversations whose settings (first event: tenant, provider) are kept in memory; that
    #: event never changes, so the cache needs no invalidation.
    conversation_cache: int = 100_000
    #: A principal at this permission level or above reads every conversation of its tenant (not
    #: only its own subject's) and may ask for the requests sent to the model (``GET
    #: .../requests``). It does not start turns in others' conversations (see ``_tenancy``).
    auditor_level: int = 10
    #: With a signing key given to the service: seconds between signed checkpoints of the log's
    #: tree head (only when the log grew; see ``_checkpoints``).
    checkpoint_every: float = 60.0
    #: The checkpoints' origin line (names the log in the signed body).
    checkpoint_origin: str = "turnlog"
    #: A principal at this permission level or above may erase any conversation of its tenant
    #: (``DELETE /conversations/{id}``); below it, only the conversation's owner may.
    admin_level: int = 100
    #: Retention (``turnlog serve --retention-days``): erase every conversation whose last event
    #: is older than this many days (None: keep everything), checked every ``retention_every`` s.
    retention_days: float | None = None
    retention_every: float = 3600.0
    #: A principal at this permission level or above reads its tenant's usage and cost (``GET
    #: /usage``, ``_usage``); never another tenant's (the CLI's ``turnlog usage`` is the operator's).
    usage_level: int = 100
    #: The price table ``GET /usage`` prices tokens with (``turnlog serve --prices FILE``); None:
    #: every cost is null.
    prices: PriceTable | None = None
    #: ``GET .../requests`` answers at most this many requests a page (``?limit=``, ``?after=``):
    #: each carries the whole history before it.
    max_requests_page: int = 20
    #: ``GET /conversations`` answers at most this many conversations a page (``?limit=``,
    #: ``?cursor=``; 422 above it).
    max_conversations_page: int = 100
    #: ``GET .../messages`` answers at most this many message rows a page (``?limit=``,
    #: ``?cursor=``; 422 above it): a long conversation is never one huge answer.
    max_messages_page: int = 200
    #: ``GET .../log`` (the audit timeline) answers at most this many events a page (``?limit=``,
    #: ``?after=``; 422 above it).
    max_log_page: int = 500
    # -- the default policy (``_policy.ServerPolicy``): what a client may choose -----------------
    #: Models a request may name (``model`` in a body). Empty: none, the server decides (the
    #: provider's configured model); a body naming another is a 422.
    allowed_models: tuple[str, ...] = ()
    #: Whether a client may set a conversation's system prompt (422 otherwise).
    allow_system_prompt: bool = False
    #: The system prompt of every new conversation whose client does not (may not) give one.
    system_prompt: str | None = None
    #: The largest ``max_tokens`` a request may ask for (422 above it).
    max_tokens_cap: int = 32_768
    #: Tools a turn may enable (None: every registered tool; the principal's level still filters).
    allowed_tools: tuple[str, ...] | None = None
    #: Tools offered on a turn whose body names none (``enabled_tools`` absent).
    default_tools: tuple[str, ...] = ()
    # -- size (the turn and conversation limits are the engine's: ``EngineConfig``) -----------------
    #: ``?mode=full`` resends a step's whole text in every frame, so its bytes grow with the square
    #: of a step's deltas: it is refused (422 ``full_mode_too_large``, before any frame) on a
    #: conversation holding more events than this (its version: one read, an upper bound of its
    #: deltas), and a full-mode stream that reaches it ends with an ``error`` frame (no ``id:``);
    #: ``mode=delta`` has no such limit.
    max_full_mode_events: int = 4096
    # -- recovery (``_recovery``) ----------------------------------------------------------------
    #: This server's id: recorded as the owner of the turns it runs (``TurnStarted.owner``) and
    #: held over the log while it runs (``turnlog.adapters.stores.presence_of``), so recovery ends
    #: at once a turn whose server is gone and never one whose server runs. None: one is generated
    #: per process (host, pid, random). Two running servers may not share one (the second refuses
    #: to start). ``recover_grace`` applies only to turns whose owner cannot be told.
    server_id: str | None = None
    #: Recovery takes a turn whose server died up again instead of ending it (``TurnResumed``;
    #: finished tool results reused, the model called again, a started tool run again only if
    #: idempotent): ``turnlog serve --resume-interrupted``. Default: ended as interrupted.
    resume_interrupted: bool = False
    # -- approvals (``_approvals``) ----------------------------------------------------------------
    #: Tools whose every call a person approves or denies before it runs (the default policy's
    #: ``needs_approval``; a tool registered ``requires_approval=True`` needs one anyway).
    approval_tools: tuple[str, ...] = ()
    # -- memory and connections (issue 13): what a careless or hostile client may hold -----------
    #: Bytes the conversation settings cache may hold (counted per entry: its key and what the
    #: checks keep, tenant, subject and provider; never a title or prompt). With
    #: ``conversation_cache`` (entries) the first bound reached evicts the least recently used.
    conversation_cache_bytes: int = 32 << 20
    #: Longest ``title`` of a new conversation, in characters (422 ``invalid_body`` above it).
    max_title: int = 200
    #: Longest ``system_prompt`` a body may set, in characters (422 ``invalid_body`` above it).
    max_system_prompt: int = 65_536
    #: Seconds a request's body may take to arrive once the app reads it (408
    #: ``request_timeout``, then the connection is closed). 0: no deadline.
    body_timeout: float = 30.0
    #: ``turnlog serve`` (``uvicorn_config``): seconds for a request's head (request line and
    #: headers) to arrive, counted from when the server waits for it (the connection opened, or the
    #: first byte after an answer); a connection that does not send one in time is closed. 0: no
    #: deadline (uvicorn's own behaviour: a slow client holds its connection for ever).
    header_timeout: float = 10.0
    #: ``turnlog serve``: seconds an idle keep-alive connection stays open (uvicorn's
    #: ``timeout_keep_alive``).
    keep_alive: float = 5.0
    #: ``turnlog serve``: connections served at once (open SSE streams count); a request on a
    #: connection beyond them answers 503 ``server_busy``. 0: no cap.
    max_connections: int = 1000
    #: Seconds a 404 of a conversation id is remembered for the principal it was answered to (the
    #: id missing, or not that principal's to read), so its next tries cost what they cost for
    #: any id (``_tenancy``). A conversation created later under that id (only ids a client
    #: chooses can be named before they exist) stays 404 to that principal for up to this long.
    #: 0: no 404 is remembered.
    not_found_ttl: float = 10.0
