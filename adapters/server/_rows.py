"""The message rows of a conversation, as served by ``GET .../messages``.

Rows are a projection of the log, written by the turn after each commit. A crash between a
turn's last commit and its rows leaves them behind the log: they are then recomputed from the
log before they are served, never served stale. A turn this process still runs is left alone
(its task writes its rows a moment after its last commit).
"""

from __future__ import annotations

import json
from collections.abc import Container
from typing import Any

import msgspec
from turnlog.engine import ConversationCreated, EventLog, TurnFailed, TurnFinalized
from turnlog.projections import MessageStore, catch_up

#: The events after which no turn is writing rows: a turn's end, or a conversation with no turn.
_QUIET = (TurnFinalized, TurnFailed, ConversationCreated)


class MessageRows:
    """A conversation's rows as JSON, caught up with the log first when a crash left them behind."""

    def __init__(self, log: EventLog, messages: MessageStore, *, running: Container[str]) -> None:
        """``running``: the conversations whose turns this process runs, as a live view."""
        self._log = log
        self._messages = messages
        self._running = running

    async def as_json(self, conversation_id: str) -> list[dict[str, Any]]:
        last = await self._log.last(conversation_id)
        if (
            last is not None
            and conversation_id not in self._running
            and type(last.event) in _QUIET
            and await self._messages.applied_version(conversation_id) < last.version
        ):
            await catch_up(self._log, self._messages, conversation_id)
        out = []
        for row in await self._messages.rows(conversation_id):
            item = msgspec.to_builtins(row)
            item["content"] = json.loads(row.content)
            item["usage"] = json.loads(row.usage) if row.usage else None
            out.append(item)
        return out
