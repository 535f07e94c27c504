"""The turn service: engines per provider, and the turns this process runs.

**The turn is the log's, not the socket's.** ``start_turn`` writes the turn's first event (so a
refusal, ``TurnInProgress`` on any server, is a plain error answer before any stream begins), then
hands the rest of the turn to a task the service owns. The HTTP response only follows the log,
like any other reader (``_frames``): a client that disconnects stops its reader, not its turn, and
resumes with ``Last-Event-ID`` here or on any server over the same log. On stop, running turns
get ``shutdown_grace`` to end; the rest are cancelled, which records ``TurnFailed(cancelled)`` and
keeps their partial output.

The service is composed of one part per concern, each reachable by the HTTP layer: ``tenancy``
(who sees which conversation), ``frames`` (SSE), ``rows`` (the message rows) and ``recovery``
(turns left live by a crash).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping

from turnlog.engine import (
    LLM,
    Clock,
    ConfigError,
    EngineConfig,
    EventLog,
    Ids,
    LogError,
    Recorded,
    RequestError,
    SystemClock,
    ToolRegistry,
    TurnEngine,
    TurnRequest,
    TurnStarted,
    UuidIds,
)
from turnlog.projections import MessageStore

from ._auth import Authenticator, Principal, open_access
from ._bodies import NewConversation, NewTurn
from ._config import ServerConfig
from ._frames import Frames
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
    ) -> None:
        self.log = log
        self.messages = messages
        self.config = cfg = config or ServerConfig()
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
        self.tenancy = Tenancy(log, capacity=cfg.conversation_cache)
        self.frames = Frames(log, heartbeat=cfg.heartbeat, retry_ms=cfg.retry_ms)
        self.rows = MessageRows(log, messages, running=self.running)
        self.recovery = Recovery(log, messages, clock=self.clock, grace=cfg.recover_grace, spare=self.running)

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Recover turns left live by a crash, then keep sweeping (see ``_recovery``)."""
        await self.recovery.start()

    async def stop(self) -> None:
        """Stop sweeping; give running turns ``shutdown_grace`` to end, then cancel them."""
        await self.recovery.stop()
        tasks = list(self.running.values())
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=self.config.shutdown_grace)
            for task in pending:
                task.cancel()
            # Each cancelled turn records TurnFailed(cancelled) before its task ends.
            await asyncio.gather(*pending, return_exceptions=True)

    # -- conversations and turns --------------------------------------------------------------

    async def create(self, principal: Principal, body: NewConversation) -> str:
        """Create a conversation of the principal's tenant; returns its id."""
        provider = body.provider or self.default_provider
        engine = self.engines.get(provider)
        if engine is None:
            raise RequestError(
                "invalid_body", f"unknown provider {provider!r}; this server has {', '.join(self.engines)}"
            )
        return await engine.create_conversation(
            system_prompt=body.system_prompt,
            model=body.model or getattr(getattr(engine.llm, "config", None), "model", "") or "",
            temperature=body.temperature,
            max_tokens=body.max_tokens,
            thinking=body.thinking,
            tenant=principal.tenant,
            title=body.title,
        )

    async def start_turn(self, conversation_id: str, principal: Principal, body: NewTurn) -> Recorded:
        """Start a turn and hand it to a task of the service. Returns its TurnStarted."""
        created = await self.tenancy.created(conversation_id, principal)
        # No shortcut on self.running: a turn's task outlives its last commit by a moment, and
        # the log (the engine's refusal, across servers too) is the one judge of "running".
        engine = self.engines.get(created.provider)
        if engine is None:
            raise RequestError(
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
