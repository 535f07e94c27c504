"""Every limit of the HTTP service, in one place (``turnlog serve`` flags map onto it)."""

from __future__ import annotations

from dataclasses import dataclass


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
    #: ``GET .../requests`` answers at most this many requests a page (``?limit=``, ``?after=``):
    #: each carries the whole history before it.
    max_requests_page: int = 20
    #: ``GET /conversations`` answers at most this many conversations a page (``?limit=``,
    #: ``?cursor=``; 422 above it).
    max_conversations_page: int = 100
    #: ``GET .../messages`` answers at most this many message rows a page (``?limit=``,
    #: ``?cursor=``; 422 above it): a long conversation is never one huge answer.
    max_messages_page: int = 200
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
