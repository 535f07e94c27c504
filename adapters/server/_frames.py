"""SSE framing: every stream the service sends is a projection of the log.

- **Durable before visible.** Frames are read from the log after commit, never passed along from
  the turn that writes them: a client sees nothing that a crash could take back, and a reader on
  this server, a resumed one or one on another server over the same log all take the same path.
- **``id:`` is the event's version**, so resuming after id N (``Last-Event-ID`` or ``?after=``)
  yields exactly the frames a full replay has after N.
- **Every read is checked** on the way out: each event's hash is recomputed from its stored bytes
  and linked to the previous one (the log's ``iter_stream`` and ``follow``), then folded by the
  state machine (``ConversationFold``): a server never serves a forged log. A forged, missing,
  reordered, undecodable or illegal event ends the stream (the headers are gone, no status can
  say it) with an ``error`` frame, ``{"content": <why>, "reason": <the error's code>}``
  (``integrity_broken``, ``illegal_event``...), and no ``id:`` line, since it is not an event of
  the log; the operator gets the same reason logged. Frames of the events before the broken one
  may have been sent (they were checked); nothing at or after it is.
- **Full mode is bounded** (``max_full_events``): a ``full`` frame resends its step's whole text,
  so a step of n deltas costs O(n^2) bytes (a 60 KB answer once replayed as 903 MB). ``admit``
  refuses ``mode=full`` before any frame (422 ``full_mode_too_large``) on a conversation holding
  more events than the limit (its version: one read, an upper bound of its deltas); a full-mode
  stream that reaches the limit later (a live turn, a replay racing one) ends with an ``error``
  frame of that reason and no ``id:`` line. A live turn goes on: the client follows it with
  ``mode=delta`` from the last id it received.
- **A parked turn ends the stream** (awaiting approval: its ``approval_required`` frames, or an
  ``approval_decided`` that leaves calls undecided, are the last): nobody runs the turn until a
  decision, which streams the rest (``POST .../approvals``); a replay of a parked conversation
  ends at once.
- **Writes are batched**: a replay is sent in writes of about 64 KiB, and a live stream in one
  write per committed batch (a 256-delta batch is one send, not 256). A silent stream sends a
  ``: keep-alive`` comment every ``heartbeat`` seconds.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

import msgspec
from turnlog.engine import (
    ApprovalDecided,
    ApprovalRequested,
    ConversationFold,
    EventLog,
    IntegrityError,
    Recorded,
    ReplayError,
    RequestError,
    TurnFailed,
    TurnFinalized,
    TurnStarted,
)
from turnlog.projections import Mode, SseProjector

logger = logging.getLogger("turnlog.server")

#: The headers of every SSE response (no caching, no proxy buffering).
SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}
#: Replayed frames are sent in writes of about this many bytes, not one write per frame.
REPLAY_WRITE = 64 * 1024
_TERMINAL = (TurnFinalized, TurnFailed)
#: A batch ending with one of these parks its turn (awaiting approval): the stream ends there too
#: (the decision that completes a turn's set is committed with the TurnResumed that follows it).
_PARKED = (ApprovalRequested, ApprovalDecided)
#: What a log that cannot be served raises: its stream ends with an ``error`` frame.
_UNSERVABLE = (IntegrityError, ReplayError)


def _broken(conversation_id: str, exc: IntegrityError | ReplayError) -> bytes:
    """The frame that ends a stream whose log cannot be served, and the operator's log line."""
    logger.error("conversation %s cannot be replayed: %s", conversation_id, exc)
    return _error_frame(str(exc), exc.code)


def _error_frame(content: str, reason: str) -> bytes:
    """An ``error`` frame that is not an event of the log: no ``id:`` line."""
    return b"event: error\ndata: %s\n\n" % msgspec.json.encode({"content": content, "reason": reason})


class _FullModeOver(Exception):
    """A full-mode stream passed the server's limit."""

    def __init__(self, conversation_id: str, limit: int) -> None:
        self.frame = _error_frame(
            f"conversation {conversation_id!r} passed {limit:,} events, the most this server streams in full mode "
            f"(max_full_mode_events): full mode resends a step's whole text in every frame. A live turn goes on: "
            f"resume with mode=delta from the last id received",
            "full_mode_too_large",
        )
        super().__init__(conversation_id, limit)


class Frames:
    """The SSE bytes of a conversation (replay, then follow) and of one turn (follow)."""

    def __init__(self, log: EventLog, *, heartbeat: float, retry_ms: int, max_full_events: int) -> None:
        self._log = log
        self._heartbeat = heartbeat
        self._retry = b"retry: %d\n\n" % retry_ms
        self._max_full = max_full_events

    async def admit(self, conversation_id: str, mode: Mode) -> None:
        """Refuse ``mode=full`` (422 ``full_mode_too_large``) on a conversation holding more events
        than the limit, before a turn starts or a stream begins."""
        if mode != "full":
            return
        last = await self._log.last(conversation_id)
        if last is not None and last.version > self._max_full:
            raise RequestError(
                "full_mode_too_large",
                f"mode=full is refused for conversation {conversation_id!r}: it holds {last.version:,} events, "
                f"above this server's limit of {self._max_full:,} (max_full_mode_events); full mode resends a "
                f"step's whole text in every frame, so its bytes grow with the square of the answer. Use mode=delta",
            )

    def _limit(self, mode: Mode) -> int:
        """The last version a stream of ``mode`` may frame."""
        return self._max_full if mode == "full" else 1 << 62

    async def conversation(self, conversation_id: str, after: int, mode: Mode) -> AsyncIterator[bytes]:
        """The conversation's frames after version ``after``: replayed (each event checked: its
        hash, its link, the state machine), then followed live until the running turn ends. Ends
        at once when no turn runs; ends with an ``error`` frame at a broken or illegal event."""
        yield self._retry
        projector = SseProjector(mode)
        fold = ConversationFold()
        live = parked = False
        buffer: list[bytes] = []
        size = 0
        limit = self._limit(mode)
        try:
            async for rec in self._log.iter_stream(conversation_id):
                if rec.version > limit:
                    raise _FullModeOver(conversation_id, limit)
                fold.apply(rec)
                frame = projector.frame(rec)
                if frame is not None and rec.version > after:
                    buffer.append(frame)
                    size += len(frame)
                    if size >= REPLAY_WRITE:
                        yield b"".join(buffer)
                        buffer, size = [], 0
                live = type(rec.event) is TurnStarted or (live and type(rec.event) not in _TERMINAL)
                parked = type(rec.event) in _PARKED
            if parked:
                live = False  # a parked turn is run by nobody: nothing to follow until a decision
            if buffer:
                yield b"".join(buffer)
                buffer = []
            if live:
                # The replay checked the chain up to here: the follower continues from its hash.
                follow = self._follow(conversation_id, fold.version, fold.last_hash, projector, fold, after, limit)
                async for chunk in follow:
                    yield chunk
        except _UNSERVABLE as exc:
            # The buffer holds frames of checked events only: the event that failed never got one.
            yield b"".join(buffer) + _broken(conversation_id, exc)
        except _FullModeOver as over:
            yield b"".join(buffer) + over.frame

    async def turn(self, started: Recorded, mode: Mode) -> AsyncIterator[bytes]:
        """The frames of one turn from its start, live, until it ends."""
        yield self._retry
        projector = SseProjector(mode)
        projector.frame(started)
        # ``started`` was sealed by this process's engine: its hash anchors the follower's checks.
        follow = self._follow(
            started.stream_id, started.version, started.hash, projector, None, started.version, self._limit(mode)
        )
        try:
            async for chunk in follow:
                yield chunk
        except _UNSERVABLE as exc:
            yield _broken(started.stream_id, exc)
        except _FullModeOver as over:
            yield over.frame

    async def _follow(
        self,
        conversation_id: str,
        start: int,
        start_hash: str,
        projector: SseProjector,
        fold: ConversationFold | None,
        after: int,
        limit: int,
    ) -> AsyncIterator[bytes]:
        """Follow the log from version ``start`` (whose hash is ``start_hash``), each page checked
        by the log; frames of versions up to ``after`` are folded, not sent; an event past
        ``limit`` raises ``_FullModeOver`` once the frames before it are sent."""
        frame = projector.frame
        pages = self._log.follow(conversation_id, start, idle=self._heartbeat, after_hash=start_hash)
        # aclosing: the follower is released the moment the turn ends or the client goes.
        async with contextlib.aclosing(pages):
            async for page in pages:
                if not page:
                    yield b": keep-alive\n\n"
                    continue
                out = []
                end = False
                over = page[-1].version > limit
                if over:
                    page = [rec for rec in page if rec.version <= limit]
                for rec in page:
                    if fold is not None:
                        fold.apply(rec)
                    f = frame(rec)
                    if f is not None and rec.version > after:
                        out.append(f)
                    if type(rec.event) in _TERMINAL:
                        end = True
                        break
                # One write per committed batch: a 256-delta batch is one send, not 256.
                if out:
                    yield b"".join(out)
                if end or (page and type(page[-1].event) in _PARKED):
                    return
                if over:
                    raise _FullModeOver(conversation_id, limit)
