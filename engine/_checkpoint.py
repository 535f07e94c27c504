"""Signed checkpoints of the log-wide tree's head, and the ports they need.

A checkpoint says "the first ``size`` events of the log ``origin`` hash to ``root``", signed
over the body ``"{origin}\\n{size}\\n{base64 root}\\n{timestamp}\\n"`` (C2SP tlog-checkpoint style).
The engine signs and checks through two small protocols (``Signer``, ``SignatureVerifier``):
the Ed25519 keys live in ``turnlog.adapters.signing``, so the engine imports no crypto library,
and the private key never reaches the log. A store that keeps checkpoints implements
``CheckpointLog`` (memory, SQLite and PostgreSQL do; ``turnlog.engine.testing.CheckpointContract``
is its contract).

``create_checkpoint`` reads leaf hashes with ``read_all``. Each checkpoint keeps the tree's
frontier (O(log n) hashes, not signed), so the next one reads only the events after it; a
frontier that does not fold to its own root is ignored and the tree is read from position 1.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Protocol, runtime_checkable

import msgspec

from ._errors import ConfigError, IntegrityError
from ._events import Recorded
from ._log import BULK_PAGE, EventLog
from ._merkle import Frontier, merkle_leaf
from ._ports import Clock, SystemClock

#: The origin line of checkpoints when the operator names none (``turnlog checkpoint --origin``).
DEFAULT_ORIGIN = "turnlog"


class Checkpoint(msgspec.Struct, frozen=True, omit_defaults=True):
    """A signed statement of the tree's head. ``root`` is hex; ``signature`` is base64 Ed25519
    over ``body()``; ``key_id`` is the sha256 (hex) of the signer's raw 32-byte public key."""

    origin: str
    size: int
    root: str
    timestamp: str
    key_id: str
    signature: str
    #: The tree's frontier at ``size`` (hex subtree roots, largest first). Not signed and never
    #: trusted by a verifier: it only spares the next checkpoint a read of the whole log.
    frontier: tuple[str, ...] = ()

    def body(self) -> bytes:
        return checkpoint_body(self.origin, self.size, self.root, self.timestamp)

    def public(self) -> Checkpoint:
        """The checkpoint as handed out (printed, exported): without the frontier."""
        return msgspec.structs.replace(self, frontier=())

    def to_json(self) -> bytes:
        return msgspec.json.encode(self.public())

    @classmethod
    def from_json(cls, data: bytes | str) -> Checkpoint:
        """Read a checkpoint document (``turnlog checkpoint``'s output); ``ValueError`` if it is not one."""
        try:
            return msgspec.json.decode(data, type=cls)
        except msgspec.DecodeError as exc:
            raise ValueError(f"not a turnlog checkpoint: {exc}") from None


def checkpoint_body(origin: str, size: int, root: str, timestamp: str) -> bytes:
    """The signed bytes: ``"{origin}\\n{size}\\n{base64 of the 32-byte root}\\n{timestamp}\\n"`` (UTF-8)."""
    b64 = base64.b64encode(bytes.fromhex(root)).decode()
    return f"{origin}\n{size}\n{b64}\n{timestamp}\n".encode()


class Signer(Protocol):
    """Signs checkpoint bodies (``turnlog.adapters.signing.Ed25519Signer``)."""

    @property
    def key_id(self) -> str: ...

    def sign(self, message: bytes) -> bytes: ...


class SignatureVerifier(Protocol):
    """Checks checkpoint signatures under one public key (``turnlog.adapters.signing.Ed25519Verifier``)."""

    @property
    def key_id(self) -> str: ...

    def verify(self, message: bytes, signature: bytes) -> bool: ...


@runtime_checkable
class CheckpointLog(Protocol):
    """What a store adds to ``EventLog`` to keep checkpoints (in the log's own database)."""

    async def append_checkpoint(self, checkpoint: Checkpoint) -> None:
        """Store a checkpoint, frontier included. Checkpoints are never changed or removed."""
        ...

    async def checkpoints(self) -> list[Checkpoint]:
        """Every stored checkpoint, by size, then in the order they were appended."""
        ...

    async def last_checkpoint(self) -> Checkpoint | None:
        """The checkpoint of the largest size (the last appended of those), or None."""
        ...


def keyring(keys: Iterable[SignatureVerifier]) -> dict[str, SignatureVerifier]:
    """key id -> verifier."""
    return {k.key_id: k for k in keys}


def signature_problem(checkpoint: Checkpoint, keys: Mapping[str, SignatureVerifier]) -> str | None:
    """Why ``checkpoint``'s signature does not hold under ``keys`` (None: it holds)."""
    verifier = keys.get(checkpoint.key_id)
    if verifier is None:
        given = ", ".join(k[:16] for k in keys) or "none"
        return f"signed by key {checkpoint.key_id[:16]}, not by the given public key ({given}): signed by another key"
    try:
        signature = base64.b64decode(checkpoint.signature, validate=True)
        body = checkpoint.body()
    except ValueError:
        return "bad signature: its signature is not base64 or its root is not hex"
    if not verifier.verify(body, signature):
        return "bad signature: its origin, size, root or timestamp was changed, or the signature was"
    return None


def checkpoint_log(log: EventLog) -> CheckpointLog:
    if not isinstance(log, CheckpointLog):
        raise ConfigError(f"{type(log).__name__} keeps no checkpoints (it has no append_checkpoint/checkpoints)")
    return log


async def stored_checkpoints(log: EventLog) -> list[Checkpoint]:
    """The log's checkpoints; none for a store that keeps none."""
    return await log.checkpoints() if isinstance(log, CheckpointLog) else []


def log_broken(why: str) -> IntegrityError:
    """``IntegrityError`` (code ``integrity_broken``) for the log as a whole, not one stream."""
    exc = IntegrityError("", 0, why)
    exc.args = (f"the log is broken: {why}",)
    return exc


def gap(expected: int, rec: Recorded) -> str:
    return (
        f"position {expected} is missing (the log jumps to {rec.position}, "
        f"conversation {rec.stream_id!r} version {rec.version}): events were removed"
    )


async def pages(log: EventLog, after_position: int = 0) -> AsyncIterator[list[Recorded]]:
    """Every event after a position, in position order, page by page."""
    while True:
        page = await log.read_all(after_position, BULK_PAGE)
        if page:
            yield page
        if len(page) < BULK_PAGE:
            return
        after_position = page[-1].position


def _restore(checkpoint: Checkpoint) -> Frontier | None:
    """The frontier a checkpoint stored, if it is well formed and folds to the checkpoint's root."""
    try:
        frontier = Frontier(checkpoint.size, [bytes.fromhex(h) for h in checkpoint.frontier])
    except ValueError:
        return None
    return frontier if frontier.root().hex() == checkpoint.root else None


async def create_checkpoint(
    log: EventLog,
    signer: Signer,
    *,
    origin: str = DEFAULT_ORIGIN,
    clock: Clock | None = None,
    full: bool = False,
) -> Checkpoint:
    """Sign the head of the log's tree and store it in the log; returns the checkpoint.

    Goes on from the frontier of the largest stored checkpoint (``full=True``: reads every event
    and checks that checkpoint's root on the way). Refuses (``IntegrityError``) a log whose
    positions have a gap or that holds fewer events than a checkpoint it already signed: a
    signature over a log that lost events would launder the loss."""
    if not origin or "\n" in origin:
        raise ConfigError(f"a checkpoint origin is one non-empty line, not {origin!r}")
    store = checkpoint_log(log)
    last = await store.last_checkpoint()
    frontier = Frontier()
    if last is not None and not full:
        frontier = _restore(last) or Frontier()
    if frontier.size:
        head = await log.read_all(frontier.size - 1, 1)
        if not head or head[0].position != frontier.size:
            raise log_broken(
                f"it holds fewer than the {frontier.size} events its last checkpoint signed: "
                "events were removed from its end; run `turnlog verify`"
            )
    async for page in pages(log, frontier.size):
        for rec in page:
            if rec.position != frontier.size + 1:
                raise log_broken(gap(frontier.size + 1, rec) + "; run `turnlog verify`")
            frontier.append(merkle_leaf(rec.hash))
            if last is not None and frontier.size == last.size and frontier.root().hex() != last.root:
                raise log_broken(f"its first {last.size} events do not match its checkpoint; run `turnlog verify`")
    if last is not None and frontier.size < last.size:
        raise log_broken(
            f"it holds {frontier.size} events, fewer than the {last.size} its last checkpoint signed: "
            "events were removed from its end; run `turnlog verify`"
        )
    root = frontier.root().hex()
    timestamp = (clock or SystemClock()).now()
    body = checkpoint_body(origin, frontier.size, root, timestamp)
    signature = base64.b64encode(signer.sign(body)).decode()
    checkpoint = Checkpoint(
        origin, frontier.size, root, timestamp, signer.key_id, signature, tuple(h.hex() for h in frontier.hashes)
    )
    await store.append_checkpoint(checkpoint)
    return checkpoint


async def checkpoint_if_grown(
    log: EventLog, signer: Signer, *, origin: str = DEFAULT_ORIGIN, clock: Clock | None = None
) -> Checkpoint | None:
    """``create_checkpoint`` when the log holds events its newest checkpoint does not cover, else
    None: what a server calls every few seconds (several servers may; a checkpoint more is harmless)."""
    last = await checkpoint_log(log).last_checkpoint()
    if last is not None and not await log.read_all(last.size, 1):
        return None
    return await create_checkpoint(log, signer, origin=origin, clock=clock)
