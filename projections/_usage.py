"""The usage ledger: one entry per model call, folded from the log, and the port it is kept behind.

Each ``UsageRecorded`` event becomes a ``UsageEntry``: the tokens the provider reported for one
model call, with who asked (the turn's tenant and subject, from ``TurnStarted``), the model the
request named (``IterationStarted.model``; the turn's model in logs written before it was kept),
the UTC day and the exact time it was recorded. Cached prompt tokens and reasoning tokens come
from the provider's own usage object, which ``UsageRecorded.raw`` keeps verbatim
(``token_details``): so logs written before the ledger existed get them too, and no event
changed for it.

An entry is identified by its event (``conversation_id``, ``version``), so saving one twice
changes nothing: the live sink, a catch-up after a crash and a rebuild all write the same rows
(``tests/usage`` checks live == rebuilt on every store). The ledger answers sums grouped by
conversation, subject, tenant, model or day, always split by model (``UsageGroup``): the price
table (``_prices``) prices each model's tokens and adds them up.
"""

from __future__ import annotations

import abc
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import msgspec
from turnlog.engine import (
    ConfigError,
    IterationStarted,
    Recorded,
    TurnFailed,
    TurnFinalized,
    TurnStarted,
    UsageRecorded,
)

#: What a report may be grouped by.
USAGE_DIMENSIONS = ("conversation", "subject", "tenant", "model", "day")
#: The events the fold reads (the rest are skipped).
USAGE_EVENTS = frozenset({TurnStarted, IterationStarted, UsageRecorded, TurnFinalized, TurnFailed})

_TIME = re.compile(r"\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?Z?)?")


def _count(obj: Any, *path: str) -> int | None:
    for key in path:
        if not isinstance(obj, Mapping):
            return None
        obj = obj.get(key)
    return obj if isinstance(obj, int) and not isinstance(obj, bool) and obj >= 0 else None


#: Where providers put cached prompt tokens and reasoning tokens in their usage object, first
#: found wins: OpenAI and most compatible servers (``*_tokens_details``), the Responses API's
#: names, DeepSeek (``prompt_cache_hit_tokens``), Moonshot (a top-level ``cached_tokens``),
#: Anthropic-compatible gateways (``cache_read_input_tokens``).
_CACHED_PATHS = (
    ("prompt_tokens_details", "cached_tokens"),
    ("input_tokens_details", "cached_tokens"),
    ("prompt_cache_hit_tokens",),
    ("cached_tokens",),
    ("cache_read_input_tokens",),
)
_REASONING_PATHS = (
    ("completion_tokens_details", "reasoning_tokens"),
    ("output_tokens_details", "reasoning_tokens"),
    ("reasoning_tokens",),
)


def token_details(raw: Mapping[str, Any] | None) -> tuple[int, int]:
    """``(cached prompt tokens, reasoning tokens)`` of a provider's usage object (0 when the
    provider does not say). Reasoning tokens are part of the completion tokens, cached tokens
    part of the prompt tokens, as every provider counts them."""
    if not raw:
        return 0, 0
    cached = next((n for p in _CACHED_PATHS if (n := _count(raw, *p)) is not None), 0)
    reasoning = next((n for p in _REASONING_PATHS if (n := _count(raw, *p)) is not None), 0)
    return cached, reasoning


class UsageEntry(msgspec.Struct, frozen=True):
    """One model call's usage: a row of the ledger."""

    conversation_id: str
    #: The version of the ``UsageRecorded`` event: with the conversation, the entry's identity.
    version: int
    turn_id: str
    iteration: int
    tenant: str
    subject: str
    provider: str
    model: str
    #: The UTC day (``YYYY-MM-DD``) and the time (RFC 3339) the usage was recorded.
    day: str
    recorded_at: str
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    cached_tokens: int = 0
    reasoning_tokens: int = 0


class UsageFold:
    """One conversation's ledger entries, event by event: ``apply`` returns the entry an event
    makes (a ``UsageRecorded``) or None. Needs the turn's ``TurnStarted`` before its usage."""

    __slots__ = ("_model", "_turn", "blind", "conversation_id")

    def __init__(self, conversation_id: str) -> None:
        self.conversation_id = conversation_id
        self._turn: TurnStarted | None = None
        self._model = ""
        #: True once a usage came with no ``TurnStarted`` before it (a fold that joined a turn
        #: midway): its entries lack who asked, so a live sink leaves them to catch-up.
        self.blind = False

    def apply(self, rec: Recorded) -> UsageEntry | None:
        ev = rec.event
        kind = type(ev)
        if kind is UsageRecorded:
            turn = self._turn
            if turn is None:
                self.blind = True
            cached, reasoning = token_details(ev.raw)
            return UsageEntry(
                rec.stream_id,
                rec.version,
                rec.turn_id,
                ev.iteration,
                turn.tenant if turn is not None else "",
                turn.subject if turn is not None else "",
                turn.provider if turn is not None else "",
                self._model,
                rec.recorded_at[:10],
                rec.recorded_at,
                ev.prompt_tokens,
                ev.completion_tokens,
                ev.total_tokens,
                cached,
                reasoning,
            )
        if kind is TurnStarted:
            self._turn, self._model = ev, ev.model
        elif kind is IterationStarted:
            self._model = ev.model or (self._turn.model if self._turn is not None else "")
        elif kind is TurnFinalized or kind is TurnFailed:
            self._turn, self._model = None, ""
        return None


def fold_usage(conversation_id: str, records: Iterable[Recorded]) -> list[UsageEntry]:
    """Every ledger entry of a conversation's events."""
    fold = UsageFold(conversation_id)
    return [e for rec in records if (e := fold.apply(rec)) is not None]


class UsageQuery(msgspec.Struct, frozen=True):
    """What a report asks for: the dimension to group by, a tenant (None: every tenant) and a
    time range on ``recorded_at`` (``since`` inclusive, ``until`` exclusive; a day or an RFC 3339
    UTC time, compared as text, so ``until="2026-03-01"`` ends with February)."""

    by: str = "conversation"
    tenant: str | None = None
    since: str | None = None
    until: str | None = None

    def __post_init__(self) -> None:
        if self.by not in USAGE_DIMENSIONS:
            raise ConfigError(f"usage: cannot group by {self.by!r}; use one of {', '.join(USAGE_DIMENSIONS)}")
        for name in ("since", "until"):
            value = getattr(self, name)
            if value is not None and not _TIME.fullmatch(value):
                raise ConfigError(
                    f"usage: {name} {value!r} is not a UTC day or time (2026-03-01 or 2026-03-01T12:00:00Z)"
                )

    def admits(self, entry: UsageEntry) -> bool:
        return (
            (self.tenant is None or entry.tenant == self.tenant)
            and (self.since is None or entry.recorded_at >= self.since)
            and (self.until is None or entry.recorded_at < self.until)
        )

    def key(self, entry: UsageEntry) -> tuple[str, str]:
        """``(key, tenant)`` of the group the entry falls in (tenant "" when the grouping spans
        tenants: by model or by day)."""
        by = self.by
        if by == "conversation":
            return entry.conversation_id, entry.tenant
        if by == "subject":
            return entry.subject, entry.tenant
        if by == "tenant":
            return entry.tenant, entry.tenant
        return (entry.model if by == "model" else entry.day), ""


class UsageGroup(msgspec.Struct, frozen=True):
    """The sums of one group's entries of one model (what a ledger answers; priced by model)."""

    key: str
    tenant: str
    model: str
    calls: int
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    cached_tokens: int
    reasoning_tokens: int


def group_entries(entries: Iterable[UsageEntry], query: UsageQuery) -> list[UsageGroup]:
    """The query's groups of these entries (by key, tenant, model), sorted by them."""
    sums: dict[tuple[str, str, str], list[int]] = {}
    for e in entries:
        if not query.admits(e):
            continue
        key, tenant = query.key(e)
        s = sums.setdefault((key, tenant, e.model), [0, 0, 0, 0, 0, 0])
        s[0] += 1
        s[1] += e.prompt_tokens
        s[2] += e.completion_tokens
        s[3] += e.total_tokens
        s[4] += e.cached_tokens
        s[5] += e.reasoning_tokens
    return [UsageGroup(k, t, m, *s) for (k, t, m), s in sorted(sums.items())]


class UsageLedger(abc.ABC):
    """Where the ledger entries are kept (in memory here; in SQL:
    ``turnlog.adapters.stores.SqlUsageLedger``). Saving is idempotent by entry identity."""

    @abc.abstractmethod
    async def save(self, entries: Sequence[UsageEntry]) -> None:
        """Keep these entries (an entry already kept is left as it is: it cannot differ)."""

    @abc.abstractmethod
    async def entries(self, conversation_id: str | None = None) -> list[UsageEntry]:
        """The entries (of one conversation, or all), by conversation then version."""

    @abc.abstractmethod
    async def groups(self, query: UsageQuery) -> list[UsageGroup]:
        """The query's sums, one per (key, tenant, model), sorted by them."""

    @abc.abstractmethod
    async def clear(self) -> None: ...


class MemoryUsageLedger(UsageLedger):
    def __init__(self) -> None:
        self._entries: dict[tuple[str, int], UsageEntry] = {}

    async def save(self, entries: Sequence[UsageEntry]) -> None:
        for e in entries:
            self._entries.setdefault((e.conversation_id, e.version), e)

    async def entries(self, conversation_id: str | None = None) -> list[UsageEntry]:
        found = (e for k, e in sorted(self._entries.items()) if conversation_id in (None, k[0]))
        return list(found)

    async def groups(self, query: UsageQuery) -> list[UsageGroup]:
        return group_entries(self._entries.values(), query)

    async def clear(self) -> None:
        self._entries.clear()
