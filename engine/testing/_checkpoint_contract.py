"""The checkpoint contract (``turnlog.engine.CheckpointLog``): a store keeps signed checkpoints
beside its events, gives them back by size, shares them between instances, and the tree built
over its ``read_all`` is the one ``create_checkpoint`` and ``verify_log`` compute."""

from __future__ import annotations

import hashlib
import hmac

from turnlog.engine import (
    Checkpoint,
    CheckpointLog,
    EventLog,
    FixedClock,
    create_checkpoint,
    merkle_leaf,
    merkle_root,
    verify_log,
)

from ._support import Instances, LogHarness, append, deltas


class _HmacKey:
    """A stand-in for an Ed25519 key (the engine's contract needs no crypto library): signs with
    HMAC-SHA256. Only the protocol matters here; real keys are ``turnlog.adapters.signing``'s."""

    def __init__(self, secret: bytes = b"contract") -> None:
        self._secret = secret
        self.key_id = hashlib.sha256(secret).hexdigest()

    def sign(self, message: bytes) -> bytes:
        return hmac.digest(self._secret, message, "sha256")

    def verify(self, message: bytes, signature: bytes) -> bool:
        return hmac.compare_digest(self.sign(message), signature)


def _checkpoint(size: int, root: str = "ab" * 32, *, stamp: str = "t", frontier: tuple[str, ...] = ()) -> Checkpoint:
    return Checkpoint("contract", size, root, stamp, "k" * 64, "c2ln", frontier)


class CheckpointContract(LogHarness):
    """Subclass it as ``Test...`` beside ``EventLogContract`` with the same ``open_log`` (and
    ``open_again``) for a store that implements ``CheckpointLog``."""

    async def test_the_store_keeps_checkpoints(self, log: EventLog) -> None:
        assert isinstance(log, CheckpointLog)
        assert await log.checkpoints() == [] and await log.last_checkpoint() is None

    async def test_checkpoints_come_back_whole_by_size_then_in_append_order(self, log: EventLog) -> None:
        assert isinstance(log, CheckpointLog)
        frontier = ("01" * 32, "02" * 32)
        five_a, two, five_b = _checkpoint(5, frontier=frontier), _checkpoint(2, stamp="u"), _checkpoint(5, stamp="v")
        for cp in (five_a, two, five_b):
            await log.append_checkpoint(cp)
        assert await log.checkpoints() == [two, five_a, five_b]
        assert await log.last_checkpoint() == five_b

    async def test_another_instance_sees_the_checkpoints(self, logs: Instances) -> None:
        first, second = await logs.two()
        assert isinstance(first, CheckpointLog) and isinstance(second, CheckpointLog)
        await append(first, "a", deltas(3), 0)
        cp = await create_checkpoint(first, _HmacKey(), clock=FixedClock())
        assert await second.checkpoints() == [cp] and await second.last_checkpoint() == cp

    async def test_create_checkpoint_goes_on_from_the_last_frontier(self, log: EventLog) -> None:
        assert isinstance(log, CheckpointLog)
        key, clock = _HmacKey(), FixedClock()
        empty = await create_checkpoint(log, key, clock=clock)
        assert (empty.size, empty.root) == (0, hashlib.sha256(b"").hexdigest())
        await append(log, "a", deltas(5), 0)
        await append(log, "b", deltas(6), 0)
        first = await create_checkpoint(log, key, clock=clock)
        await append(log, "a", deltas(4, start=5), 5)
        second = await create_checkpoint(log, key, clock=clock)
        leaves = [merkle_leaf(r.hash) for r in await log.read_all(0, 100)]
        assert (first.size, second.size) == (11, 15)
        assert first.root == merkle_root(leaves[:11]).hex() and second.root == merkle_root(leaves).hex()
        full = await create_checkpoint(log, key, clock=clock, full=True)
        assert (full.size, full.root, full.frontier) == (second.size, second.root, second.frontier)
        report = await verify_log(log, keys=[key])
        assert report.ok, report.summary()
        assert (report.size, report.checkpoints, report.signatures) == (15, 4, 4)

    async def test_verify_log_sees_a_checkpoint_beyond_the_log(self, log: EventLog) -> None:
        assert isinstance(log, CheckpointLog)
        await append(log, "a", deltas(3), 0)
        await log.append_checkpoint(_checkpoint(7))
        report = await verify_log(log)
        assert [p.kind for p in report.problems] == ["removed"]
        assert "covers 7 events, the log holds 3" in report.summary()
