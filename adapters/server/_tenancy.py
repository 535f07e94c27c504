"""Tenancy and subjects: which conversations a principal may read, write and audit.

Who owns a conversation is part of its first event (``ConversationCreated.tenant`` and
``.subject``, the principal who created it), not a table beside the log: the log stays the only
state servers share, and who owns what is auditable. ``may`` is the one rule, used by every
endpoint:

- another tenant's conversation: nothing, whatever the level;
- within the tenant, the subject who created it reads and writes it (starts turns);
- a principal at ``auditor_level`` or above reads every conversation of its tenant, and may
  ``audit`` it (the requests sent to the model); an auditor reads, it does not write;
- a conversation created before subjects existed (subject ``""``) belongs to the tenant as a
  whole: every subject of the tenant reads and writes it (and only an auditor audits it).

A conversation the principal may not read answers 404 on every endpoint, exactly like one that
does not exist, so ids cannot be probed. One it may read but not act on as asked (an auditor
starting a turn, a non-auditor asking for the requests) answers 403 ``forbidden``: the caller
already knows it exists, and 403 says why.

The first event also holds the conversation's settings (its provider). It never changes, so it
is cached with no invalidation: bounded, oldest out first, one log read per conversation.
"""

from __future__ import annotations

from typing import Literal

from turnlog.engine import ConversationCreated, EventLog, RequestError

from ._auth import Principal

#: What a principal asks to do with a conversation.
Action = Literal["read", "write", "audit"]


def may(principal: Principal, created: ConversationCreated, action: Action, *, auditor_level: int) -> bool:
    """Whether ``principal`` may ``action`` the conversation that ``created`` opened."""
    if created.tenant != principal.tenant:
        return False
    # Subject "": created before subjects existed (or by a subjectless principal): the tenant's.
    owner = created.subject in ("", principal.subject)
    auditor = principal.level >= auditor_level
    if action == "read":
        return owner or auditor
    if action == "write":
        return owner
    return auditor


class Tenancy:
    """The settings of conversations, each shown only to whom ``may`` lets see it."""

    def __init__(self, log: EventLog, *, capacity: int, auditor_level: int) -> None:
        self._log = log
        self._capacity = capacity
        self._auditor_level = auditor_level
        self._created: dict[str, ConversationCreated] = {}

    async def created(self, conversation_id: str, principal: Principal, action: Action = "read") -> ConversationCreated:
        """The conversation's settings, once the principal may ``action`` it: 404 unless it exists
        and the principal may read it, 403 if it may read it but not ``action`` it."""
        created = await self._first_event(conversation_id)
        if created is None or not may(principal, created, "read", auditor_level=self._auditor_level):
            # Same answer for "not yours" as for "not there": ids cannot be probed.
            raise RequestError("not_found", f"no conversation {conversation_id!r}")
        if not may(principal, created, action, auditor_level=self._auditor_level):
            raise RequestError("forbidden", _FORBIDDEN[action].format(conversation_id, self._auditor_level))
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


_FORBIDDEN = {
    "write": "conversation {0!r} belongs to another subject: an auditor reads it, only its owner starts turns",
    "audit": "the requests of conversation {0!r} are shown to auditors only (permission level {1} or above)",
}
