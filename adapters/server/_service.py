"""The turn service: engines per provider, and the turns this process runs.

**The turn is the log's, not the socket's.** ``start_turn`` writes the turn's first event (so a
refusal, ``TurnInProgress`` on any server, is a plain error answer before any stream begins), then
hands the rest of the turn to a task the service owns. The HTTP response only follows the log,
like any other reader (``_frames``): a client that disconnects stops its reader, not its turn, and
resumes with ``Last-Event-ID`` here or on any server over the same log. On stop, running turns
get ``shutdown_grace`` to end; the rest are cancelled, which records ``TurnFailed(cancelled)`` and
keeps their partial output.

**Who acted** is written into the log: a conversation records the principal who created it
(tenant and subject, in ``ConversationCreated``), a turn the principal who started it (in
``TurnStarted``). ``requests`` shows an auditor what the model was sent, rebuilt from the log by
the engine and rendered by the LLM the conversation's provider maps to here.

The service is composed of one part per concern, each reachable by the HTTP layer: ``tenancy``
(who may read, write or audit which conversation), ``frames`` (SSE), ``rows`` (the message rows),
``conversations`` (the list and each conversation's state, from the summaries the rows keep),
``controls`` (cancels, as events) and ``recovery`` (turns left live by a crash).
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
from collections.abc import AsyncIterator, Mapping
from typing import Any

import msgspec
from turnlog.adapters.stores import Presence, presence_of
from turnlog.engine import (
    LLM,
    Clock,
    ConfigError,
    ConversationCreated,
    EngineConfig,
    EventLog,
    Ids,
    LogError,
    Recorded,
    RequestError,
    Signer,
    SystemClock,
    ToolRegistry,
    TurnEngine,
    TurnRequest,
    TurnStarted,
    UuidIds,
    rebuild_requests,
)
from turnlog.projections import MessageStore

from ._approvals import Approvals, approval_rule, spawner
from ._auth import Authenticator, Principal, open_access
from ._bodies import NewConversation, NewTurn
from ._checkpoints import Checkpointer
from ._config import ServerConfig
from ._controls import Controls
from ._erase import Retention
from ._frames import Frames
from ._listing import Conversations
from ._policy import Policy, ServerPolicy, decided
from ._recovery import Recovery
from ._rows import MessageRows
from ._tenancy import Tenancy

logger = logging.getLogger("turnlog.server")


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
        signer: Signer | None = None,
        policy: Policy | None = None,
        presence: Presence | None = None,
    ) -> None:
        """``signer``: sign a checkpoint of the log every ``config.checkpoint_every`` seconds.
        ``policy``: what a request may choose (model, system prompt, limits, tools; ``_policy``);
        default ``ServerPolicy(config)``. ``engine_config``: group commit and the turn and
        conversation limits (``EngineConfig``). ``presence``: where this server holds its id
        (default ``presence_of(log)``; see ``_recovery``)."""
        self.log = log
        self.messages = messages
        self.config = cfg = config or ServerConfig()
        self.authenticate = authenticate
        self.policy: Policy = policy if policy is not None else ServerPolicy(cfg)
        self.clock = clock or SystemClock()
        providers = {llms.provider: llms} if isinstance(llms, LLM) else dict(llms)
        if not providers:
            raise ConfigError("the service needs at least one LLM")
        self.default_provider = next(iter(providers))
        self.engines = {
            name: TurnEngine(
                log,
                llm,
                tools=tools,
                messages=messages,
                clock=self.clock,
                ids=ids or UuidIds(),
                config=engine_config,
                approval=approval_rule(self.policy),
            )
            for name, llm in providers.items()
        }
        #: conversation id -> the task running its turn in this process.
        self.running: dict[str, asyncio.Task[None]] = {}
        #: True between ``start`` and ``stop``: the HTTP app refuses every request (503
        #: ``not_started``) otherwise, since an unrecovered log would answer 409 for ever.
        self.started = False
        self.tenancy = Tenancy(
            log,
            capacity=cfg.conversation_cache,
            auditor_level=cfg.auditor_level,
            max_bytes=cfg.conversation_cache_bytes,
            not_found_ttl=cfg.not_found_ttl,
        )
        self.controls = Controls(log, self.tenancy, self.clock)
        self.frames = Frames(
            log, heartbeat=cfg.heartbeat, retry_ms=cfg.retry_ms, max_full_events=cfg.max_full_mode_events
        )
        self.rows = MessageRows(log, messages)
        self.conversations = Conversations(log, messages, self.rows, auditor_level=cfg.auditor_level)
        #: Recorded as the owner of every turn this server runs (``TurnStarted.owner``).
        self.server_id = cfg.server_id or f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        #: Decisions on parked turns, and recovery's resume (``_approvals``).
        self.approvals = Approvals(
            self.tenancy, self._engine_of, spawner(self.running, self._drive), self.server_id, log
        )
        self.recovery = Recovery(
            log,
            messages,
            clock=self.clock,
            grace=cfg.recover_grace,
            spare=self.running,
            server_id=self.server_id,
            presence=presence if presence is not None else presence_of(log),
            resume=self.approvals.resume if cfg.resume_interrupted else None,
        )
        #: Retention (``_erase``): conversations older than ``config.retention_days`` erased.
        self.retention = (
            Retention(log, messages, days=cfg.retention_days, every=cfg.retention_every, clock=self.clock)
            if cfg.retention_days is not None
            else None
        )
        self.checkpoints = (
            Checkpointer(log, signer, every=cfg.checkpoint_every, origin=cfg.checkpoint_origin, clock=self.clock)
            if signer is not None
            else None
        )

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Hold this server's id, recover turns left live by a crash, then keep sweeping (see
        ``_recovery``)."""
        await self.conversations.backfill()  # an index just migrated in is filled from the log
        await self.recovery.start()
        if self.checkpoints is not None:
            self.checkpoints.start()
        if self.retention is not None:
            self.retention.start()
        self.started = True

    async def stop(self) -> None:
        """Stop sweeping; give running turns ``shutdown_grace`` to end, then cancel them; then let
        go of the server id (not before: another server would take the turns for orphans)."""
        self.started = False
        await self.recovery.stop()
        if self.checkpoints is not None:
            await self.checkpoints.stop()
        if self.retention is not None:
            await self.retention.stop()
        tasks = list(self.running.values())
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=self.config.shutdown_grace)
            for task in pending:
                task.cancel()
            # Each cancelled turn records TurnFailed(cancelled) before its task ends.
            await asyncio.gather(*pending, return_exceptions=True)
        await self.recovery.leave()

    # -- conversations and turns --------------------------------------------------------------

    async def create(self, principal: Principal, body: NewConversation) -> str:
        """Create a conversation owned by the principal (its tenant and subject), with the settings
        the policy decides (recorded in ``ConversationCreated``); returns its id."""
        decision = await decided(self.policy.conversation(principal, body))
        provider = decision.provider or self.default_provider
        engine = self.engines.get(provider)
        if engine is None:
            raise RequestError(
                "invalid_body", f"unknown provider {provider!r}; this server has {', '.join(self.engines)}"
            )
        conv = await engine.create_conversation(
            system_prompt=decision.system_prompt,
            model=decision.model or getattr(getattr(engine.llm, "config", None), "model", "") or "",
            temperature=decision.temperature,
            max_tokens=decision.max_tokens,
            thinking=decision.thinking,
            tenant=principal.tenant,
            subject=principal.subject,
            title=body.title,
        )
        return conv

    async def start_turn(self, conversation_id: str, principal: Principal, body: NewTurn) -> Recorded:
        """Start a turn and hand it to a task of the service. Returns its TurnStarted, which names
        the principal (tenant and subject) as the turn's actor."""
        created = await self.tenancy.created(conversation_id, principal, "write")
        # No shortcut on self.running: a turn's task outlives its last commit by a moment, and
        # the log (the engine's refusal, across servers too) is the one judge of "running".
        engine = self._engine_of(conversation_id, created)
        # The policy's decision is what runs and what TurnStarted records.
        decision = await decided(self.policy.turn(principal, body, created))
        request = TurnRequest(
            body.message,
            enabled_tools=decision.tools,
            thinking=decision.thinking,
            model=decision.model,
            temperature=decision.temperature,
            max_tokens=decision.max_tokens,
            permission_level=principal.level,
            tenant=principal.tenant,
            subject=principal.subject,
            user_id=principal.subject or None,
            owner=self.server_id,
        )
        turn = engine.run_turn(conversation_id, request)
        # The first step writes TurnStarted or refuses (TurnInProgress, also across servers).
        started = await turn.__anext__()
        assert isinstance(started.event, TurnStarted)
        task = asyncio.get_running_loop().create_task(self._drive(conversation_id, turn))
        self.running[conversation_id] = task
        return started

    async def requests(
        self, conversation_id: str, principal: Principal, *, after: int = 0, limit: int = 20
    ) -> tuple[list[dict[str, Any]], bool]:
        """The requests the conversation sent to its model after version ``after`` (at most
        ``limit``; and whether more follow), rebuilt from the log and rendered by the LLM its
        provider maps to here, each with the recorded digest and whether they match. Auditors
        only (``_tenancy``)."""
        created = await self.tenancy.created(conversation_id, principal, "audit")
        llm = self._engine_of(conversation_id, created).llm
        rebuilt = [r for r in await rebuild_requests(self.log, conversation_id, llm) if r.version > after]
        page = [
            {
                "turn_id": r.turn_id,
                "iteration": r.iteration,
                "version": r.version,
                "model": r.model,
                "sha256": r.sha256,
                "recorded_sha256": r.recorded_sha256,
                # The digests agree, and so do the model IterationStarted records and the body's.
                "match": r.ok,
                "body": msgspec.json.decode(r.body),
            }
            for r in rebuilt[:limit]
        ]
        return page, len(rebuilt) > limit

    def _engine_of(self, conversation_id: str, created: ConversationCreated) -> TurnEngine:
        engine = self.engines.get(created.provider)
        if engine is None:
            raise RequestError(
                "provider_unavailable",
                f"conversation {conversation_id!r} uses provider {created.provider!r}, which this server "
                f"does not have ({', '.join(self.engines)})",
            )
        return engine

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
