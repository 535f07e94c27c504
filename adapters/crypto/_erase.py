"""Erasure on request (GDPR article 17) without breaking the log's proof: crypto-shredding.

``erase`` writes ``ConversationErased`` (who, why; when is its ``recorded_at``), destroys the
conversation's data key, and rebuilds its rows from the log, where every content field now
reads ``ERASED``. The stored ciphertext stays, so the hash chain, the checkpoints and an export
verify exactly as before. ``erase_subject`` erases every conversation a subject created within a
tenant; ``erase_older_than`` every conversation whose last event is older than a cutoff
(retention).

The event comes first, the key's destruction second: a crash between the two leaves a
conversation marked erased whose key still exists, and erasing it again completes the job (a
key destroyed with no event would be content gone with no record of who and why).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import NamedTuple

from turnlog.engine import (
    Clock,
    ConcurrencyError,
    ConfigError,
    ConversationCreated,
    ConversationErased,
    ConversationErasedError,
    ConversationNotFound,
    EventLog,
    NewEvent,
    NotEncrypted,
    SystemClock,
    TurnFailed,
    TurnFinalized,
    TurnInProgress,
    TurnlogError,
)
from turnlog.projections import MessageStore

from ._log import EncryptedLog

#: The events after which no turn is live: an erase may follow them.
_QUIET = (ConversationCreated, TurnFinalized, TurnFailed)


class Erasure(NamedTuple):
    """What an erase did: the conversations erased, and those it left, each with its error's
    code (``turn_in_progress``, ``not_encrypted``, ``conversation_erased``, ``not_found``)."""

    erased: list[str]
    skipped: dict[str, str]


def encrypted(log: EventLog) -> EncryptedLog:
    if not isinstance(log, EncryptedLog):
        raise ConfigError("this store is not encrypted (open_store(..., encryption=False)): nothing can be erased")
    return log


async def _mark(log: EncryptedLog, cid: str, *, reason: str, tenant: str, subject: str, at: str) -> bool:
    """Write ``ConversationErased`` (unless it is there already). True: the key must go."""
    last = await log.inner.last(cid)
    if last is None:
        raise ConversationNotFound(cid)
    record = await log.keys.provider.get(cid)
    if record is None:
        raise NotEncrypted(cid)
    if type(last.event) is ConversationErased:
        if record.key is None:
            raise ConversationErasedError(cid)
        return True  # marked before a crash; the key is still there: finish the job
    if record.key is None:
        raise ConversationErasedError(cid)
    if type(last.event) not in _QUIET:
        raise TurnInProgress(cid, last.turn_id)
    event = ConversationErased(tenant=tenant, subject=subject, reason=reason)
    try:
        # The inner store: the event's fields are metadata, nothing to encrypt.
        await log.inner.append(cid, [NewEvent(event)], last.version, recorded_at=at)
    except ConcurrencyError:
        raise TurnInProgress(cid, "") from None  # a turn started meanwhile
    return True


async def erase(
    log: EventLog,
    messages: MessageStore | None,
    conversation_ids: Iterable[str],
    *,
    reason: str,
    tenant: str = "",
    subject: str = "",
    clock: Clock | None = None,
    strict: bool = True,
) -> Erasure:
    """Erase the conversations' content. ``tenant``/``subject``: who asked (recorded). With
    ``strict`` the first conversation that cannot be erased raises its error (after the ones
    before it are erased); without, it is skipped and reported in ``Erasure.skipped``."""
    ids = list(dict.fromkeys(conversation_ids))
    if not isinstance(log, EncryptedLog):
        if not ids:
            return Erasure([], {})
        raise NotEncrypted(ids[0], "this store is opened without encryption")
    enc = log
    at = (clock or SystemClock()).now()
    marked: list[str] = []
    skipped: dict[str, str] = {}
    failure: TurnlogError | None = None
    for cid in ids:
        try:
            if await _mark(enc, cid, reason=reason, tenant=tenant, subject=subject, at=at):
                marked.append(cid)
        except TurnlogError as exc:
            if strict:
                failure = exc
                break
            skipped[cid] = exc.code
    if marked:
        await enc.keys.destroy(marked, at)
        if messages is not None:
            for cid in marked:
                # Every row and the summary are rewritten from the log: content now reads ERASED.
                await messages.catch_up(log, cid)
    if failure is not None:
        raise failure
    return Erasure(marked, skipped)


async def subject_conversations(messages: MessageStore | None, log: EventLog, tenant: str, subject: str) -> list[str]:
    """Every conversation ``subject`` created in ``tenant``: from the conversation index when the
    store keeps one (one index range per page), else from each conversation's first event."""
    index = messages.conversations if messages is not None else None
    if index is not None and not await index.empty():
        found: list[str] = []
        before = None
        while True:
            page = await index.page(tenant, [subject], limit=500, before=before)
            found.extend(s.id for s in page)
            if len(page) < 500:
                return found
            before = (page[-1].updated_at, page[-1].id)
    out = []
    for cid in await log.streams():
        first = await log.read(cid, 0, 1)
        ev = first[0].event if first else None
        if isinstance(ev, ConversationCreated) and ev.tenant == tenant and ev.subject == subject:
            out.append(cid)
    return out


async def erase_subject(
    log: EventLog,
    messages: MessageStore | None,
    *,
    tenant: str,
    subject: str,
    reason: str,
    by_tenant: str = "",
    by_subject: str = "",
    clock: Clock | None = None,
) -> Erasure:
    """Erase every conversation ``subject`` created in ``tenant``, in one call. Those that cannot
    be erased now (a live turn) are reported in ``skipped``, the rest erased."""
    ids = await subject_conversations(messages, log, tenant, subject)
    return await erase(
        log, messages, ids, reason=reason, tenant=by_tenant, subject=by_subject, clock=clock, strict=False
    )


def cutoff(now: str, days: float) -> str:
    """The RFC 3339 time ``days`` before ``now`` (``recorded_at``'s format, so it compares as text)."""
    if days < 0:
        raise ConfigError(f"--older-than must be >= 0 days, not {days}")
    when = dt.datetime.fromisoformat(now.replace("Z", "+00:00")) - dt.timedelta(days=days)
    return when.astimezone(dt.UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


async def erase_older_than(
    log: EventLog,
    messages: MessageStore | None,
    *,
    days: float,
    reason: str,
    by_tenant: str = "",
    by_subject: str = "",
    clock: Clock | None = None,
) -> Erasure:
    """Retention: erase every conversation whose last event is more than ``days`` old. Already
    erased conversations, and those written before encryption (``not_encrypted``), are left; a
    conversation with a live turn is skipped (a later sweep takes it once the turn ended)."""
    enc = encrypted(log)
    clock = clock or SystemClock()
    limit = cutoff(clock.now(), days)
    due: list[str] = []
    skipped: dict[str, str] = {}
    for cid in await enc.inner.streams():
        last = await enc.inner.last(cid)
        if last is None or last.recorded_at >= limit or type(last.event) is ConversationErased:
            continue
        if await enc.keys.provider.get(cid) is None:
            skipped[cid] = NotEncrypted.code
            continue
        due.append(cid)
    done = await erase(
        log, messages, due, reason=reason, tenant=by_tenant, subject=by_subject, clock=clock, strict=False
    )
    return Erasure(done.erased, {**skipped, **done.skipped})
