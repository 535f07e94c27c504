"""One conversation as a file a third party can check with no database and no other conversation.

The file is JSON lines (docs/architecture.md, "Audit: the log-wide tree, checkpoints, exports"):

    {"kind":"header","format":"turnlog-export/1","conversation":ID,"payload":"base64"}
    {"kind":"event","position":P,"stream_id":ID,"version":V,"turn_id":..,"recorded_at":..,"type":..,
     "schema":S,"prev_hash":HEX,"hash":HEX,"payload":BASE64 of the exact stored bytes}   (one per event)
    {"kind":"checkpoint","origin":..,"size":N,"root":HEX,"timestamp":..,"key_id":HEX,"signature":BASE64}
    {"kind":"proof","version":V,"position":P,"leaf_index":P-1,"tree_size":N,"path":[HEX, ...]}

The proof is the RFC 9162 audit path of the conversation's newest event the checkpoint covers:
that event's chain hash commits to every earlier event of the conversation, so the proof anchors
them all. Events after it are in the file and reported as not anchored.

A fork's export first holds its parents' events up to each fork point (oldest parent first, each
from its version 1), then its own: its first event names the last parent's event by hash, so the
one proof anchors the parents' histories too, and ``verify_export`` checks each link.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Iterable
from typing import Any

import msgspec

from ._checkpoint import (
    Checkpoint,
    SignatureVerifier,
    checkpoint_log,
    gap,
    keyring,
    log_broken,
    pages,
    signature_problem,
)
from ._errors import ConfigError, ConversationNotFound
from ._events import GENESIS_HASH, ConversationCreated, Recorded, chain_hash, decode_event
from ._fork import READ_DEPTH, lineage
from ._log import EventLog
from ._merkle import InclusionProof, merkle_leaf, verify_inclusion
from ._verify import Problem, first_problem

EXPORT_FORMAT = "turnlog-export/1"


class _Header(msgspec.Struct, frozen=True, tag_field="kind", tag="header"):
    format: str
    conversation: str
    payload: str = "base64"


class _Event(msgspec.Struct, frozen=True, tag_field="kind", tag="event"):
    position: int
    stream_id: str
    version: int
    turn_id: str
    recorded_at: str
    type: str
    schema: int
    prev_hash: str
    hash: str
    payload: str


class _Checkpoint(msgspec.Struct, frozen=True, tag_field="kind", tag="checkpoint"):
    origin: str
    size: int
    root: str
    timestamp: str
    key_id: str
    signature: str


class _Proof(msgspec.Struct, frozen=True, tag_field="kind", tag="proof"):
    version: int
    position: int
    leaf_index: int
    tree_size: int
    path: list[str]


_encoder = msgspec.json.Encoder()
_line = msgspec.json.Decoder(_Header | _Event | _Checkpoint | _Proof)


async def log_inclusion_proof(log: EventLog, index: int, size: int) -> list[bytes]:
    """The audit path of leaf ``index`` in the log's tree of ``size`` events, in one pass over
    positions 1..size (O(log n) memory)."""
    proof = InclusionProof(index, size)
    async for page in pages(log):
        for rec in page:
            if rec.position != proof.seen + 1:
                raise log_broken(gap(proof.seen + 1, rec) + "; run `turnlog verify`")
            proof.add(merkle_leaf(rec.hash))
            if proof.done:
                return proof.path()
    raise log_broken(f"it holds fewer than the {size} events its checkpoint signed; run `turnlog verify`")


def _event_line(rec: Recorded) -> bytes:
    e = _Event(
        rec.position,
        rec.stream_id,
        rec.version,
        rec.turn_id,
        rec.recorded_at,
        rec.type,
        rec.schema,
        rec.prev_hash,
        rec.hash,
        base64.b64encode(rec.payload).decode(),
    )
    return _encoder.encode(e) + b"\n"


async def export_conversation(log: EventLog, stream_id: str) -> AsyncIterator[bytes]:
    """The lines of ``stream_id``'s export (each ends in ``\\n``), anchored by the log's latest
    checkpoint. ``ConfigError`` when no checkpoint covers the conversation yet."""
    store = checkpoint_log(log)
    first = await log.read(stream_id, 0, 1)
    if not first:
        raise ConversationNotFound(stream_id)
    cp = await store.last_checkpoint()
    if cp is None or first[0].position > cp.size:
        why = (
            "the log has no checkpoint yet" if cp is None else f"it began after the latest checkpoint (size {cp.size})"
        )
        raise ConfigError(
            f"cannot export conversation {stream_id!r}: {why}; run `turnlog checkpoint --key KEYFILE` first"
        )
    yield _encoder.encode(_Header(EXPORT_FORMAT, stream_id)) + b"\n"
    created = first[0].event
    if isinstance(created, ConversationCreated) and created.parent:
        for point in await lineage(log, stream_id, created, READ_DEPTH):
            async for rec in log.iter_stream(point.conversation_id):
                if rec.version > point.version:
                    break
                yield _event_line(rec)
    anchored = first[0]
    async for rec in log.iter_stream(stream_id):
        yield _event_line(rec)
        if rec.position <= cp.size:
            anchored = rec
    path = await log_inclusion_proof(log, anchored.position - 1, cp.size)
    if not verify_inclusion(anchored.position - 1, cp.size, merkle_leaf(anchored.hash), path, bytes.fromhex(cp.root)):
        raise log_broken(f"its first {cp.size} events do not match its latest checkpoint; run `turnlog verify`")
    yield _encoder.encode(_Checkpoint(cp.origin, cp.size, cp.root, cp.timestamp, cp.key_id, cp.signature)) + b"\n"
    proof = _Proof(anchored.version, anchored.position, anchored.position - 1, cp.size, [p.hex() for p in path])
    yield _encoder.encode(proof) + b"\n"


class ExportReport(msgspec.Struct, frozen=True):
    """What ``verify_export`` found: ``anchored`` is the newest version the checkpoint proves
    (0: none), ``unanchored`` the events after it."""

    conversation: str
    events: int
    anchored: int
    unanchored: int
    checkpoint: Checkpoint | None
    problems: list[Problem]
    #: A fork's parents' events the export holds (up to each fork point), checked with it.
    inherited: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        if self.problems:
            return first_problem(self.problems)
        cp = self.checkpoint
        assert cp is not None
        line = (
            f"ok: conversation {self.conversation!r}, {self.events} events, hash chain intact; versions "
            f"1..{self.anchored} proven by checkpoint {cp.origin!r} of size {cp.size} ({cp.timestamp}, key {cp.key_id[:16]})"
        )
        if self.unanchored:
            line += f"; {self.unanchored} later event(s) not anchored by a checkpoint"
        if self.inherited:
            line += f"; a fork: its parents' {self.inherited} event(s) up to the fork point checked and linked"
        return line


class _Reader:
    """The export's lines, parsed and put in their places; anything out of place is a problem."""

    def __init__(self, lines: Iterable[bytes | str]) -> None:
        self.problems: list[Problem] = []
        self.conversation = ""
        self.header: _Header | None = None
        self.events: list[_Event] = []
        self.checkpoint: _Checkpoint | None = None
        self.proof: _Proof | None = None
        for n, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                item = _line.decode(line)
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                self.problem("changed", f"line {n} is not a turnlog export line: {exc}")
                continue
            if isinstance(item, _Header):
                if n != 1 or item.format != EXPORT_FORMAT:
                    self.problem("changed", f"line {n}: a header where none belongs, or format {item.format!r}")
                self.header = item
            elif self.checkpoint is not None and isinstance(item, _Event):
                self.problem("reordered", f"line {n}: an event after the checkpoint")
            elif isinstance(item, _Event):
                self.events.append(item)
            elif isinstance(item, _Checkpoint):
                if self.checkpoint is not None:
                    self.problem("changed", f"line {n}: a second checkpoint")
                self.checkpoint = item
            else:
                if self.proof is not None:
                    self.problem("changed", f"line {n}: a second proof")
                self.proof = item

    def problem(self, kind: str, why: str) -> None:
        self.problems.append(Problem(kind, why))

    def chain(self, conversation: str) -> None:
        """Each conversation's chain (a fork's parents first, each up to its fork point), and the
        link from each to the one before it."""
        sections: list[list[_Event]] = []
        for e in self.events:
            if not sections or e.stream_id != sections[-1][-1].stream_id:
                sections.append([])
            sections[-1].append(e)
        if sections and sections[-1][0].stream_id != conversation:
            self.problem(
                "changed", f"the last events belong to conversation {sections[-1][0].stream_id!r}, not {conversation!r}"
            )
        for i, section in enumerate(sections):
            payloads = self._section(section)
            if i and payloads:
                self._link(sections[i - 1][-1], section[0], payloads[0])
        if len(sections) > 1 and self._parent_of(sections[0][0]) is not None:
            self.problem(
                "removed", f"conversation {sections[0][0].stream_id!r} is a fork whose parent is not in the export"
            )
        elif len(sections) == 1 and self.events and self._parent_of(self.events[0]) is not None:
            self.problem(
                "removed", f"conversation {conversation!r} is a fork whose parent's events are not in the export"
            )

    def _parent_of(self, e: _Event) -> Any:
        try:
            ev = decode_event(e.type, e.schema, base64.b64decode(e.payload, validate=True))
        except Exception:  # reported by the chain check
            return None
        return (ev.parent or None) if isinstance(ev, ConversationCreated) else None

    def _link(self, parent: _Event, child: _Event, payload: bytes) -> None:
        try:
            ev = decode_event(child.type, child.schema, payload)
        except Exception as exc:
            self.problem("changed", f"conversation {child.stream_id!r}: its first event cannot be read ({exc})")
            return
        point = (ev.parent or None) if isinstance(ev, ConversationCreated) else None
        if point is None or point.conversation_id != parent.stream_id or point.version != parent.version:
            self.problem(
                "changed",
                f"conversation {child.stream_id!r} follows {parent.stream_id!r} version {parent.version} in the "
                "export but is not its fork there",
            )
        elif point.hash != parent.hash:
            self.problem(
                "changed",
                f"conversation {child.stream_id!r} forked from {parent.stream_id!r} at version {parent.version}: "
                f"the parent's hash there is {parent.hash[:16]}, the fork names {point.hash[:16]} (the parent was changed)",
            )

    def _section(self, events: list[_Event]) -> list[bytes]:
        prev, last_position = GENESIS_HASH, 0
        payloads: list[bytes] = []
        for expected, e in enumerate(events, 1):
            at = (
                f"version {e.version}"
                if e.stream_id == events[-1].stream_id
                else f"{e.stream_id!r} version {e.version}"
            )
            if e.version != expected:
                kind = "removed" if e.version > expected else "reordered"
                self.problem(kind, f"version {e.version} where {expected} was expected: events removed or reordered")
            if e.prev_hash != prev:
                self.problem("changed", f"{at}: prev_hash does not match the previous event's hash")
            try:
                payload = base64.b64decode(e.payload, validate=True)
            except ValueError:
                self.problem("changed", f"{at}: the payload is not base64")
                payload = b""
            payloads.append(payload)
            actual = chain_hash(
                e.prev_hash, e.stream_id, e.version, e.turn_id, e.recorded_at, e.type, e.schema, payload
            )
            if actual != e.hash:
                self.problem(
                    "changed", f"{at} (position {e.position}): the bytes do not hash to the stored hash (changed)"
                )
            if e.position <= last_position:
                self.problem("reordered", f"{at}: position {e.position} after {last_position}")
            prev, last_position = e.hash, e.position
        return payloads

    def anchor(self, cp: _Checkpoint, proof: _Proof) -> int:
        """The version the proof anchors (0: none)."""
        own = [e for e in self.events if e.stream_id == self.conversation]
        event = next((e for e in own if e.position == proof.position and e.version == proof.version), None)
        if event is None:
            self.problem("removed", f"the proof is for version {proof.version}, which the export does not hold")
            return 0
        later = [e.version for e in own if e.version > event.version and e.position <= cp.size]
        if proof.tree_size != cp.size or proof.leaf_index != event.position - 1 or later or event.position > cp.size:
            self.problem(
                "changed", "the proof does not fit the checkpoint (its tree size or leaf, or a later covered event)"
            )
            return 0
        try:
            path = [bytes.fromhex(p) for p in proof.path]
            root = bytes.fromhex(cp.root)
            leaf = merkle_leaf(event.hash)
        except ValueError:  # not hex: nothing can verify
            path, root, leaf = [], b"", b""
        if not verify_inclusion(proof.leaf_index, cp.size, leaf, path, root):
            self.problem(
                "changed",
                f"the inclusion proof does not lead from version {event.version}'s hash to the checkpoint's root: "
                "the export's events, proof or checkpoint were changed",
            )
            return 0
        return event.version


def verify_export(lines: Iterable[bytes | str], keys: Iterable[SignatureVerifier]) -> ExportReport:
    """Check an export on its own: the conversation's chain from its bytes, the checkpoint's
    signature under ``keys``, and the inclusion proof of its newest covered event."""
    r = _Reader(lines)
    conversation = r.conversation = r.header.conversation if r.header else ""
    if r.header is None:
        r.problem("changed", "not a turnlog export: no header line")
    if not r.events:
        r.problem("removed", "the export holds no event")
    r.chain(conversation)
    checkpoint = anchored = None
    if r.checkpoint is None or r.proof is None:
        r.problem("removed", "the export has no checkpoint or no proof")
    else:
        c = r.checkpoint
        checkpoint = Checkpoint(c.origin, c.size, c.root, c.timestamp, c.key_id, c.signature)
        ring = keyring(keys)
        why = signature_problem(checkpoint, ring) if ring else "no public key given: its signature cannot be checked"
        if why:
            r.problem("signature", f"the export's checkpoint (size {c.size}): {why}")
        anchored = r.anchor(c, r.proof)
    own = [e for e in r.events if e.stream_id == conversation]
    return ExportReport(
        conversation,
        len(own),
        anchored or 0,
        sum(1 for e in own if e.version > (anchored or 0)),
        checkpoint,
        r.problems,
        len(r.events) - len(own),
    )
