"""Where the message rows live, as a port: ``MessageStore`` (in memory here; the SQL store is
``turnlog.adapters.stores.SqlMessageStore``).

Rows are a projection: ``rebuild`` recomputes every row from the log, and each store remembers
how far it has applied each conversation (``applied_version``) so the engine can catch a
conversation up after a crash between an event's commit and its rows' write.

A ``MessageStore`` is the engine's ``Messages`` port: it folds each committed batch of a turn
into rows and saves them before the batch is shown (``sink``), and gives the next request the
words of earlier turns from its rows (``history``).
"""

from __future__ import annotations

import abc
import json
from collections.abc import Sequence

from turnlog.engine import EventLog, PriorMessage, Recorded, TurnFailed, TurnFinalized, TurnStarted

from ._messages import MessageFold, MessageRow

_ROW_EVENTS = frozenset({TurnStarted, TurnFinalized, TurnFailed})


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
    """One turn's rows: every committed batch is folded, and the rows a batch changed are saved
    before the batch is shown."""

    __slots__ = ("conversation_id", "fold", "store")

    def __init__(self, store: MessageStore, conversation_id: str, version: int) -> None:
        self.store = store
        self.conversation_id = conversation_id
        self.fold = MessageFold(conversation_id)
        self.fold.version = version

    async def committed(self, records: Sequence[Recorded]) -> None:
        changed: list[MessageRow] = []
        apply = self.fold.apply
        for rec in records:
            if type(rec.event) in _ROW_EVENTS:
                changed.extend(apply(rec))
            else:
                apply(rec)
        if changed:
            await self.store.save(self.conversation_id, changed, records[-1].version)


class MessageStore(abc.ABC):
    @abc.abstractmethod
    async def save(self, conversation_id: str, rows: Sequence[MessageRow], version: int) -> None:
        """Upsert rows (by id) and record that the conversation is applied up to ``version``."""

    @abc.abstractmethod
    async def rows(self, conversation_id: str) -> list[MessageRow]:
        """The conversation's rows in ``seq`` order."""

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
        if head > 1 and await self.applied_version(conversation_id) < head:
            await catch_up(log, self, conversation_id)
        return history_of(await self.rows(conversation_id))

    def sink(self, conversation_id: str, version: int) -> _TurnSink:
        return _TurnSink(self, conversation_id, version)

    async def catch_up(self, log: EventLog, conversation_id: str) -> int:
        return await catch_up(log, self, conversation_id)


class MemoryMessageStore(MessageStore):
    def __init__(self) -> None:
        self._rows: dict[str, dict[str, MessageRow]] = {}
        self._versions: dict[str, int] = {}

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
    """Bring one conversation's rows up to the log's head. Returns the number of rows written."""
    fold = MessageFold(conversation_id)
    changed: dict[str, MessageRow] = {}
    async for rec in log.iter_stream(conversation_id):
        for row in fold.apply(rec):
            changed[row.id] = row
    await store.save(conversation_id, list(changed.values()), fold.version)
    return len(changed)


async def rebuild(log: EventLog, store: MessageStore) -> int:
    """Drop every row and recompute them all from the log. Returns the number of rows."""
    await store.clear()
    total = 0
    for conversation_id in await log.streams():
        total += await catch_up(log, store, conversation_id)
    return total
