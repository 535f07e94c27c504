"""Where the message rows live, as a port: ``MessageStore`` (in memory here; the SQL store is
``turnlog.adapters.stores.SqlMessageStore``).

Rows are a projection: ``rebuild`` recomputes every row from the log, and each store remembers
how far it has applied each conversation (``applied_version``) so the engine can catch a
conversation up after a crash between an event's commit and its rows' write.

A ``MessageStore`` is the engine's ``Messages`` port: it folds each committed batch of a turn
into rows and saves them before the batch is shown (``sink``), and gives the next request the
words of earlier turns from its rows (``history``).

A store may keep the conversations' summaries beside its rows (``conversations``, a
``ConversationIndex``): the same sink folds them (``SummaryFold``) and saves them with the rows
(``save_changes``: one transaction in SQL), ``catch_up`` and ``rebuild`` recompute both, and
``history`` hands the turn's sink the summary it starts from, folded from the log when the
stored one fell behind (the turn's first save writes it).
"""

from __future__ import annotations

import abc
import json
from collections.abc import Sequence

from turnlog.engine import EventLog, PriorMessage, Recorded

from ._conversations import (
    SUMMARY_EVENTS,
    ConversationIndex,
    ConversationSummary,
    MemoryConversationIndex,
    SummaryFold,
    fold_summary,
)
from ._messages import MessageFold, MessageRow

#: The events whose batch may change a row or a summary (the rest are folded, never saved).
_WATCHED = SUMMARY_EVENTS
#: ``history`` hands the summary it read to the turn's sink (no second read); refused turns leave
#: theirs behind, so at most this many are kept.
_BASES_KEPT = 1024


def row_text(row: MessageRow) -> str:
    """The words of a row (its content is ``{"text": ...}`` JSON)."""
    try:
        obj = json.loads(row.content)
    except ValueError:
        return row.content
    return obj.get("text", row.content) if isinstance(obj, dict) else row.content


def history_of(rows: Sequence[MessageRow]) -> list[PriorMessage]:
    """What the next request repeats of these rows: finished turns, no empty answers."""
    out: list[PriorMessage] = []
    for row in rows:
        if row.status == "live":
            continue
        text = row_text(row)
        if row.role == "assistant" and not text:
            continue
        out.append(PriorMessage(row.role, text))
    return out


class _TurnSink:
    """One turn's rows and summary: every committed batch is folded, and what a batch changed is
    saved before the batch is shown."""

    __slots__ = ("conversation_id", "fold", "loaded", "store", "summary")

    def __init__(self, store: MessageStore, conversation_id: str, version: int) -> None:
        self.store = store
        self.conversation_id = conversation_id
        self.fold = MessageFold(conversation_id)
        self.fold.version = version
        # The summary as of ``version``: none to start from at a conversation's creation, the
        # one ``history`` read (or read at the first batch) before a turn.
        self.summary: SummaryFold | None = None
        self.loaded = store.conversations is None or version == 0
        if store.conversations is not None and version == 0:
            self.summary = SummaryFold(conversation_id)
        elif not self.loaded:
            base = store._take_base(conversation_id, version)
            if base is not None:
                self.summary, self.loaded = SummaryFold(conversation_id, base), True

    async def _load(self) -> None:
        self.loaded = True
        index = self.store.conversations
        base = await index.get(self.conversation_id) if index is not None else None
        # A summary behind the log is not folded on: catch-up recomputes it from the log.
        if base is not None and base.version == self.fold.version:
            self.summary = SummaryFold(self.conversation_id, base)

    async def committed(self, records: Sequence[Recorded]) -> None:
        if not self.loaded:
            await self._load()
        changed: list[MessageRow] = []
        touched = False
        apply = self.fold.apply
        summary = self.summary
        for rec in records:
            if type(rec.event) in _WATCHED:
                changed.extend(apply(rec))
                if summary is not None and summary.apply(rec):
                    touched = True
            else:
                apply(rec)
        if changed or touched:
            version = records[-1].version
            at = summary.at(version) if touched and summary is not None else None
            await self.store.save_changes(self.conversation_id, changed, at, version)


class MessageStore(abc.ABC):
    #: The conversations' summaries kept beside the rows, by the same sink (None: this store
    #: keeps none, and its conversations cannot be listed).
    conversations: ConversationIndex | None = None

    @abc.abstractmethod
    async def save(self, conversation_id: str, rows: Sequence[MessageRow], version: int) -> None:
        """Upsert rows (by id) and record that the conversation is applied up to ``version``."""

    @abc.abstractmethod
    async def rows(self, conversation_id: str) -> list[MessageRow]:
        """The conversation's rows in ``seq`` order."""

    async def rows_page(self, conversation_id: str, after_seq: int, limit: int) -> list[MessageRow]:
        """At most ``limit`` of the conversation's rows whose ``seq`` is above ``after_seq``, in
        ``seq`` order: one page of a long conversation (a SQL store reads only the page)."""
        rows = [r for r in await self.rows(conversation_id) if r.seq > after_seq]
        return sorted(rows, key=lambda r: r.seq)[:limit]

    async def save_changes(
        self, conversation_id: str, rows: Sequence[MessageRow], summary: ConversationSummary | None, version: int
    ) -> None:
        """What a batch changed: its rows (as ``save`` saves them, applied up to ``version``) and
        the conversation's summary (None: unchanged). A store that keeps both in one database
        writes them in one transaction."""
        await self.save(conversation_id, rows, version)
        if summary is not None and self.conversations is not None:
            await self.conversations.save(summary)

    @abc.abstractmethod
    async def applied_version(self, conversation_id: str) -> int: ...

    @abc.abstractmethod
    async def clear(self) -> None: ...

    async def live_conversations(self) -> list[str]:
        """Conversations with a row of status ``live`` (a turn started and not ended, as far as
        the rows know): the cheap candidate list of the server's recovery sweep. A store that
        cannot answer raises NotImplementedError and the sweep examines every conversation."""
        raise NotImplementedError

    # -- the engine's Messages port -------------------------------------------------------------

    async def history(self, log: EventLog, conversation_id: str, head: int) -> list[PriorMessage]:
        # A conversation that has only its first event has no rows to catch up (its first turn).
        behind = head > 1 and await self.applied_version(conversation_id) < head
        index = self.conversations
        if behind:
            await catch_up(log, self, conversation_id)  # the rows and the summary
        elif index is not None:
            summary = await index.get(conversation_id)
            if summary is None or summary.version < head:
                # Only the summary is behind (a conversation its creator did not index): folded
                # from the log here, written by the turn's first save (no write of its own).
                summary = fold_summary(conversation_id, [rec async for rec in log.iter_stream(conversation_id)])
            if summary is not None:
                self._keep_base(summary)
        return history_of(await self.rows(conversation_id))

    def sink(self, conversation_id: str, version: int) -> _TurnSink:
        return _TurnSink(self, conversation_id, version)

    async def catch_up(self, log: EventLog, conversation_id: str) -> int:
        return await catch_up(log, self, conversation_id)

    # -- the summary history() read, handed to the turn's sink --------------------------------

    def _keep_base(self, summary: ConversationSummary) -> None:
        bases: dict[str, ConversationSummary] = self.__dict__.setdefault("_summary_bases", {})
        if len(bases) >= _BASES_KEPT:
            bases.pop(next(iter(bases)))
        bases[summary.id] = summary

    def _take_base(self, conversation_id: str, version: int) -> ConversationSummary | None:
        base = self.__dict__.get("_summary_bases", {}).pop(conversation_id, None)
        return base if base is not None and base.version == version else None


class MemoryMessageStore(MessageStore):
    def __init__(self, conversations: ConversationIndex | None = None) -> None:
        """``conversations``: where the summaries go (default: a ``MemoryConversationIndex``)."""
        self._rows: dict[str, dict[str, MessageRow]] = {}
        self._versions: dict[str, int] = {}
        self.conversations = conversations if conversations is not None else MemoryConversationIndex()

    async def save(self, conversation_id: str, rows: Sequence[MessageRow], version: int) -> None:
        conv = self._rows.setdefault(conversation_id, {})
        for row in rows:
            conv[row.id] = row
        self._versions[conversation_id] = version

    async def rows(self, conversation_id: str) -> list[MessageRow]:
        return sorted(self._rows.get(conversation_id, {}).values(), key=lambda r: r.seq)

    async def applied_version(self, conversation_id: str) -> int:
        return self._versions.get(conversation_id, 0)

    async def clear(self) -> None:
        self._rows.clear()
        self._versions.clear()

    async def live_conversations(self) -> list[str]:
        return [c for c, rows in self._rows.items() if any(r.status == "live" for r in rows.values())]


async def catch_up(log: EventLog, store: MessageStore, conversation_id: str) -> int:
    """Bring one conversation's rows (and its summary, if the store keeps them) up to the log's
    head. Returns the number of rows written."""
    fold = MessageFold(conversation_id)
    summary = SummaryFold(conversation_id)
    changed: dict[str, MessageRow] = {}
    async for rec in log.iter_stream(conversation_id):
        for row in fold.apply(rec):
            changed[row.id] = row
        summary.apply(rec)
    await store.save_changes(conversation_id, list(changed.values()), summary.at(), fold.version)
    return len(changed)


async def rebuild(log: EventLog, store: MessageStore) -> int:
    """Drop every row (and summary) and recompute them all from the log. Returns the number of
    rows."""
    await store.clear()
    if store.conversations is not None:
        await store.conversations.clear()
    total = 0
    for conversation_id in await log.streams():
        total += await catch_up(log, store, conversation_id)
    return total
