"""Tenancy: which conversations a principal may see.

Tenancy is part of the conversation's first event (``ConversationCreated.tenant``), not a table
beside the log: the log stays the only state servers share, and who owns what is auditable. A
conversation of another tenant answers 404 on every endpoint, exactly like one that does not
exist, so ids cannot be probed.

The first event also holds the conversation's settings (its provider). It never changes, so it
is cached with no invalidation: bounded, oldest out first, one log read per conversation.
"""

from __future__ import annotations

from turnlog.engine import ConversationCreated, EventLog, RequestError

from ._auth import Principal


class Tenancy:
    """The settings of conversations, each shown only to its own tenant."""

    def __init__(self, log: EventLog, *, capacity: int) -> None:
        self._log = log
        self._capacity = capacity
        self._created: dict[str, ConversationCreated] = {}

    async def created(self, conversation_id: str, principal: Principal) -> ConversationCreated:
        """The conversation's settings; 404 unless it exists and belongs to the principal's tenant."""
        created = await self._first_event(conversation_id)
        if created is None or created.tenant != principal.tenant:
            # Same answer for "not yours" as for "not there": ids cannot be probed.
            raise RequestError("not_found", f"no conversation {conversation_id!r}")
        return created

    async def _first_event(self, conversation_id: str) -> ConversationCreated | None:
        created = self._created.get(conversation_id)
        if created is None:
            first = await self._log.read(conversation_id, 0, 1)
            if first and isinstance(first[0].event, ConversationCreated):
                created = first[0].event
                self._remember(conversation_id, created)
        return created

    def _remember(self, conversation_id: str, created: ConversationCreated) -> None:
        # A conversation's first event never changes: safe to cache for ever (bounded, FIFO).
        if len(self._created) >= self._capacity:
            self._created.pop(next(iter(self._created)))
        self._created[conversation_id] = created
