"""Approvals: a person decides on a tool call before it runs, on any server, any time later.

A turn whose model asks for a tool that needs approval (the tool's ``requires_approval``, or the
policy's ``needs_approval(principal, tool, arguments)``: by default ``ServerConfig.approval_tools``)
records ``ApprovalRequested`` for each such call and parks (``awaiting_approval``): its task ends,
its stream sends one ``approval_required`` frame per call (``{"call_id", "name", "arguments"}``)
and ends. Nothing of it is held in memory: the log is the turn.

``POST /conversations/{id}/approvals`` with ``{"call_id", "decision": "approve" | "deny",
"reason"}`` records ``ApprovalDecided`` with the caller's tenant and subject, on whichever server
receives it. When it is the last decision the turn awaited, the turn goes on there (a task of
this service, as a started turn is; this server is its owner in ``TurnResumed``), and the answer
streams it as ``POST .../turns`` does, from the decision's ``approval_decided`` frame on: tool
calls and results (a denied call's result is ``success: false`` with the reason), the next model
call, until ``done``, ``error``, or another park. A decision that leaves calls undecided answers
its frame and ends.

Answers before any frame: 404/403 as for starting a turn (deciding is writing); 422 for a body
that is not ``{"call_id": str, "decision": "approve" | "deny", "reason"?: str}`` and 422
``unknown_call`` for a call that awaits no decision; 409 ``not_awaiting_approval`` when the
conversation's turn is not parked (ended, running, none) and 409 ``already_decided`` for a second
decision on a call (the first stands). Nothing is written then.

``resume`` is recovery's other choice (``ServerConfig.resume_interrupted``): a turn whose server
died is taken up here (``TurnResumed``) instead of being ended as interrupted.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Literal

import msgspec
from turnlog.engine import (
    ConcurrencyError,
    ConversationCreated,
    NoTurnRunning,
    Recorded,
    TurnAwaitingApproval,
    TurnEngine,
    TurnStarted,
)

from ._auth import Principal

logger = logging.getLogger("turnlog.server")


class Decide(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """The body of ``POST .../approvals``."""

    #: The tool call decided on (its id in the ``approval_required`` frame).
    call_id: str
    decision: Literal["approve", "deny"]
    #: Why, in the decider's words: recorded; a denied call's result carries it to the model.
    reason: str = ""


def approval_rule(policy: object) -> Callable[[TurnStarted, str, str], bool] | None:
    """The engine's approval rule from a policy's ``needs_approval(principal, tool, arguments)``
    (optional; sync), asked with the principal the turn records (its tenant, subject, level)."""
    ask = getattr(policy, "needs_approval", None)
    if ask is None:
        return None

    def needs(started: TurnStarted, tool: str, arguments: str) -> bool:
        principal = Principal(started.tenant, started.permission_level, started.subject)
        return bool(ask(principal, tool, arguments))

    return needs


class Approvals:
    """Decisions, and turns taken up again, run as tasks of the service (``spawn``)."""

    def __init__(
        self,
        tenancy: Any,
        engine_of: Callable[[str, ConversationCreated], TurnEngine],
        spawn: Callable[[str, AsyncIterator[Recorded]], None],
        server_id: str,
        log: Any,
    ) -> None:
        self._tenancy = tenancy
        self._engine_of = engine_of
        self._spawn = spawn
        self._server_id = server_id
        self._log = log

    async def decide(self, conversation_id: str, principal: Principal, body: Decide) -> Recorded:
        """Record the decision; when it completes the turn's set the turn goes on in a task of
        this service. Returns the decision (its version: the answer's frames start there)."""
        created = await self._tenancy.created(conversation_id, principal, "write")
        engine = self._engine_of(conversation_id, created)
        turn = engine.decide(
            conversation_id,
            body.call_id,
            body.decision,
            reason=body.reason,
            tenant=principal.tenant,
            subject=principal.subject,
            owner=self._server_id,
        )
        decided = await turn.__anext__()  # refusals raise here, before anything is streamed
        self._spawn(conversation_id, turn)
        return decided

    async def resume(self, conversation_id: str) -> Recorded | None:
        """Recovery's resume: take up the conversation's interrupted turn here. None when it
        could not be taken (its process wrote meanwhile, it ended, or it is parked)."""
        first = (await self._log.read(conversation_id, 0, 1))[0].event
        engine = self._engine_of(conversation_id, first)
        turn = engine.resume_turn(conversation_id, owner=self._server_id)
        try:
            resumed = await turn.__anext__()
        except (ConcurrencyError, NoTurnRunning, TurnAwaitingApproval) as exc:
            logger.info("turn of %s not resumed: %s", conversation_id, exc)
            return None
        self._spawn(conversation_id, turn)
        return resumed


def spawner(
    running: dict[str, asyncio.Task[None]], drive: Callable[[str, AsyncIterator[Recorded]], Awaitable[None]]
) -> Callable[[str, AsyncIterator[Recorded]], None]:
    """Runs the rest of a turn as a task of the service (listed in ``running``)."""

    def spawn(conversation_id: str, turn: AsyncIterator[Recorded]) -> None:
        task = asyncio.get_running_loop().create_task(drive(conversation_id, turn))  # type: ignore[arg-type]
        running[conversation_id] = task

    return spawn
