"""The engine: runs one turn at a time per conversation, through ports.

``TurnEngine.run_turn`` is an async generator of committed events: it appends each event to the
log and yields it only after the append committed (durable before visible). Deltas are
group-committed: the buffer is flushed when it holds ``flush_events`` events or when its oldest
event has waited ``flush_ms``, and always before a side effect (calling the model, running
tools) so the log shows what was attempted even if the process dies during it.

The model's stream is read by a producer task into a bounded queue, so reading the network and
committing to the database overlap, and a model that stalls does not hold a batch back longer
than ``flush_ms``.

Nothing escapes a started turn: a provider error, an unexpected exception, or the consumer
closing the generator (``aclose``) or being cancelled ends the turn with a committed
``TurnFailed`` that keeps everything streamed before it.

A turn also stops when anyone, from any process, appends a ``CancelRequested`` for it
(``cancel_turn``): its next commit meets it, and while it is quiet its ``CancelWatch`` follows the
stream for it (see ``_cancel``).

**Limits** (``EngineConfig``): a user message above ``max_message_bytes``, or a conversation at
``max_conversation_events`` or ``max_conversation_bytes``, is refused before anything is written
(``MessageTooLarge``, ``ConversationTooLarge``); a turn whose model output passes
``max_turn_bytes`` or ``max_turn_deltas`` ends ``TurnFailed(too_large)``, its output so far kept
(see ``_model_call``).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import msgspec

from ._errors import (
    ConcurrencyError,
    ConfigError,
    ConversationErasedError,
    ConversationExists,
    ConversationNotFound,
    ConversationTooLarge,
    IntegrityError,
    MessageTooLarge,
    TurnAwaitingApproval,
    TurnInProgress,
)
from ._events import (
    ApprovalDecided,
    ApprovalRequested,
    ConversationCreated,
    ConversationErased,
    NewEvent,
    Recorded,
    TurnFailed,
    TurnFinalized,
    TurnStarted,
)
from ._fork import fork, history_bytes, prior_for_turn
from ._llm import LLM
from ._log import ChainCheck, EventLog
from ._machine import ConversationFold
from ._model_call import OutputBudget, utf8_size
from ._ports import Clock, Ids, Messages, SystemClock, UuidIds
from ._request import FULL, LogHistory, TurnHistory
from ._resume import decide_and_continue, resume_interrupted
from ._tools import ToolContext, ToolRegistry
from ._turn import ApprovalRule, TurnRun, drive, new_run

logger = logging.getLogger("turnlog.engine")


class EngineConfig(msgspec.Struct, frozen=True):
    #: Group commit: flush when this many events are buffered...
    flush_events: int = 1024
    #: ...or when the oldest buffered event has waited this long.
    flush_ms: float = 5.0
    #: Default cap on model calls per turn (the seed's MAX_ITERATIONS).
    max_iterations: int = 20
    #: Chunks the producer may read ahead of the engine.
    queue_size: int = 1024
    # -- limits: what one message, one turn and one conversation may hold ------------------------
    #: The largest user message, in UTF-8 bytes: above it the turn is refused (``MessageTooLarge``,
    #: code ``too_large``) and nothing is written.
    max_message_bytes: int = 256 * 1024
    #: The most text, reasoning and tool-call arguments the model may produce in one turn, in
    #: UTF-8 bytes (all its iterations): the delta that would pass it is not recorded, and the turn
    #: ends ``TurnFailed(too_large)`` with its output so far.
    max_turn_bytes: int = 1 << 20
    #: The most text and reasoning deltas (events) of one turn; the same end beyond it.
    max_turn_deltas: int = 262_144
    #: A new turn is refused (``ConversationTooLarge``, nothing written) when the messages its
    #: request would carry (every earlier turn's user message and answer, and its own message)
    #: pass this many UTF-8 bytes...
    max_conversation_bytes: int = 8 << 20
    #: ...or when the conversation's log already holds this many events. A conversation under
    #: both limits may pass them by one turn at most (a turn is bounded by the two above).
    max_conversation_events: int = 1_000_000
    # -- history: what a turn's requests repeat of earlier turns (issue 12) ---------------------
    #: The token budget of the earlier turns a request repeats (with the system prompt and the
    #: current message); None repeats them all. Over it, ``history_trim`` leaves out whole turns.
    history_tokens: int | None = None
    #: ``(messages, budget) -> messages`` with whole oldest turns left out; None: the default,
    #: ``trim_oldest_turns`` (characters / 4). See ``engine/_trim.py``.
    history_trim: Any = None
    #: The longest chain of forks (a fork of a fork ...): a fork beyond it is refused.
    max_fork_depth: int = 32

    def __post_init__(self) -> None:
        for name in _LIMITS:
            value = getattr(self, name)
            if type(value) is not int or value < 1:
                raise ConfigError(f"EngineConfig.{name} must be a positive integer, not {value!r}")
        budget = self.history_tokens
        if budget is not None and (type(budget) is not int or budget < 1):
            raise ConfigError(f"EngineConfig.history_tokens must be a positive integer or None, not {budget!r}")
        if self.history_trim is not None and not callable(self.history_trim):
            raise ConfigError("EngineConfig.history_trim must be a callable (messages, budget) -> messages")


#: The limits ``EngineConfig`` checks are positive integers.
_LIMITS = (
    "flush_events",
    "max_iterations",
    "queue_size",
    "max_message_bytes",
    "max_turn_bytes",
    "max_turn_deltas",
    "max_conversation_bytes",
    "max_conversation_events",
    "max_fork_depth",
)


class TurnRequest(msgspec.Struct, frozen=True):
    user_message: str
    #: Tool names to offer the model; None or empty offers none.
    enabled_tools: list[str] | None = None
    #: None: the conversation's setting.
    thinking: bool | None = None
    model: str | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    max_iterations: int | None = None
    permission_level: int = 1
    user_id: str | None = None
    username: str | None = None
    workspace: str | None = None
    #: Who acted (the authenticated principal), recorded in ``TurnStarted``.
    tenant: str = ""
    subject: str = ""
    #: The server running the turn (its server id), recorded in ``TurnStarted``: recovery ends
    #: the turn at once when that server is known to be gone.
    owner: str = ""


class TurnEngine:
    """Runs turns. One engine serves many conversations; each conversation runs one turn at a time
    (enforced by the log's optimistic concurrency, so it holds across processes too)."""

    def __init__(
        self,
        log: EventLog,
        llm: LLM,
        *,
        tools: ToolRegistry | None = None,
        messages: Messages | None = None,
        clock: Clock | None = None,
        ids: Ids | None = None,
        config: EngineConfig | None = None,
        approval: ApprovalRule | None = None,
    ) -> None:
        """``approval(started, tool_name, arguments) -> bool``: whether a call needs a person's
        decision, beyond the tools declared ``requires_approval`` (a server's policy)."""
        self.log = log
        self.approval = approval
        self.llm = llm
        self.tools = tools or ToolRegistry()
        self.messages: Messages = messages if messages is not None else LogHistory()
        self.clock = clock or SystemClock()
        self.ids = ids or UuidIds()
        self.config = config or EngineConfig()

    async def create_conversation(
        self,
        conversation_id: str | None = None,
        *,
        system_prompt: str | None = None,
        model: str = "",
        temperature: float | None = None,
        max_tokens: int | None = None,
        thinking: bool = False,
        tenant: str = "",
        title: str = "",
        subject: str = "",
    ) -> str:
        """Open a conversation: ``ConversationCreated`` at version 1, recording who created it
        (``tenant``, ``subject``). Raises ``ConversationExists`` if the id is taken."""
        conv = conversation_id or self.ids.new("conv")
        created = ConversationCreated(
            system_prompt=system_prompt,
            provider=self.llm.provider,
            model=model,
            temperature=temperature,
            max_tokens=max_tokens,
            thinking=thinking,
            tenant=tenant,
            title=title,
            subject=subject,
        )
        try:
            recs = await self.log.append(conv, [NewEvent(created)], 0, recorded_at=self.clock.now())
        except ConcurrencyError:
            raise ConversationExists(conv) from None
        await self.project_created(conv, recs)
        return conv

    async def project_created(self, conv: str, recs: list[Recorded]) -> None:
        """Hand a new conversation's first event to the rows (it is listed before its first turn).
        A failure is logged, not raised: the conversation exists, and its first turn projects it."""
        try:
            await self.messages.sink(conv, 0).committed(recs)
        except Exception:
            logger.exception("conversation %s created, not yet projected (its first turn will)", conv)

    async def fork(
        self,
        parent_id: str,
        at_version: int,
        conversation_id: str | None = None,
        *,
        tenant: str | None = None,
        subject: str = "",
        title: str | None = None,
    ) -> str:
        """A new conversation branching off ``parent_id`` at ``at_version``, a turn boundary (see
        ``engine/_fork.py``): its history is the parent's up to there. Regenerating an answer or
        editing a message is a fork before that turn, then a new turn."""
        return await fork(self, parent_id, at_version, conversation_id, tenant=tenant, subject=subject, title=title)

    async def _begin(self, conv: str, req: TurnRequest) -> tuple[TurnRun, list[Recorded]]:
        cfg = self.config
        message_size = utf8_size(req.user_message)
        if message_size > cfg.max_message_bytes:
            raise MessageTooLarge(conv, message_size, cfg.max_message_bytes)
        last = await self.log.last(conv)
        if last is None:
            raise ConversationNotFound(conv)
        if type(last.event) not in (ConversationCreated, TurnFinalized, TurnFailed):
            if type(last.event) is ConversationErased:
                raise ConversationErasedError(conv)
            if type(last.event) in (ApprovalRequested, ApprovalDecided):
                raise TurnAwaitingApproval(conv, last.turn_id)
            raise TurnInProgress(conv, last.turn_id)
        # The log's version is its number of events: one read, already made.
        if last.version >= cfg.max_conversation_events:
            raise ConversationTooLarge(conv, "max_conversation_events", last.version, cfg.max_conversation_events)
        first = (await self.log.read(conv, 0, 1))[0]
        # Checked reads: both events' stored bytes hash to their stored hashes, and the first one
        # starts the chain. The events between are checked where they are read (LogHistory, or
        # the row store's catch-up); rows already up to date were built from checked reads.
        ChainCheck.after(last)
        ChainCheck(conv).check([first])
        created = first.event
        if not isinstance(created, ConversationCreated):
            raise IntegrityError(conv, first.version, "the conversation does not start with ConversationCreated")
        # Earlier turns: a fork's parents' up to its fork point, then its own; trimmed to the
        # history budget if one is set (whole oldest turns, recorded in TurnStarted).
        prior, dropped = await prior_for_turn(self, conv, created, last.version, req.user_message)
        # What the request would carry: the history is in memory already, summing it is cheap.
        history_size = message_size + history_bytes(prior)
        if history_size > cfg.max_conversation_bytes:
            raise ConversationTooLarge(conv, "max_conversation_bytes", history_size, cfg.max_conversation_bytes)

        fold = ConversationFold()
        fold.version, fold.last_hash, fold.created = last.version, last.hash, created
        turn_id = self.ids.new("turn")
        started = TurnStarted(
            user_message=req.user_message,
            user_message_id=self.ids.new("msg"),
            assistant_message_id=self.ids.new("msg"),
            provider=self.llm.provider,
            # The model the request body names: the turn's, else the conversation's, else the
            # adapter's default (recorded, so the log never says "" while a default was sent).
            model=req.model or created.model or getattr(self.llm, "model", "") or "",
            temperature=req.temperature if req.temperature is not None else created.temperature,
            max_tokens=req.max_tokens if req.max_tokens is not None else created.max_tokens,
            thinking=req.thinking if req.thinking is not None else created.thinking,
            tools=self.tools.specs(req.enabled_tools, req.permission_level),
            system_prompt=created.system_prompt,
            max_iterations=req.max_iterations or self.config.max_iterations,
            permission_level=req.permission_level,
            tenant=req.tenant,
            subject=req.subject,
            owner=req.owner,
            history=FULL,
            history_dropped=dropped,
        )
        history = TurnHistory(prior, started, round_trip_reasoning=self.llm.round_trip_reasoning)
        caller = ToolContext(
            conversation_id=conv,
            turn_id=turn_id,
            call_id="",
            permission_level=started.permission_level,
            user_id=req.user_id,
            username=req.username,
            workspace=req.workspace,
        )
        run = new_run(
            self,
            conv,
            turn_id,
            last.version,
            self.messages.sink(conv, last.version),
            fold=fold,
            history=history,
            caller=caller,
            budget=OutputBudget(cfg.max_turn_bytes, cfg.max_turn_deltas),
        )
        run.commit.record(started)
        try:
            recs = await run.commit.flush()
        except ConcurrencyError:
            # Another writer (this process or another server) appended first: a turn started there.
            raise TurnInProgress(conv, "(started concurrently)") from None
        return run, recs

    async def run_turn(self, conversation_id: str, request: TurnRequest) -> AsyncIterator[Recorded]:
        """Run one turn, yielding each event once it is committed. Raises ``TurnRefused`` before
        anything is written if the turn cannot start; after that it never raises except
        ``LogError`` (the log itself is unreachable, so nothing could be recorded)."""
        run, first = await self._begin(conversation_id, request)
        # aclosing: a consumer that closes this generator closes the turn's (which records it).
        async with contextlib.aclosing(drive(run, first, run.iterate())) as events:
            async for rec in events:
                yield rec

    async def decide(
        self,
        conversation_id: str,
        call_id: str,
        decision: str,
        *,
        reason: str = "",
        tenant: str = "",
        subject: str = "",
        owner: str = "",
    ) -> AsyncIterator[Recorded]:
        """Record a person's decision on a call of the conversation's parked turn (``approve`` or
        ``deny``, why, who), yielding it once committed. The decision that completes the turn's
        set is committed with ``TurnResumed`` (naming ``owner``, the server that runs it on), and
        the turn goes on here: its events follow, until it ends or parks again. Raises
        ``NotAwaitingApproval``, ``UnknownCall``, ``AlreadyDecided`` (nothing written)."""
        turn = decide_and_continue(
            self, conversation_id, call_id, decision, reason=reason, tenant=tenant, subject=subject, owner=owner
        )
        async with contextlib.aclosing(turn) as events:
            async for rec in events:
                yield rec

    async def resume_turn(
        self, conversation_id: str, *, owner: str = "", tenant: str = "", subject: str = ""
    ) -> AsyncIterator[Recorded]:
        """Take up a turn whose process died (recovery's resume): ``TurnResumed``, then the turn
        goes on from where the log says it stood (see ``_resume``). Raises ``NoTurnRunning`` when
        the last turn has ended, ``TurnAwaitingApproval`` when it is parked, and
        ``ConcurrencyError`` when someone else wrote first (its process is alive after all)."""
        turn = resume_interrupted(self, conversation_id, owner=owner, tenant=tenant, subject=subject)
        async with contextlib.aclosing(turn) as events:
            async for rec in events:
                yield rec
