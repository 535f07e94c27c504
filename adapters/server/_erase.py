"""Erasure over HTTP, and retention on a schedule (issue 15; ``turnlog.adapters.crypto``).

``DELETE /conversations/{id}`` erases the conversation's content: its data key is destroyed and
``ConversationErased`` records who asked (the principal's tenant and subject), when, and why
(``?reason=``, kept in clear). The conversation stays: its metadata (times, token counts, tool
names, statuses) is listed and replayed, its content reads ``[erased]``, ``verify`` and exports
still pass, and no turn may start in it again (409 ``conversation_erased``).

Who may erase: the conversation's owner (who may write it), or a principal of its tenant at
``ServerConfig.admin_level`` or above (an administrator acting on a request); an auditor below
that level reads but does not erase (403). Answers: 200 ``{"id", "erased": true}``; 409
``turn_in_progress`` (cancel the turn first), ``conversation_erased`` (already done),
``not_encrypted`` (written before encryption: its content is in the log in clear).

Retention: with ``ServerConfig.retention_days`` set (``turnlog serve --retention-days N``) every
``retention_every`` seconds the server erases each conversation whose last event is older than
N days (``erase_older_than``); several servers over one log may all sweep (an erase that lost
the race finds the conversation erased and skips it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Protocol

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from turnlog.adapters.crypto import Erasure, erase, erase_older_than, erase_subject
from turnlog.engine import Clock, EventLog, LogError, RequestError
from turnlog.projections import MessageStore

from ._auth import Authenticator, principal_of
from ._config import ServerConfig
from ._tenancy import Tenancy

logger = logging.getLogger("turnlog.server")

#: The longest ``?reason=`` kept with an erasure.
MAX_REASON = 1000


class Erased(msgspec.Struct, frozen=True):
    """The answer of ``DELETE /conversations/{id}``: the conversation whose content is erased."""

    id: str
    erased: bool = True


class SubjectErased(msgspec.Struct, frozen=True):
    """The answer of ``DELETE /conversations?subject=``: what was erased, and what was left with
    its error's code (``turn_in_progress``, ``not_encrypted``, ``conversation_erased``)."""

    subject: str
    erased: list[str]
    skipped: dict[str, str]


class _Service(Protocol):
    config: ServerConfig
    authenticate: Authenticator
    tenancy: Tenancy
    log: EventLog
    messages: MessageStore | None
    clock: Clock


def routes(service_of: Callable[[Request], _Service]) -> list[Route]:
    """``DELETE /conversations/{id}`` and ``DELETE /conversations?subject=`` (every conversation
    a subject created in the caller's tenant, in one call: the subject itself, or an administrator).
    ``service_of``: the app's way to find its started service."""

    async def delete_conversation(request: Request) -> Response:
        service = service_of(request)
        who = await principal_of(request, service.authenticate)
        conv = request.path_params["id"]
        reason = _reason(request)
        try:
            await service.tenancy.check(conv, who, "write")
        except RequestError as exc:
            # An administrator of the tenant may erase what it may read but not write.
            if exc.code != "forbidden" or who.level < service.config.admin_level:
                raise
        await erase(
            service.log,
            service.messages,
            [conv],
            reason=reason,
            tenant=who.tenant,
            subject=who.subject,
            clock=service.clock,
        )
        return Response(msgspec.json.encode(Erased(conv)), media_type="application/json")

    async def delete_subject(request: Request) -> Response:
        service = service_of(request)
        who = await principal_of(request, service.authenticate)
        subject = request.query_params.get("subject", "")
        reason = _reason(request)
        if not subject or len(subject) > MAX_REASON or not subject.isprintable():
            raise RequestError("invalid_query", "subject= names whose conversations to erase (printable, non-empty)")
        if subject != who.subject and who.level < service.config.admin_level:
            raise RequestError("forbidden", "only the subject itself or an administrator of its tenant may erase them")
        done = await erase_subject(
            service.log,
            service.messages,
            tenant=who.tenant,
            subject=subject,
            reason=reason,
            by_tenant=who.tenant,
            by_subject=who.subject,
            clock=service.clock,
        )
        body = SubjectErased(subject, done.erased, done.skipped)
        return Response(msgspec.json.encode(body), media_type="application/json")

    return [
        Route("/conversations/{id}", delete_conversation, methods=["DELETE"]),
        Route("/conversations", delete_subject, methods=["DELETE"]),
    ]


def _reason(request: Request) -> str:
    reason = request.query_params.get("reason", "")
    if len(reason) > MAX_REASON or not reason.isprintable():
        raise RequestError("invalid_query", f"reason must be at most {MAX_REASON} printable characters")
    return reason


class Retention:
    """The retention sweep's task, from ``start`` to ``stop``: every ``every`` seconds, erase the
    conversations whose last event is more than ``days`` days old."""

    def __init__(
        self, log: EventLog, messages: MessageStore | None, *, days: float, every: float, clock: Clock
    ) -> None:
        self._log = log
        self._messages = messages
        self.days = days
        self.every = every
        self._clock = clock
        self._task: asyncio.Task[None] | None = None
        #: Conversations erased by this process's sweeps (for the operator and the tests).
        self.erased = 0

    async def sweep(self) -> Erasure:
        """One sweep, now."""
        done = await erase_older_than(
            self._log,
            self._messages,
            days=self.days,
            reason=f"retention: no activity for {self.days:g} days",
            by_tenant="",
            by_subject="retention",
            clock=self._clock,
        )
        self.erased += len(done.erased)
        if done.erased:
            logger.info("retention erased %d conversations older than %g days", len(done.erased), self.days)
        return done

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            try:
                await self.sweep()
            except LogError as exc:
                logger.warning("retention sweep failed (retrying in %g s): %s", self.every, exc)
            await asyncio.sleep(self.every)
