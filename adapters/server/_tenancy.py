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

**Ids, one rule** (``valid_id``): an id a client names is 1 to ``MAX_ID`` (200) printable
characters: the ids turnlog mints (``conv_`` and 32 hex digits) and any sane id a library user
chose. Anything else (a NUL byte, a control or format character, a lone surrogate, an empty or
overlong id) names no conversation and answers 404 before the cache or the store is touched.
200 is the width of the stores' id columns, so it is not a setting: no longer id was ever
stored. Before, a NUL reached PostgreSQL, whose text cannot hold one: 500 and a traceback,
where SQLite answered 404.

**The cache keeps what the checks need, never the settings.** The first event never changes, so
what the checks read of it (tenant, subject, provider: ``Owner``) is cached with no
invalidation, bounded by entries (``ServerConfig.conversation_cache``) and by bytes
(``conversation_cache_bytes``, counted per entry: key, owner, their strings and the dict's slot),
least recently used out first. Before, it kept each whole ``ConversationCreated``, title and
system prompt included, for up to 100,000 conversations: 400 requests of ~1 MB grew a server
from 69 to 460 MB. ``created`` (the settings a policy or ``GET /conversations/{id}`` needs) reads
the first event from the log each time.

**Every "no" takes one path.** An entry is keyed by the principal (tenant, subject, level) and
the id, so nobody's use of a conversation warms the cache for anyone else. The first time a
principal names an id it may not read (missing, another tenant's, another subject's), the first
event is read from the log, one read either way, and the same 404 is remembered for that
principal for ``not_found_ttl`` seconds (``ServerConfig``, 10): its next tries are answered from
memory, whether the conversation exists or not. Before, the cache was shared: an id someone had
used answered a stranger's 404 from memory (median ~530 µs) where a missing one read the database
(~860 µs), so response times told which ids exist. What still differs is inside that one read:
an existing first event is fetched and decoded, a missing one is not (PostgreSQL, measured in one
run: ~110 µs missing, ~125 µs a small event, ~250 µs one at the 64 KiB ``max_system_prompt``), and
a prober gets that one sample per id per ``not_found_ttl``, not one per request. The price: a
conversation created later under an id a principal was told 404 (an id a client chose; turnlog
mints random ones) stays 404 to it for up to that long; 0 remembers no 404 (each reads the store,
and each is a sample). The tests count store reads instead of timing answers, which is flaky on a
shared machine.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Hashable, Sequence
from typing import Any, Generic, Literal, NamedTuple, TypeVar

from turnlog.engine import ConversationCreated, EventLog, Recorded, RequestError

from ._auth import Principal

#: What a principal asks to do with a conversation.
Action = Literal["read", "write", "audit"]

#: The longest id a client may name: the stores' id columns are 200 characters wide.
MAX_ID = 200


def valid_id(value: str) -> bool:
    """The one rule for an id a client names (a conversation's, a cursor's): 1 to ``MAX_ID``
    printable characters. Anything else names nothing that was ever stored."""
    return 0 < len(value) <= MAX_ID and value.isprintable()


class Owner(NamedTuple):
    """What the checks need of a conversation's first event: who owns it, which provider runs it."""

    tenant: str
    subject: str
    provider: str


def may(principal: Principal, created: ConversationCreated | Owner, action: Action, *, auditor_level: int) -> bool:
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


K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class LruCache(Generic[K, V]):
    """A map bounded by entries and by bytes (``size(key, value)``, counted once per entry):
    least recently used out first; an entry put with a ``ttl`` is gone after that many seconds.
    A value larger than ``max_bytes`` is not kept."""

    def __init__(
        self,
        *,
        max_entries: int,
        max_bytes: int,
        size: Callable[[K, V], int],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._size = size
        self._clock = clock
        self._items: dict[K, tuple[V, int, float]] = {}
        #: The bytes the entries held are counted as.
        self.bytes = 0

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: K, default: Any = None) -> Any:
        """The value of ``key``, else ``default``."""
        found = self._items.pop(key, None)
        if found is None:
            return default
        if found[2] < self._clock():
            self.bytes -= found[1]
            return default
        self._items[key] = found  # the most recently used goes last
        return found[0]

    def put(self, key: K, value: V, ttl: float | None = None) -> None:
        cost = self._size(key, value)
        old = self._items.pop(key, None)
        if old is not None:
            self.bytes -= old[1]
        if cost > self.max_bytes or self.max_entries < 1 or (ttl is not None and ttl <= 0):
            return
        while self._items and (len(self._items) >= self.max_entries or self.bytes + cost > self.max_bytes):
            self.bytes -= self._items.pop(next(iter(self._items)))[1]
        self._items[key] = (value, cost, math.inf if ttl is None else self._clock() + ttl)
        self.bytes += cost


#: A principal's view of one conversation: (tenant, subject, level, conversation id).
Key = tuple[str, str, int, str]

#: A dict's own cost per entry at its emptiest fill (hash, key and value pointers, index, spare room).
_SLOT = 112


def _entry_bytes(key: Key, owner: Owner | None) -> int:
    # Counted whole even where strings are shared (interned, the principal's): an upper bound.
    return (
        _SLOT
        + sys.getsizeof(key)
        + sum(map(sys.getsizeof, key))
        + sys.getsizeof((owner, 0, 0.0))
        + sys.getsizeof(1 << 20)
        + sys.getsizeof(0.0)
        + sys.getsizeof(owner)
        + (sum(map(sys.getsizeof, owner)) if owner is not None else 0)
    )


#: Not in the cache (``None`` in it is a remembered 404).
_UNKNOWN: Any = object()


class Tenancy:
    """Which conversations a principal may see, each answered as ``may`` decides."""

    def __init__(
        self,
        log: EventLog,
        *,
        capacity: int,
        auditor_level: int,
        max_bytes: int = 32 << 20,
        not_found_ttl: float = 10.0,
    ) -> None:
        """``capacity`` entries and ``max_bytes`` bytes bound the cache (``ServerConfig``'s
        ``conversation_cache``, ``conversation_cache_bytes``); a 404 is remembered for
        ``not_found_ttl`` seconds."""
        self._log = log
        self._auditor_level = auditor_level
        self._not_found_ttl = not_found_ttl
        #: (principal, conversation) -> its owner, or None: 404 to that principal.
        self.cache: LruCache[Key, Owner | None] = LruCache(max_entries=capacity, max_bytes=max_bytes, size=_entry_bytes)

    async def check(self, conversation_id: str, principal: Principal, action: Action = "read") -> Owner:
        """Who owns the conversation, once the principal may ``action`` it: 404 unless the id is
        valid and names a conversation the principal may read, 403 if it may read it but not
        ``action`` it. Every 404 takes one path (see the module's docstring)."""
        if not valid_id(conversation_id):
            raise _not_found(conversation_id)
        key = (principal.tenant, principal.subject, principal.level, conversation_id)
        owner = self.cache.get(key, _UNKNOWN)
        if owner is _UNKNOWN:
            owner = self._readable(await self._log.read(conversation_id, 0, 1), principal)
            self.cache.put(key, owner, None if owner is not None else self._not_found_ttl)
        if owner is None:
            # Same answer for "not yours" as for "not there": ids cannot be probed.
            raise _not_found(conversation_id)
        if not may(principal, owner, action, auditor_level=self._auditor_level):
            raise RequestError("forbidden", _FORBIDDEN[action].format(conversation_id, self._auditor_level))
        return owner

    async def created(self, conversation_id: str, principal: Principal, action: Action = "read") -> ConversationCreated:
        """The conversation's first event, whole (its settings: what a policy and ``GET
        /conversations/{id}`` need), once ``check`` lets the principal ``action`` it: read from
        the log each time (the cache keeps no settings)."""
        await self.check(conversation_id, principal, action)
        first = await self._log.read(conversation_id, 0, 1)
        if not first or not isinstance(first[0].event, ConversationCreated):
            raise _not_found(conversation_id)
        return first[0].event

    def _readable(self, first: Sequence[Recorded], principal: Principal) -> Owner | None:
        """The owner of the conversation whose first event is ``first``, if the principal may
        read it; else None (also when there is no such conversation)."""
        event = first[0].event if first else None
        if not isinstance(event, ConversationCreated):
            return None
        # Interned: thousands of entries share a handful of tenants and providers.
        owner = Owner(sys.intern(event.tenant), sys.intern(event.subject), sys.intern(event.provider))
        return owner if may(principal, owner, "read", auditor_level=self._auditor_level) else None


def _not_found(conversation_id: str) -> RequestError:
    return RequestError("not_found", f"no conversation {conversation_id[:MAX_ID]!r}")


_FORBIDDEN = {
    "write": "conversation {0!r} belongs to another subject: an auditor reads it, only its owner starts turns",
    "audit": "the requests of conversation {0!r} are shown to auditors only (permission level {1} or above)",
}
