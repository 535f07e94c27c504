"""Controls: what a person does to a running turn, written to the log like the turn itself.

``POST /conversations/{id}/cancel`` stops the conversation's running turn, whichever server runs
it. The request is an event of the conversation's own stream (``CancelRequested``: the caller's
tenant and subject, the optional ``reason``; when is its ``recorded_at``), appended by
``turnlog.engine.cancel_turn``: in the hash chain, replayed and audited like every other event.
Nothing here reaches into another process: the server running the turn reads the cancel from the
log (its commits meet it; when it is quiet, it follows the stream, which PostgreSQL's NOTIFY wakes
on every server) and ends the turn as ``TurnFailed(cancelled)``, keeping its partial output; every
follower, on every server, gets that final ``error`` frame from the log.

Answers: 200 ``{"turn_id", "version"}`` (the turn asked to stop, the version of the cancel);
409 ``no_turn_running`` when the conversation's last turn has ended (nothing written; of two
racing cancels, the second finds the turn ended, or is recorded too and changes nothing);
404 for a conversation the caller may not read, 403 for one it may read but not write (an
auditor): stopping a turn is writing, as starting one is (``_tenancy``). A turn left live by a
dead server is cancelled all the same (200: it is live as far as the log knows); the recovery
sweep ends it as ``interrupted`` once its newest event (now the cancel) is older than the grace.
"""

from __future__ import annotations

import msgspec
from turnlog.engine import Clock, EventLog, cancel_turn

from ._auth import Principal
from ._tenancy import Tenancy


class CancelTurn(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """The body of ``POST .../cancel`` (may be empty)."""

    #: Why, in the caller's words: recorded in the cancel and in the turn's failure message.
    reason: str = ""


class Cancelled(msgspec.Struct, frozen=True):
    """The answer of ``POST .../cancel``: the turn asked to stop, and the version of the cancel."""

    turn_id: str
    version: int


class Controls:
    """Cancels, as events: who asked is the authenticated principal."""

    def __init__(self, log: EventLog, tenancy: Tenancy, clock: Clock) -> None:
        self._log = log
        self._tenancy = tenancy
        self._clock = clock

    async def cancel(self, conversation_id: str, principal: Principal, body: CancelTurn) -> Cancelled:
        """Ask the conversation's running turn to stop (any server runs it). 404/403 as for
        starting a turn; ``NoTurnRunning`` (409) when none is running."""
        await self._tenancy.created(conversation_id, principal, "write")
        rec = await cancel_turn(
            self._log,
            conversation_id,
            tenant=principal.tenant,
            subject=principal.subject,
            reason=body.reason,
            clock=self._clock,
        )
        return Cancelled(rec.turn_id, rec.version)
