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
import contextlib
import json
import logging
from collections.abc import Sequence
from typing import Any, Protocol

from turnlog.engine import (
    CommitSink,
    EventLog,
    PriorMessage,
    Recorded,
    ToolCall,
    TurnFailed,
    TurnFinalized,
    TurnStarted,
)

from ._conversations import (
    SUMMARY_EVENTS,
    ConversationIndex,
    ConversationSummary,
    MemoryConversationIndex,
    SummaryFold,
    fold_summary,
)
from ._messages import APPROVAL_EVENTS, MessageFold, MessageRow
from ._usage import USAGE_EVENTS, MemoryUsageLedger, UsageEntry, UsageFold, UsageLedger

logger = logging.getLogger("turnlog.projections")

#: The events whose batch may change a row or a summary (the rest are folded, never saved).
_WATCHED = SUMMARY_EVENTS | APPROVAL_EVENTS  # approvals: a parked turn's rows
_TERMINAL = frozenset({TurnFinalized, TurnFailed})
#: ``catch_up`` (and ``rebuild``) read a conversation in checked pages of this many events: the
#: fold keeps only what the rows need, so the pages in hand (this one and the one read ahead) are
#: most of its memory besides the rows (a 1M-event turn: ~2 MB less than pages of 2,000).
CATCH_UP_PAGE = 500
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


def _content(row: MessageRow) -> dict[str, Any]:
    try:
        obj = json.loads(row.content)
    except ValueError:
        return {"text": row.content}
    return obj if isinstance(obj, dict) else {"text": row.content}


class _Iteration:
    """One iteration of an assistant row, rebuilt from its steps."""

    __slots__ = ("calls", "reasoning", "results", "text", "tools")

    def __init__(self) -> None:
        self.text: str | None = None
        self.reasoning: str | None = None
        self.calls: list[ToolCall] = []
        self.results: dict[str, str] = {}
        self.tools = False  # a tool step was seen: the next text or thinking opens an iteration

    def messages(self) -> list[PriorMessage]:
        out: list[PriorMessage] = []
        answered = tuple(c for c in self.calls if c.id in self.results)
        if answered or self.text:
            out.append(
                PriorMessage("assistant", self.text or "", answered, "", (self.reasoning or "") if answered else "")
            )
        out.extend(PriorMessage("tool", content, (), call_id) for call_id, content in self.results.items())
        return out


def _assistant_messages(content: dict[str, Any]) -> list[PriorMessage]:
    """An assistant row's messages as the engine's ``PriorTurns`` folds them from the events: each
    iteration that made tool calls (its text, the calls that got a result, their results), then the
    last iteration's answer. A step of the same kind again, or text after a tool step, opens the
    next iteration (one text and one thinking step per iteration: ``TurnSteps``)."""
    done: list[_Iteration] = []
    it = _Iteration()
    call_of_step: dict[str, str] = {}
    for step in content.get("steps") or ():
        kind = step.get("type")
        if kind in ("text", "thinking"):
            field = "text" if kind == "text" else "reasoning"
            if it.tools or getattr(it, field) is not None:
                done.append(it)
                it = _Iteration()
            setattr(it, field, step.get("content", ""))
        elif kind == "tool_call":
            it.tools = True
            call_of_step[step.get("id", "")] = step.get("id_ref", "")
            it.calls.append(ToolCall(step.get("id_ref", ""), step.get("name", ""), step.get("arguments", "")))
        elif kind == "tool_result":
            it.tools = True
            call_id = call_of_step.get(step.get("id_ref", ""))
            if call_id is not None and any(c.id == call_id for c in it.calls):
                it.results[call_id] = step.get("content", "")
    out: list[PriorMessage] = []
    for earlier in done:
        if earlier.calls:  # an iteration without calls that is not the last was cut off: dropped
            out.extend(earlier.messages())
    if it.calls:
        it.text = content.get("text", "")
        out.extend(it.messages())
    elif content.get("text"):
        out.append(PriorMessage("assistant", content["text"]))
    return out


def history_of(rows: Sequence[MessageRow], head: int | None = None) -> list[PriorMessage]:
    """What the next request repeats of these rows (those of versions up to ``head``): ended
    turns in full (see ``turnlog.engine``'s request builder), no empty answers."""
    out: list[PriorMessage] = []
    for row in rows:
        if row.status == "live" or (head is not None and row.seq > head):
            continue
        if row.role == "assistant":
            out.extend(_assistant_messages(_content(row)))
        else:
            out.append(PriorMessage(row.role, row_text(row)))
    return out


class CommitObserver(Protocol):
    """Sees a turn's committed batches, in order, as the row sink does (``MessageStore.observers``)."""

    def sink(self, conversation_id: str, version: int) -> CommitSink: ...


class _TurnSink:
    """One turn's rows and summary: every committed batch is folded, and what a batch changed is
    saved before the batch is shown."""

    __slots__ = ("conversation_id", "fold", "loaded", "observers", "store", "summary", "usage", "usage_entries")

    def __init__(self, store: MessageStore, conversation_id: str, version: int) -> None:
        self.store = store
        self.conversation_id = conversation_id
        self.fold = MessageFold(conversation_id)
        self.fold.version = version
        # The summary as of ``version``: none to start from at a conversation's creation, the
        # one ``history`` read (or read at the first batch) before a turn.
        self.summary: SummaryFold | None = None
        self.loaded = store.conversations is None or version == 0
        # The usage ledger's entries of this turn, saved with the batch that ends it.
        self.usage = UsageFold(conversation_id) if store.usage is not None else None
        self.usage_entries: list[UsageEntry] = []
        self.observers = [o.sink(conversation_id, version) for o in store.observers]
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
        usage = self.usage
        for rec in records:
            if type(rec.event) in _WATCHED:
                changed.extend(apply(rec))
                if summary is not None and summary.apply(rec):
                    touched = True
            else:
                apply(rec)
            if usage is not None and type(rec.event) in USAGE_EVENTS:
                entry = usage.apply(rec)
                if entry is not None:
                    self.usage_entries.append(entry)
        if (
            self.usage_entries
            and (changed or touched or type(records[-1].event) in _TERMINAL)  # the turn ends or parks
            and self.store.usage is not None
            and usage is not None
            and not usage.blind  # a sink that joined the turn midway: catch-up has who asked
        ):
            # Before the rows: a crash between the two leaves the rows behind, and catch-up
            # (which rewrites both, the ledger idempotently) runs for rows that are behind.
            await self.store.usage.save(self.usage_entries)
            self.usage_entries = []
        if changed or touched:
            version = records[-1].version
            at = summary.at(version) if touched and summary is not None else None
            await self.store.save_changes(self.conversation_id, changed, at, version)
        for observer in list(self.observers):
            try:
                await observer.committed(records)
            except Exception:  # an observer (tracing) never fails a turn, nor the rows: dropped
                logger.exception("a commit observer of conversation %s failed", self.conversation_id)
                self.observers.remove(observer)


class MessageStore(abc.ABC):
    #: The conversations' summaries kept beside the rows, by the same sink (None: this store
    #: keeps none, and its conversations cannot be listed).
    conversations: ConversationIndex | None = None
    #: The usage ledger kept by the same sink (one entry per model call, saved when the turn
    #: ends; None: this store keeps none).
    usage: UsageLedger | None = None

    #: What else sees each committed batch of a turn, after its rows are saved (an OpenTelemetry
    #: projection: ``turnlog.adapters.otel``); one failing is logged, never fails the turn.
    observers: Sequence[CommitObserver] = ()

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
        return history_of(await self.rows(conversation_id), head)

    def sink(self, conversation_id: str, version: int) -> _TurnSink:
        return _TurnSink(self, conversation_id, version)

    async def observe_turn(self, log: EventLog, conversation_id: str, started: int | None) -> None:
        """A turn taken up again (an approval's decision, recovery's resume) or ended while parked
        (a cancel) has ended: its batches reached the rows by catch-up, not through a turn sink,
        so the observers are given the whole turn here, read in checked pages from its
        ``TurnStarted`` (version ``started``; None: the newest turn's, found by reading the
        conversation) to its end. A failing observer is logged and dropped, as in a turn sink."""
        if not self.observers:
            return
        if started is None:
            async for rec in log.iter_stream(conversation_id):
                if type(rec.event) is TurnStarted:
                    started = rec.version
            if started is None:
                return
        sinks = [o.sink(conversation_id, started - 1) for o in self.observers]
        async with contextlib.aclosing(log.iter_pages(conversation_id, started - 1)) as pages:
            async for page in pages:
                end = next((i for i, rec in enumerate(page) if type(rec.event) in _TERMINAL), None)
                batch = page if end is None else page[: end + 1]
                for sink in list(sinks):
                    try:
                        await sink.committed(batch)
                    except Exception:  # as in a turn sink: tracing never fails the caller
                        logger.exception("a commit observer of conversation %s failed", conversation_id)
                        sinks.remove(sink)
                if end is not None:
                    return

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
    def __init__(self, conversations: ConversationIndex | None = None, usage: UsageLedger | None = None) -> None:
        """``conversations``: where the summaries go (default: a ``MemoryConversationIndex``);
        ``usage``: the usage ledger (default: a ``MemoryUsageLedger``)."""
        self.usage = usage if usage is not None else MemoryUsageLedger()
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
    usage = UsageFold(conversation_id)
    entries: list[UsageEntry] = []
    changed: dict[str, MessageRow] = {}
    async for page in log.iter_pages(conversation_id, page_size=CATCH_UP_PAGE):
        for rec in page:
            for row in fold.apply(rec):
                changed[row.id] = row
            summary.apply(rec)
            if (entry := usage.apply(rec)) is not None:
                entries.append(entry)
        del page  # the page read ahead is the only other one held
    if store.usage is not None and entries:
        await store.usage.save(entries)
    await store.save_changes(conversation_id, list(changed.values()), summary.at(), fold.version)
    return len(changed)


async def rebuild(log: EventLog, store: MessageStore) -> int:
    """Drop every row (and summary) and recompute them all from the log. Returns the number of
    rows."""
    await store.clear()
    if store.conversations is not None:
        await store.conversations.clear()
    if store.usage is not None:
        await store.usage.clear()
    total = 0
    for conversation_id in await log.streams():
        total += await catch_up(log, store, conversation_id)
    return total
