"""The event log port: what every store (memory, SQLite, PostgreSQL) promises.

Contract (tests/contract/ runs the same suite on every store):

- ``append(stream_id, events, expected_version)`` is atomic: all events are written or none.
  ``expected_version`` is the stream's current last version (0 for a new stream); a stale one
  raises ``ConcurrencyError`` and writes nothing. Versions are gapless per stream.
- ``read(stream_id, after_version, limit)`` returns events with version > after_version, in order.
- ``read_all(after_position, limit)`` returns events of every stream with position >
  after_position in position order; a reader that follows positions never skips an event that is
  committed later with a smaller position (each store documents how it guarantees that).
- ``subscribe(stream_id, after_version)`` catches up from the log and then follows new events,
  with no gap and no duplicate at the hand-over. It never ends on its own; the caller stops it.

Every read that serves or folds a stream is checked (``iter_stream``, ``follow``, ``subscribe``):
each event's hash is recomputed from its stored bytes and linked to the previous one
(``ChainCheck``), so a changed, missing, reordered or undecodable event raises ``IntegrityError``
naming the stream and the version instead of being served. Stores implement the raw reads above;
the checks are here, once, for every store.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import hashlib
from collections.abc import AsyncIterator, Iterable, Sequence
from typing import Any

import msgspec

from ._errors import IntegrityError
from ._events import CURRENT, GENESIS_HASH, NewEvent, Recorded, chain_hash, decode_event
from ._events import _decoder as _event_decoder

PAGE = 1000
#: Page size for reading a whole stream: big pages amortise the per-query cost.
BULK_PAGE = 10_000
#: Page size of ``iter_pages`` (every checked read of a whole stream): already past the point
#: where the per-query cost matters, and small enough that the pages in hand (one in use, one read
#: ahead) stay a few MB (bench/memory_profile.py: 10,000 took ~20 MB more).
STREAM_PAGE = 2_000


_header = msgspec.json.Encoder().encode


def load_rows(rows: Iterable[Sequence[Any]], stream_id: str | None = None) -> list[Recorded]:
    """Envelopes from stored rows ``(stream_id, version, position, turn_id, recorded_at, type,
    schema, prev_hash, hash, payload)``: ``load`` for a whole page, as the stores read one. The
    same decoding (one msgspec ``Decoder`` of the event union; an older schema upcast by
    ``decode_event``), without a call per row: the loop every replay runs first.

    With ``stream_id``, the rows are one stream's read without their stream id (``(version,
    position, ..., payload)``): the stores' ``read``, whose stream id is the query's parameter,
    not selected again for each row (~0.1 µs a row in SQLite); every envelope shares that string."""
    decode = _event_decoder.decode
    current = CURRENT
    out: list[Recorded] = []
    append = out.append
    if stream_id is None:
        for sid, version, position, turn_id, recorded_at, type_, schema, prev_hash, hash_, payload in rows:
            if type(payload) is not bytes:
                payload = bytes(payload)
            event = decode(payload) if (type_, schema) in current else decode_event(type_, schema, payload)
            append(
                Recorded(sid, version, position, turn_id, recorded_at, type_, schema, prev_hash, hash_, event, payload)
            )
        return out
    # The (type, schema) pair is looked up once per run of equal pairs (a turn's deltas), not per row.
    last_type: str | None = None
    last_schema = -1
    direct = False
    for version, position, turn_id, recorded_at, type_, schema, prev_hash, hash_, payload in rows:
        if type(payload) is not bytes:
            payload = bytes(payload)  # a driver's buffer type (both stores' drivers give bytes)
        if type_ != last_type or schema != last_schema:
            last_type, last_schema = type_, schema
            direct = (type_, schema) in current
        event = decode(payload) if direct else decode_event(type_, schema, payload)
        append(
            Recorded(
                stream_id, version, position, turn_id, recorded_at, type_, schema, prev_hash, hash_, event, payload
            )
        )
    return out


class ChainCheck:
    """The hash chain of one stream, checked link by link as its stored events are read: each
    event's version is the previous one + 1, its ``prev_hash`` is the previous event's hash, and
    its stored bytes (the header fields and the payload as stored, never a re-encoding) hash to its
    stored ``hash``, exactly as ``chain_hash`` says. Any break raises ``IntegrityError``.

    ``ChainCheck(stream_id)`` starts at the stream's beginning; ``ChainCheck.after(rec)`` continues
    after an event already in hand (its own bytes are checked, not its link to the one before)."""

    __slots__ = ("_sid", "_templates", "hash", "stream_id", "version")

    def __init__(self, stream_id: str, version: int = 0, hash_: str = GENESIS_HASH) -> None:
        self.stream_id = stream_id
        #: the version and hash of the last event checked (0 and GENESIS_HASH before the first)
        self.version = version
        self.hash = hash_
        # The stream id as the header encodes it, ready to go into a %-template (``_template``).
        self._sid = _header(stream_id).replace(b"%", b"%%")
        # (turn_id, recorded_at, type, schema) -> the template of the hashed bytes of an event with
        # that header. A page of a turn shares a few of them (one per committed batch and event
        # type): made once, not per event.
        self._templates: dict[tuple[str, str, str, int], bytes] = {}

    @classmethod
    def after(cls, rec: Recorded) -> ChainCheck:
        """A chain continuing after ``rec``, once ``rec``'s own stored bytes are checked."""
        actual = chain_hash(
            rec.prev_hash, rec.stream_id, rec.version, rec.turn_id, rec.recorded_at, rec.type, rec.schema, rec.payload
        )
        if actual != rec.hash:
            raise IntegrityError(rec.stream_id, rec.version, _CHANGED)
        return cls(rec.stream_id, rec.version, rec.hash)

    def check(self, page: Sequence[Recorded]) -> None:
        """Check the next events of the stream, in order, and move the chain past them.
        On a break the chain does not move: it stays where the page began."""
        # The hot loop of every replay: locals only, and one sha256 per event over the header and
        # the stored payload, as ``seal`` builds them. The header but for its prev_hash and version
        # (stream, turn, time, type, schema) is the previous event's in a run of one batch's
        # deltas: compared, not rebuilt; its bytes are a template the three parts that change per
        # event are formatted into.
        version = self.version
        prev = self.hash
        sha256 = hashlib.sha256
        turn_id = recorded_at = type_ = None
        schema = -1
        template = b""
        for rec in page:
            version += 1
            if rec.version != version or rec.prev_hash != prev:
                raise self._broken_link(rec, version)
            if rec.recorded_at != recorded_at or rec.type != type_ or rec.turn_id != turn_id or rec.schema != schema:
                turn_id, recorded_at, type_, schema = rec.turn_id, rec.recorded_at, rec.type, rec.schema
                template = self._template(turn_id, recorded_at, type_, schema)
            digest = sha256(template % (prev.encode(), version, rec.payload)).hexdigest()
            if digest != rec.hash:
                raise IntegrityError(self.stream_id, version, _CHANGED)
            prev = digest
        self.version = version
        self.hash = prev

    def _template(self, turn_id: str, recorded_at: str, type_: str, schema: int) -> bytes:
        """``b'["%s",<stream>,%d,<turn>,<time>,<type>,<schema>]\\n%s'``: what ``chain_hash`` hashes,
        with the previous hash, the version and the payload left to format in."""
        key = (turn_id, recorded_at, type_, schema)
        template = self._templates.get(key)
        if template is None:
            if len(self._templates) >= 64:
                self._templates.clear()  # a long follow meets a new recorded_at per batch: stay small
            tail = _header(key)[1:].replace(b"%", b"%%")
            template = self._templates[key] = b'["%s",' + self._sid + b",%d," + tail + b"\n%s"
        return template

    def _broken_link(self, rec: Recorded, expected: int) -> IntegrityError:
        if rec.version != expected:
            how = "missing or reordered" if rec.version > expected else "duplicated or reordered"
            why = f"the store returned version {rec.version} where {expected} was expected ({how})"
        elif expected == 1:
            why = "prev_hash of the first event is not the genesis hash"
        else:
            why = f"prev_hash does not link to the hash of version {expected - 1}"
        return IntegrityError(self.stream_id, expected, why)


def _collect(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


_CHANGED = "the stored bytes do not hash to the stored hash (changed)"


class _Wake(asyncio.Event):
    """A follower's wake-up; carries the batch when this process committed it."""

    batch: list[Recorded] | None = None


class EventLog(abc.ABC):
    #: How long a subscriber sleeps before it looks at the log again even without a wake-up:
    #: the safety net for writers this process cannot hear (another process on the same SQLite file).
    poll_interval: float = 1.0

    def __init__(self) -> None:
        self._waiters: dict[str, _Wake] = {}
        #: stream -> number of running ``follow`` calls in this process
        self._followers: dict[str, int] = {}
        #: stream -> newest version this process committed, for followed streams only
        self._heads: dict[str, int] = {}

    # -- writing ------------------------------------------------------------------------------

    @abc.abstractmethod
    async def append(
        self, stream_id: str, events: Sequence[NewEvent], expected_version: int, *, recorded_at: str
    ) -> list[Recorded]: ...

    # -- reading ------------------------------------------------------------------------------

    @abc.abstractmethod
    async def read(self, stream_id: str, after_version: int = 0, limit: int = PAGE) -> list[Recorded]: ...

    @abc.abstractmethod
    async def read_all(self, after_position: int = 0, limit: int = PAGE) -> list[Recorded]: ...

    @abc.abstractmethod
    async def last(self, stream_id: str) -> Recorded | None:
        """The stream's newest event, or None for a stream that does not exist."""

    @abc.abstractmethod
    async def streams(self) -> list[str]:
        """Every stream id, in order of first appearance."""

    async def close(self) -> None:
        return None

    async def __aenter__(self) -> EventLog:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- following ----------------------------------------------------------------------------

    async def iter_stream(
        self, stream_id: str, after_version: int = 0, *, check: bool = True
    ) -> AsyncIterator[Recorded]:
        """Every event of a stream after a version, one at a time: ``iter_pages``, flattened."""
        async with contextlib.aclosing(self.iter_pages(stream_id, after_version, check=check)) as pages:
            async for page in pages:
                for rec in page:
                    yield rec

    async def iter_pages(
        self, stream_id: str, after_version: int = 0, *, check: bool = True, page_size: int = STREAM_PAGE
    ) -> AsyncIterator[list[Recorded]]:
        """Every event of a stream after a version, in pages of at most ``page_size`` (memory stays
        flat however long the stream: at most two pages are held), each page checked
        (``ChainCheck``) before it is yielded: a changed, missing, reordered or undecodable event
        raises ``IntegrityError`` and nothing at or after it is yielded (its page neither). After
        a version > 0, the event at that version is read once for its hash (and checked too).

        The next page is read while the caller works on this one (one read ahead, the store's
        query overlapping the caller's work); a caller that stops early cancels it.

        ``check=False`` yields the store's pages as they are: only for a reader that reports a
        break instead of stopping at it (an audit's own loop) and for measuring what the check
        costs (``bench/replay_check.py``)."""
        read = self._read_page if check else self.read
        chain = ChainCheck(stream_id) if after_version == 0 else None
        ahead: asyncio.Future[list[Recorded]] | None = asyncio.ensure_future(read(stream_id, after_version, page_size))
        try:
            while ahead is not None:
                page = await ahead
                ahead = None
                if not page:
                    return
                if len(page) == page_size:
                    ahead = asyncio.ensure_future(read(stream_id, page[-1].version, page_size))
                if check:
                    if chain is None:
                        chain = await self.chain_after(stream_id, after_version)
                    chain.check(page)
                yield page
        finally:
            if ahead is not None:
                # Not awaited: a caller that stops (or is cancelled) does not wait for a read it
                # will never use; its outcome is collected so nothing is reported unretrieved.
                ahead.cancel()
                ahead.add_done_callback(_collect)

    async def chain_after(self, stream_id: str, version: int) -> ChainCheck:
        """The chain of a stream continuing after ``version``: the event at that version is read
        and its own bytes checked (``IntegrityError`` when it is missing or changed)."""
        if version == 0:
            return ChainCheck(stream_id)
        page = await self._read_page(stream_id, version - 1, 1)
        if not page or page[0].version != version:
            raise IntegrityError(stream_id, version, f"the event at version {version} is missing")
        return ChainCheck.after(page[0])

    async def _read_page(self, stream_id: str, after_version: int, limit: int) -> list[Recorded]:
        """``read``, with a payload the store cannot decode reported as a broken link at its version."""
        try:
            return await self.read(stream_id, after_version, limit)
        except msgspec.DecodeError as exc:
            version = await self._undecodable(stream_id, after_version, limit)
            raise IntegrityError(stream_id, version, f"the stored payload cannot be decoded ({exc})") from None

    async def _undecodable(self, stream_id: str, after_version: int, limit: int) -> int:
        """The version of the first event after ``after_version`` that cannot be decoded, found by
        halving the failing page: a few reads, on the error path only."""
        low, n = after_version, limit  # the first failing event is among the n after `low`
        while n > 1:
            half = n // 2
            try:
                page = await self.read(stream_id, low, half)
            except msgspec.DecodeError:
                n = half
                continue
            if not page:
                break
            low, n = page[-1].version, n - half
        return low + 1

    async def subscribe(self, stream_id: str, after_version: int = 0) -> AsyncIterator[Recorded]:
        # aclosing: a subscriber that stops closes its follower now, not when it is collected.
        async with contextlib.aclosing(self.follow(stream_id, after_version)) as pages:
            async for page in pages:
                for rec in page:
                    yield rec

    def followed(self, stream_id: str) -> bool:
        """Whether a follower in this process follows the stream now (``follow``): a batch this
        process appends to it is handed to that follower with the wake-up."""
        return stream_id in self._followers

    async def follow(
        self, stream_id: str, after_version: int = 0, *, idle: float | None = None, after_hash: str | None = None
    ) -> AsyncIterator[list[Recorded]]:
        """``subscribe`` in pages: what one read returns arrives as one list (a committed batch,
        usually), so a reader pays per batch, not per event. With ``idle``, an empty list is
        yielded whenever nothing arrived for that many seconds (the SSE heartbeat's clock).

        A batch committed by this process is handed to its followers with the wake-up, so they
        do not read back what the process just wrote; anything else (another process's commit,
        a batch that is not the next one, a timeout) is read from the log.

        Every page is checked (``ChainCheck``) before it is yielded, continuing the chain from the
        event at ``after_version``: its hash is read once, when the first page arrives, unless the
        caller already holds it (``after_hash``: a hash it checked or sealed itself)."""
        await self._before_follow()
        loop = asyncio.get_running_loop()
        self._followers[stream_id] = self._followers.get(stream_id, 0) + 1
        chain = (
            None
            if after_version and after_hash is None
            else ChainCheck(stream_id, after_version, after_hash or GENESIS_HASH)
        )
        try:
            last = after_version
            quiet_since = loop.time()
            must_read = True
            while True:
                # Take the wake-up before looking: an append after this point sets it, and one
                # before it raised the head this process knows of, checked next.
                wake = self._waiter(stream_id)
                if must_read or self._heads.get(stream_id, 0) > last:
                    page = await self._read_page(stream_id, last, PAGE)
                    must_read = len(page) == PAGE
                    if page:
                        if chain is None:
                            chain = await self.chain_after(stream_id, after_version)
                        chain.check(page)
                        last = chain.version
                        quiet_since = loop.time()
                        yield page
                        continue
                timeout = self.poll_interval
                if idle is not None:
                    due = quiet_since + idle - loop.time()
                    if due <= 0:
                        quiet_since = loop.time()
                        yield []
                        continue
                    timeout = min(timeout, due)
                try:
                    # ``asyncio.timeout``, not ``wait_for``: no task made per wake-up (~4 µs of a
                    # follower's ~15 per batch).
                    async with asyncio.timeout(timeout):
                        await wake.wait()
                except TimeoutError:
                    must_read = True  # the safety net: writers this process cannot hear
                    continue
                batch = wake.batch
                if batch and batch[0].version == last + 1:
                    if chain is None:
                        chain = await self.chain_after(stream_id, after_version)
                    # Sealed by this process, never read back: checked all the same (under a
                    # microsecond an event), so every page a follower yields is.
                    chain.check(batch)
                    last = chain.version
                    quiet_since = loop.time()
                    yield batch
                else:
                    must_read = True
        finally:
            left = self._followers[stream_id] - 1
            if left:
                self._followers[stream_id] = left
            else:
                # The last follower of this stream: nothing of it stays behind (a server follows
                # every conversation that has a turn; this keeps its memory flat).
                del self._followers[stream_id]
                self._heads.pop(stream_id, None)
                self._waiters.pop(stream_id, None)

    async def _before_follow(self) -> None:
        """Stores that need a listener for wake-ups (PostgreSQL's LISTEN) start it here."""
        return None

    def _waiter(self, stream_id: str) -> _Wake:
        ev = self._waiters.get(stream_id)
        if ev is None or ev.is_set():
            ev = self._waiters[stream_id] = _Wake()
        return ev

    def _notify(self, stream_id: str, batch: list[Recorded] | None = None) -> None:
        """Stores call this after a commit, with the committed batch when this process wrote it
        (None: a wake-up from elsewhere, followers read). Waking is a hint; the log is the truth."""
        if batch and stream_id in self._followers:
            # Only for followed streams: the map stays as small as the set of live readers.
            self._heads[stream_id] = max(self._heads.get(stream_id, 0), batch[-1].version)
        ev = self._waiters.pop(stream_id, None)
        if ev is not None:
            ev.batch = batch
            ev.set()
