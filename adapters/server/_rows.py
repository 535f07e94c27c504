"""The message rows of a conversation, as served by ``GET .../messages`` (in pages).

Rows are a projection of the log, written by the turn after each commit. A crash between a
turn's last commit and its rows leaves them behind the log: they are then recomputed from the
log before they are served, never served stale (so is the conversation's summary, for ``GET
/conversations/{id}``). That includes the moment between a turn's last commit and its task's row
save, which a client that saw ``done`` may hit: the catch-up writes the same rows the task is
about to (upserts of the same values), so the two never disagree.
"""

from __future__ import annotations

import json
from typing import Any

import msgspec
from turnlog.engine import (
    ApprovalDecided,
    ApprovalRequested,
    ConversationCreated,
    EventLog,
    Recorded,
    TurnFailed,
    TurnFinalized,
)
from turnlog.projections import MessageRow, MessageStore, catch_up

#: The events after which no turn is writing rows: a turn's end, or a conversation with no turn.
_QUIET = (TurnFinalized, TurnFailed, ConversationCreated)
#: A turn parked awaiting approval is live, and writes no rows either until a decision.
_PARKED = (ApprovalRequested, ApprovalDecided)


class MessageRows:
    """A conversation's rows as JSON, caught up with the log first when a crash left them behind."""

    def __init__(self, log: EventLog, messages: MessageStore) -> None:
        self._log = log
        self._messages = messages

    async def fresh(self, conversation_id: str, *, summary: bool = False) -> tuple[Recorded | None, bool]:
        """The conversation's last event, once its rows (and with ``summary`` its summary) are
        caught up with it, and whether a turn is live."""
        last = await self._log.last(conversation_id)
        if last is None:
            return None, False
        quiet = type(last.event) in _QUIET
        if quiet or type(last.event) in _PARKED:
            behind = await self._messages.applied_version(conversation_id) < last.version
            index = self._messages.conversations
            if summary and not behind and index is not None:
                kept = await index.get(conversation_id)
                behind = kept is None or kept.version < last.version
            if behind:
                await catch_up(self._log, self._messages, conversation_id)
        return last, not quiet

    async def page(self, conversation_id: str, after_seq: int, limit: int) -> tuple[list[dict[str, Any]], bool]:
        """At most ``limit`` rows after ``seq`` ``after_seq``, and whether more follow."""
        await self.fresh(conversation_id)
        rows = await self._messages.rows_page(conversation_id, after_seq, limit + 1)
        return [_row_json(row) for row in rows[:limit]], len(rows) > limit


def _row_json(row: MessageRow) -> dict[str, Any]:
    item = msgspec.to_builtins(row)
    item["content"] = json.loads(row.content)
    item["usage"] = json.loads(row.usage) if row.usage else None
    return item
