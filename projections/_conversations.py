"""The conversations projection: one summary per conversation, the index that lists them.

A summary is a fold of the conversation's events (``SummaryFold``): who created it and when
(``ConversationCreated``), how many turns it has, how its last turn stands (``live`` from
``TurnStarted``, ``awaiting_approval`` while it is parked (``ApprovalRequested`` until
``TurnResumed``), then ``finalized`` or ``failed``), the tokens its turns used (each finished turn's
summed usage, a failed turn's usage recorded so far: what the assistant rows say) and its last
activity, ``updated_at``: the time of the newest of those events. A summary changes only at a
conversation's creation and at a turn's start and end, the batches after which the message rows
change too, so the row sink keeps both with the same writes (``MessageStore.save_changes``).

``ConversationIndex`` is the port the summaries are kept behind, queried newest first by last
activity within a tenant (and some of its subjects), in keyset pages: ``before`` is the
``(updated_at, id)`` of the last summary of the previous page, so a page never repeats one and a
conversation created while a client pages through the list is never slipped in behind it.
``version`` is the log version a summary reflects: a save never takes a conversation back to an
older one (two servers catching up, a late turn's save).
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Sequence

import msgspec
from turnlog.engine import (
    ApprovalRequested,
    ConversationCreated,
    Recorded,
    TurnFailed,
    TurnFinalized,
    TurnResumed,
    TurnStarted,
    Usage,
    UsageRecorded,
)

#: The events a summary folds (the rest only move its version on).
SUMMARY_EVENTS = frozenset(
    {ConversationCreated, TurnStarted, UsageRecorded, ApprovalRequested, TurnResumed, TurnFinalized, TurnFailed}
)


class ConversationSummary(msgspec.Struct, frozen=True):
    id: str
    tenant: str
    subject: str
    title: str
    created_at: str
    #: The newest of: the creation, a turn's start, a turn's end (RFC 3339, as ``recorded_at``).
    updated_at: str
    turns: int = 0
    #: The last turn's status: ``live``, ``awaiting_approval``, ``finalized``, ``failed``; None
    #: before the first turn.
    last_status: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    #: The conversation this one was forked from (None: not a fork).
    parent: str | None = None
    #: The log version the summary reflects.
    version: int = 0


class SummaryFold:
    """One conversation's summary, event by event. ``apply`` says whether the summary changed
    (what a sink saves); ``at(version)`` is the summary as of that version."""

    __slots__ = ("_summary", "_turn_usage", "conversation_id", "version")

    def __init__(self, conversation_id: str, base: ConversationSummary | None = None) -> None:
        """``base``: the summary so far (None: the fold starts at the conversation's creation)."""
        self.conversation_id = conversation_id
        self._summary = base
        self.version = base.version if base is not None else 0
        self._turn_usage = Usage()

    def apply(self, rec: Recorded) -> bool:
        self.version = rec.version
        ev = rec.event
        kind = type(ev)
        if kind is UsageRecorded:
            self._turn_usage = self._turn_usage + Usage(ev.prompt_tokens, ev.completion_tokens, ev.total_tokens)
            return False
        if kind is ConversationCreated:
            parent = ev.parent.conversation_id if ev.parent else None
            self._summary = ConversationSummary(
                rec.stream_id,
                ev.tenant,
                ev.subject,
                ev.title,
                rec.recorded_at,
                rec.recorded_at,
                parent=parent,
                version=rec.version,
            )
            return True
        s = self._summary
        if s is None or kind not in SUMMARY_EVENTS:
            return False
        if kind is TurnStarted:
            self._turn_usage = Usage()
            self._summary = msgspec.structs.replace(
                s, turns=s.turns + 1, last_status="live", updated_at=rec.recorded_at, version=rec.version
            )
            return True
        if kind is ApprovalRequested or kind is TurnResumed:
            status = "awaiting_approval" if kind is ApprovalRequested else "live"
            self._summary = msgspec.structs.replace(
                s, last_status=status, updated_at=rec.recorded_at, version=rec.version
            )
            return True
        # A turn's end: a finished turn's usage is the sum TurnFinalized carries; a failed one's,
        # what its iterations recorded (the assistant row's usage, either way).
        usage = ev.usage if kind is TurnFinalized else self._turn_usage
        self._summary = msgspec.structs.replace(
            s,
            last_status="finalized" if kind is TurnFinalized else "failed",
            updated_at=rec.recorded_at,
            prompt_tokens=s.prompt_tokens + usage.prompt_tokens,
            completion_tokens=s.completion_tokens + usage.completion_tokens,
            total_tokens=s.total_tokens + usage.total_tokens,
            version=rec.version,
        )
        return True

    def at(self, version: int | None = None) -> ConversationSummary | None:
        """The summary, recorded as reflecting ``version`` (default: the last event applied)."""
        s = self._summary
        v = self.version if version is None else version
        return s if s is None or s.version == v else msgspec.structs.replace(s, version=v)


def fold_summary(conversation_id: str, events: Iterable[Recorded]) -> ConversationSummary | None:
    """The summary of a conversation, rebuilt from its events (None without its first event)."""
    fold = SummaryFold(conversation_id)
    for rec in events:
        fold.apply(rec)
    return fold.at()


#: A page's position: the ``(updated_at, id)`` of the last summary of the previous page.
Before = tuple[str, str]


def _key(s: ConversationSummary) -> Before:
    return (s.updated_at, s.id)


class ConversationIndex(abc.ABC):
    """Where the summaries are kept (in memory here; in SQL beside the log:
    ``turnlog.adapters.stores.SqlConversationIndex``)."""

    @abc.abstractmethod
    async def save(self, summary: ConversationSummary) -> None:
        """Upsert by id, unless the stored summary reflects a later version than this one."""

    @abc.abstractmethod
    async def get(self, conversation_id: str) -> ConversationSummary | None: ...

    @abc.abstractmethod
    async def page(
        self, tenant: str, subjects: Sequence[str] | None, *, limit: int, before: Before | None = None
    ) -> list[ConversationSummary]:
        """At most ``limit`` summaries of the tenant's conversations created by one of
        ``subjects`` (None: by anyone), newest first by ``(updated_at, id)``, only those after
        ``before`` in that order. An index query: it reads the page, never the whole tenant."""

    @abc.abstractmethod
    async def empty(self) -> bool:
        """Whether no summary is kept at all (an index that was never filled)."""

    @abc.abstractmethod
    async def clear(self) -> None: ...


class MemoryConversationIndex(ConversationIndex):
    def __init__(self) -> None:
        self._summaries: dict[str, ConversationSummary] = {}

    async def save(self, summary: ConversationSummary) -> None:
        old = self._summaries.get(summary.id)
        if old is None or old.version <= summary.version:
            self._summaries[summary.id] = summary

    async def get(self, conversation_id: str) -> ConversationSummary | None:
        return self._summaries.get(conversation_id)

    async def page(
        self, tenant: str, subjects: Sequence[str] | None, *, limit: int, before: Before | None = None
    ) -> list[ConversationSummary]:
        found = [
            s
            for s in self._summaries.values()
            if s.tenant == tenant
            and (subjects is None or s.subject in subjects)
            and (before is None or _key(s) < before)
        ]
        return sorted(found, key=_key, reverse=True)[:limit]

    async def empty(self) -> bool:
        return not self._summaries

    async def clear(self) -> None:
        self._summaries.clear()
