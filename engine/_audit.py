"""Reading the log back: checked replay, crash recovery, and the requests a conversation sent."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Collection
from datetime import UTC, datetime

import msgspec

from ._errors import ConcurrencyError
from ._events import IterationStarted, NewEvent, Recorded, TurnFailed, TurnStarted
from ._llm import LLM
from ._log import EventLog
from ._machine import ConversationFold
from ._ports import Clock, Messages, SystemClock
from ._request import PriorTurns, TurnHistory


async def replay(log: EventLog, stream_id: str, after_version: int = 0) -> AsyncIterator[Recorded]:
    """Every event of a conversation, each checked by the state machine before it is yielded.
    A removed, duplicated, reordered or forged event raises ``IllegalEvent``. Events up to
    ``after_version`` are checked but not yielded (a resuming reader still needs them folded)."""
    fold = ConversationFold()
    async for rec in log.iter_stream(stream_id):
        fold.apply(rec)
        if rec.version > after_version:
            yield rec


class Recovered(msgspec.Struct, frozen=True):
    stream_id: str
    turn_id: str
    version: int


def _age_seconds(recorded_at: str, now: str) -> float:
    def parse(s: str) -> datetime:
        return datetime.fromisoformat(s.replace("Z", "+00:00")).astimezone(UTC)

    return (parse(now) - parse(recorded_at)).total_seconds()


async def recover(
    log: EventLog,
    *,
    clock: Clock | None = None,
    older_than: float = 0.0,
    messages: Messages | None = None,
    skip: Collection[str] = (),
    streams: Collection[str] | None = None,
) -> list[Recovered]:
    """Bring every turn left in a live state to ``failed`` with reason ``interrupted``, keeping its
    partial output. ``older_than`` (seconds) spares turns whose newest event is more recent: on
    several app servers, a turn that another live server is running keeps going. A turn whose
    process is in fact alive and appends after us gets a ConcurrencyError, not a corrupted log.
    ``skip`` names conversations the caller knows are alive (a server's own running turns);
    ``streams`` limits the search to these conversations (default: every one in the log)."""
    clock = clock or SystemClock()
    out: list[Recovered] = []
    for sid in await log.streams() if streams is None else streams:
        if sid in skip:
            continue
        last = await log.last(sid)
        if last is None or last.type in ("conversation_created", "turn_finalized", "turn_failed"):
            continue
        now = clock.now()
        if older_than > 0 and _age_seconds(last.recorded_at, now) < older_than:
            continue
        fold = ConversationFold()
        async for rec in log.iter_stream(sid):
            fold.apply(rec)
        turn = fold.live_turn
        if turn is None:
            continue
        failed = TurnFailed(
            "interrupted", "the process running this turn stopped before the turn ended", turn.iteration
        )
        try:
            recs = await log.append(sid, [NewEvent(failed, turn.turn_id)], fold.version, recorded_at=now)
        except ConcurrencyError:
            continue  # the turn is alive after all: its own process appended meanwhile
        out.append(Recovered(sid, turn.turn_id, recs[0].version))
        if messages is not None:
            await messages.catch_up(log, sid)
    return out


class RequestCheck(msgspec.Struct, frozen=True):
    turn_id: str
    iteration: int
    version: int
    recorded_sha256: str
    recomputed_sha256: str

    @property
    def ok(self) -> bool:
        return self.recorded_sha256 == self.recomputed_sha256


async def check_requests(log: EventLog, stream_id: str, llm: LLM) -> list[RequestCheck]:
    """Rebuild every request a conversation sent to its model from the log alone, render it with
    ``llm`` (the same provider adapter, so the same bytes), and compare its sha256 with the digest
    recorded in IterationStarted. A mismatch means the log does not explain what the model saw."""
    prior = PriorTurns()
    history: TurnHistory | None = None
    checks: list[RequestCheck] = []
    async for rec in replay(log, stream_id):
        ev = rec.event
        if isinstance(ev, TurnStarted):
            history = TurnHistory(list(prior.messages), ev, round_trip_reasoning=llm.round_trip_reasoning)
        elif history is not None:
            if isinstance(ev, IterationStarted):
                # The engine renders the request before it records IterationStarted.
                digest = hashlib.sha256(llm.render(history.request())).hexdigest()
                checks.append(RequestCheck(rec.turn_id, ev.iteration, rec.version, ev.request_sha256, digest))
            history.apply(ev)
        prior.apply(ev)
    return checks
