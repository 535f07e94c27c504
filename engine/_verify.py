"""Verification: the stored bytes of the log recomputed, link by link.

``verify`` checks conversations' hash chains one by one (the server's ``/verify``); a chain per
conversation cannot see a removed tail. ``verify_log`` checks the whole log in one pass: the
chains, positions gapless from 1, and the log-wide tree against every checkpoint (see
docs/architecture.md, "Audit: the log-wide tree, checkpoints, exports").
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable

import msgspec

from ._checkpoint import Checkpoint, SignatureVerifier, gap, keyring, signature_problem, stored_checkpoints
from ._errors import ConversationNotFound, ReplayError
from ._events import GENESIS_HASH, ConversationCreated, Recorded, chain_hash
from ._fork import READ_DEPTH, link_problem
from ._log import STREAM_PAGE, EventLog
from ._merkle import Frontier, merkle_leaf

#: Verification reads the stored events unchecked, a page at a time: the page in hand is what
#: memory holds (``STREAM_PAGE``, 2,000; pages of 10,000 took ~15 MB more on a 1M-event log).
_PAGE = STREAM_PAGE


class Broken(msgspec.Struct, frozen=True):
    stream_id: str
    version: int
    why: str

    def __str__(self) -> str:
        return f"stream {self.stream_id!r}: first broken link at version {self.version}: {self.why}"


class VerifyReport(msgspec.Struct, frozen=True):
    streams: int
    events: int
    broken: list[Broken]

    @property
    def ok(self) -> bool:
        return not self.broken


async def _stored(log: EventLog, stream_id: str) -> AsyncIterator[Recorded]:
    """The stream's events as the store gives them, unchecked: verify reports a break, it does
    not stop at one."""
    after = 0
    while True:
        page = await log.read(stream_id, after, _PAGE)
        for rec in page:
            yield rec
        if len(page) < _PAGE:
            return
        after = page[-1].version


async def verify_stream(log: EventLog, stream_id: str, upto: int | None = None) -> tuple[int, Broken | None]:
    """Recompute the chain of one stream from the stored bytes (up to version ``upto``, default
    all). Returns (events read, first break)."""
    prev = GENESIS_HASH
    expected_version = 0
    count = 0
    async for rec in _stored(log, stream_id):
        if upto is not None and rec.version > upto:
            break
        count += 1
        expected_version += 1
        if rec.version != expected_version:
            return count, Broken(stream_id, rec.version, f"version {rec.version} where {expected_version} was expected")
        if rec.prev_hash != prev:
            return count, Broken(stream_id, rec.version, "prev_hash does not match the previous event's hash")
        actual = chain_hash(
            rec.prev_hash, rec.stream_id, rec.version, rec.turn_id, rec.recorded_at, rec.type, rec.schema, rec.payload
        )
        if actual != rec.hash:
            return count, Broken(stream_id, rec.version, "the stored bytes do not hash to the stored hash (changed)")
        prev = rec.hash
    return count, None


async def fork_link(log: EventLog, child: Recorded, *, chains: bool) -> Broken | None:
    """A fork's link to its parent (``child``: the fork's first event): the parent's event at the
    fork point exists, its stored bytes hash to its hash, and that is the hash the fork names.
    ``chains``: also recompute the parent's chain up to there, and the parent's own link, up the
    chain of forks (a conversation verified alone; in a whole-log pass each chain is checked on
    its own)."""
    depth = 0
    while isinstance(child.event, ConversationCreated) and child.event.parent:
        point = child.event.parent
        found = await log.read(point.conversation_id, point.version - 1, 1) if point.version >= 1 else []
        rec = found[0] if found and found[0].version == point.version else None
        why = link_problem(point, rec)
        if not why and rec is not None and _rehash(rec) != rec.hash:
            why = f"its parent's event at version {point.version} was changed (its bytes do not hash to its hash)"
        if not why and chains:
            _, b = await verify_stream(log, point.conversation_id, point.version)
            if b is not None:
                why = f"its parent's history up to version {point.version} is broken: {b.why} (version {b.version})"
        if why:
            return Broken(
                child.stream_id,
                child.version,
                f"forked from {point.conversation_id!r} at version {point.version}: {why}",
            )
        depth += 1
        if not chains or depth >= READ_DEPTH:
            return None
        first = await log.read(point.conversation_id, 0, 1)
        if not first:
            return None
        child = first[0]
    return None


def _rehash(rec: Recorded) -> str:
    return chain_hash(
        rec.prev_hash, rec.stream_id, rec.version, rec.turn_id, rec.recorded_at, rec.type, rec.schema, rec.payload
    )


async def verify(log: EventLog, stream_id: str | None = None) -> VerifyReport:
    """Each conversation's chain recomputed from its stored bytes, and a fork's link to its
    parent (one conversation alone: the parents' histories up to the fork points too)."""
    streams = [stream_id] if stream_id is not None else await log.streams()
    broken: list[Broken] = []
    total = 0
    for sid in streams:
        n, b = await verify_stream(log, sid)
        total += n
        if b is None and n:
            b = await fork_link(log, (await log.read(sid, 0, 1))[0], chains=stream_id is not None)
        if b is not None:
            broken.append(b)
    return VerifyReport(len(streams), total, broken)


# -- the whole log: positions, every chain, the tree, the checkpoints ----------------------------


class Problem(msgspec.Struct, frozen=True):
    """One thing wrong with the log. ``kind``: ``removed`` (events missing), ``changed`` (bytes or
    links that do not hash), ``reordered``, ``signature`` (a checkpoint's signature or key)."""

    kind: str
    why: str

    def __str__(self) -> str:
        return self.why


def first_problem(problems: list[Problem]) -> str:
    """The line a report prints when something is wrong: the first problem found, and how many more."""
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return f"{problems[0]}{more}"


class LogReport(msgspec.Struct, frozen=True):
    """What ``verify_log`` found. ``streams``/``events``: the conversations and events whose
    chains were recomputed; ``size`` and ``root``: the log's tree; ``checkpoints``: stored
    checkpoints compared with the tree; ``signatures``: signatures checked (stored and given);
    ``anchor``: the checkpoint given from outside, if any. ``problems`` in the order found."""

    streams: int
    events: int
    size: int
    root: str
    checkpoints: int
    signatures: int
    anchor: Checkpoint | None
    problems: list[Problem]

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        """One line: the first problem, or what was checked."""
        if self.problems:
            return first_problem(self.problems)
        line = f"ok: {self.streams} conversation(s), {self.events} events, hash chain intact; log tree of {self.size} events, root {self.root[:16]}"
        if self.checkpoints:
            signed = "signatures valid" if self.signatures else "signatures not checked (no public key given)"
            line += f"; {self.checkpoints} checkpoint(s) match, {signed}"
        if self.anchor is not None:
            line += f"; the given checkpoint (size {self.anchor.size}) matches"
        return line


#: verify_log keeps this many problems (the count of the rest is lost, not the verdict).
MAX_PROBLEMS = 1000


class _Pass:
    """One pass over the log in position order: every check that needs only what came before."""

    def __init__(self, stream_id: str | None, due: dict[int, list[tuple[str, Checkpoint]]]) -> None:
        self.stream_id = stream_id
        self.due = due
        self.heads: dict[str, tuple[int, str]] = {}
        self.frontier = Frontier()
        self.next_position = 1
        self.hashed = 0
        self.problems: list[Problem] = []
        #: The first events of forks in scope: their links are checked after the pass.
        self.forks: list[Recorded] = []

    def problem(self, kind: str, why: str) -> None:
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(Problem(kind, why))

    def link(self, kind: str, rec: Recorded, why: str) -> None:
        # Worded as ``Broken`` (and ``IntegrityError``): one way to name a broken link everywhere.
        self.problem(kind, str(Broken(rec.stream_id, rec.version, why)))

    def event(self, rec: Recorded) -> None:
        sid, v = rec.stream_id, rec.version
        head = self.heads.get(sid)
        if head is None:
            if v != 1:
                self.link(
                    "removed", rec, f"the conversation starts at version {v}, not 1: its first events were removed"
                )
            elif rec.prev_hash != GENESIS_HASH:
                self.link("changed", rec, "prev_hash of the first event is not the genesis hash")
        elif v > head[0] + 1:
            self.link("removed", rec, f"it follows version {head[0]}: {v - head[0] - 1} event(s) removed")
        elif v <= head[0]:
            self.link("reordered", rec, f"it comes after version {head[0]}: duplicated or reordered")
        elif rec.prev_hash != head[1]:
            self.link("changed", rec, "prev_hash does not match the previous event's hash")
        if self.stream_id is None or sid == self.stream_id:
            if v == 1 and type(rec.event) is ConversationCreated and rec.event.parent:
                self.forks.append(rec)
            self.hashed += 1
            actual = chain_hash(rec.prev_hash, sid, v, rec.turn_id, rec.recorded_at, rec.type, rec.schema, rec.payload)
            if actual != rec.hash:
                self.link("changed", rec, "the stored bytes do not hash to the stored hash (changed)")
        self.heads[sid] = (v, rec.hash)
        if rec.position != self.next_position:
            if rec.position > self.next_position:
                self.problem("removed", gap(self.next_position, rec))
            else:
                self.problem("reordered", f"position {rec.position} comes after {self.next_position - 1}")
        self.next_position = rec.position + 1
        try:
            leaf = merkle_leaf(rec.hash)
        except ValueError:  # a stored hash that is not hex: changed; the tree goes on, mismatched
            self.link("changed", rec, "its stored hash is not a hex SHA-256")
            leaf = b""
        self.frontier.append(leaf)
        if self.frontier.size in self.due:
            self.compare(self.frontier.size)

    def compare(self, size: int) -> None:
        root = self.frontier.root().hex()
        for label, cp in self.due.pop(size):
            if cp.root != root:
                self.problem(
                    "changed",
                    f"{label}: the log's first {size} events hash to root {root[:16]}, the checkpoint says "
                    f"{cp.root[:16]}: events at positions 1..{size} were changed, removed or reordered",
                )

    def report(self, stream_id: str | None, checkpoints: int, signatures: int, anchor: Checkpoint | None) -> LogReport:
        return LogReport(
            streams=len(self.heads) if stream_id is None else 1,
            events=self.hashed,
            size=self.frontier.size,
            root=self.frontier.root().hex(),
            checkpoints=checkpoints,
            signatures=signatures,
            anchor=anchor,
            problems=self.problems,
        )

    def finish(self) -> None:
        n = self.frontier.size
        for size in sorted(self.due):
            for label, _ in self.due[size]:
                self.problem(
                    "removed",
                    f"{label} covers {size} events, the log holds {n}: events were removed from the end of the log",
                )


async def verify_log(
    log: EventLog,
    stream_id: str | None = None,
    *,
    keys: Iterable[SignatureVerifier] = (),
    anchor: Checkpoint | None = None,
) -> LogReport:
    """Check the whole log in one pass over ``read_all``: every event's hash recomputed from its
    stored bytes (only ``stream_id``'s, when given), every conversation's chain (starts at version
    1, versions consecutive, links), positions gapless from 1, every stored checkpoint's root
    against the tree at its size (and its signature, when ``keys`` are given), and ``anchor``,
    a checkpoint kept outside the log (a log rolled back past it, or different at its size, fails)."""
    if stream_id is not None and await log.last(stream_id) is None:
        raise ConversationNotFound(stream_id)
    ring = keyring(keys)
    stored = await stored_checkpoints(log)
    labelled = [(f"checkpoint of size {cp.size} ({cp.timestamp})", cp) for cp in stored]
    if anchor is not None:
        labelled.append((f"the given checkpoint (size {anchor.size}, {anchor.timestamp})", anchor))
    due: dict[int, list[tuple[str, Checkpoint]]] = {}
    for label, cp in labelled:
        due.setdefault(cp.size, []).append((label, cp))
    run = _Pass(stream_id, due)
    # Signatures first: a checkpoint nobody signed proves nothing, whatever the tree says.
    for label, cp in labelled if ring else ():
        why = signature_problem(cp, ring)
        if why:
            run.problem("signature", f"{label}: {why}")
    if 0 in due:
        run.compare(0)
    after = 0
    while True:
        try:
            page = await log.read_all(after, _PAGE)
        except (msgspec.DecodeError, ReplayError) as exc:
            position = await _first_unreadable(log, after, _PAGE)
            run.problem(
                "changed",
                f"the event at position {position} cannot be decoded ({exc}): its stored bytes were changed; "
                "verification stopped there",
            )
            return run.report(stream_id, len(stored), len(labelled) if ring else 0, anchor)
        for rec in page:
            run.event(rec)
        if len(page) < _PAGE:
            break
        after = page[-1].position
    run.finish()
    for child in run.forks:
        broken = await fork_link(log, child, chains=stream_id is not None)
        if broken is not None:
            run.problem("changed", str(broken))
    return run.report(stream_id, len(stored), len(labelled) if ring else 0, anchor)


async def _first_unreadable(log: EventLog, after: int, limit: int) -> int:
    """The position of the first event after ``after`` that the store cannot decode, found by
    halving the failing page: a few reads, on the error path only."""
    low, n = after, limit
    while n > 1:
        half = n // 2
        try:
            page = await log.read_all(low, half)
        except (msgspec.DecodeError, ReplayError):
            n = half
            continue
        if not page:
            break
        low, n = page[-1].position, n - half
    return low + 1
