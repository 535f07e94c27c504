"""Reading the log back: checked replay, crash recovery, and the requests a conversation sent."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from datetime import UTC, datetime

import msgspec

from ._errors import ConcurrencyError, IntegrityError, ReplayError
from ._events import IterationStarted, NewEvent, Recorded, TurnFailed, TurnResumed, TurnStarted
from ._fork import inherited_prior
from ._llm import LLM
from ._log import EventLog
from ._machine import ConversationFold
from ._ports import Clock, Messages, SystemClock
from ._request import PriorTurns, TurnHistory

logger = logging.getLogger("turnlog.engine")


async def replay(log: EventLog, stream_id: str, after_version: int = 0) -> AsyncIterator[Recorded]:
    """Every event of a conversation, each checked before it is yielded: its hash recomputed from
    its stored bytes and linked to the previous one (``log.iter_stream``: a changed, removed,
    reordered or undecodable event raises ``IntegrityError`` naming its version), then folded by
    the state machine (an event the turn's state forbids raises ``IllegalEvent``). Events up to
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
    #: True: the turn was taken up again (``TurnResumed`` at ``version``), not ended.
    resumed: bool = False


#: Newest events of a turn parked awaiting approval: a live turn nobody runs, left alone.
_PARKED = ("approval_requested", "approval_decided")


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
    decide: Callable[[str, float], Awaitable[bool]] | None = None,
    resume: Callable[[str], Awaitable[Recorded | None]] | None = None,
) -> list[Recovered]:
    """Bring every turn left in a live state to ``failed`` with reason ``interrupted``, keeping its
    partial output. ``older_than`` (seconds) spares turns whose newest event is more recent: on
    several app servers, a turn that another live server is running keeps going. A turn whose
    process is in fact alive and appends after us gets a ConcurrencyError, not a corrupted log.
    ``skip`` names conversations the caller knows are alive (a server's own running turns);
    ``streams`` limits the search to these conversations (default: every one in the log).
    ``decide(owner, age)``, when given, has the last word on each live turn ``older_than`` left:
    its owner (``TurnStarted.owner``, "" if none) and the seconds since its newest event; True
    ends it. A turn parked awaiting approval is not interrupted: it is left alone.
    ``resume(stream_id)``, when given, is called instead of ending the turn: it takes the turn up
    again (``TurnEngine.resume_turn``) and returns its ``TurnResumed``, or None when the turn
    could not be taken (its process wrote meanwhile)."""
    clock = clock or SystemClock()
    out: list[Recovered] = []
    for sid in await log.streams() if streams is None else streams:
        if sid in skip:
            continue
        last = await log.last(sid)
        if last is None or last.type in ("conversation_created", "turn_finalized", "turn_failed", *_PARKED):
            continue
        now = clock.now()
        age = _age_seconds(last.recorded_at, now)
        if older_than > 0 and age < older_than:
            continue
        fold = ConversationFold()
        owner = ""
        try:
            async for rec in log.iter_stream(sid):
                fold.apply(rec)
                if type(rec.event) is TurnStarted or type(rec.event) is TurnResumed:
                    owner = rec.event.owner  # whoever took the turn up last runs it
        except (IntegrityError, ReplayError) as exc:
            # A forged or unreadable conversation is not recovered (nothing may be appended to a
            # chain that does not hold), and does not stop the recovery of the others.
            logger.error("recovery skips conversation %s: %s", sid, exc)
            continue
        turn = fold.live_turn
        if turn is None or (decide is not None and not await decide(owner, age)):
            continue
        if resume is not None:
            try:
                taken = await resume(sid)
            except ConcurrencyError:
                taken = None
            if taken is not None:
                out.append(Recovered(sid, turn.turn_id, taken.version, resumed=True))
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
    #: The model recorded in IterationStarted is the one the rebuilt request names (or none was).
    model_ok: bool = True

    @property
    def ok(self) -> bool:
        return self.recorded_sha256 == self.recomputed_sha256 and self.model_ok


async def check_requests(log: EventLog, stream_id: str, llm: LLM) -> list[RequestCheck]:
    """Rebuild every request a conversation sent to its model from the log alone, render it with
    ``llm`` (the same provider adapter, so the same bytes), and compare its sha256 with the digest
    recorded in IterationStarted. A mismatch means the log does not explain what the model saw.
    The same rebuild as ``rebuild_requests``, without the bodies."""
    return [
        RequestCheck(r.turn_id, r.iteration, r.version, r.recorded_sha256, r.sha256, r.model_ok)
        for r in await rebuild_requests(log, stream_id, llm)
    ]


class RebuiltRequest(msgspec.Struct, frozen=True):
    """One model call of a conversation, rebuilt from the log: the exact body ``llm.render``
    gives for it, the digest recorded when it was sent and the digest of the rebuilt body."""

    turn_id: str
    iteration: int
    #: The version of its IterationStarted.
    version: int
    #: The model the body names: the request's, else the adapter's default (``llm.model``).
    model: str
    body: bytes
    recorded_sha256: str
    sha256: str
    #: The digests are equal and the model IterationStarted records is the body's (or none).
    ok: bool
    #: The model IterationStarted records ("" in logs written before it was kept).
    recorded_model: str = ""

    @property
    def model_ok(self) -> bool:
        return not self.recorded_model or self.recorded_model == self.model


async def rebuild_requests(log: EventLog, stream_id: str, llm: LLM) -> list[RebuiltRequest]:
    """Every request a conversation sent to its model, rebuilt from the log alone (checked
    replay; prior turns through ``PriorTurns``, the turn's own events through ``TurnHistory``)
    and rendered by ``llm``. The bodies are those the model received exactly when ``llm`` is
    configured as the adapter that sent them (the provider's body format and defaults)."""
    prior = PriorTurns(await inherited_prior(log, stream_id))
    history: TurnHistory | None = None
    default_model = getattr(llm, "model", "") or ""
    out: list[RebuiltRequest] = []
    async for rec in replay(log, stream_id):
        ev = rec.event
        if isinstance(ev, TurnStarted):
            history = TurnHistory(prior.for_turn(ev), ev, round_trip_reasoning=llm.round_trip_reasoning)
        elif history is not None:
            if isinstance(ev, IterationStarted):
                # The engine renders the request before it records IterationStarted.
                request = history.request()
                body = llm.render(request)
                digest = hashlib.sha256(body).hexdigest()
                model = request.model or default_model
                ok = digest == ev.request_sha256 and (not ev.model or ev.model == model)
                out.append(
                    RebuiltRequest(
                        rec.turn_id, ev.iteration, rec.version, model, body, ev.request_sha256, digest, ok, ev.model
                    )
                )
            history.apply(ev)
        prior.apply(ev)
    return out
