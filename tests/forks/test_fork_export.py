"""A fork's export (``export_conversation``) holds its parents' events up to each fork point, then
its own; ``verify_export`` checks each chain, each link (the parent's hash at the fork point), and
the one inclusion proof that anchors them all; a changed parent or a missing one is reported."""

from __future__ import annotations

import base64
import json

from turnlog.adapters.signing import Ed25519Signer
from turnlog.engine import InMemoryEventLog, chain_hash, create_checkpoint, export_conversation, verify_export
from turnlog.projections import MemoryMessageStore

from .test_fork_engine import engine_for, live_turn, parent_with_two_turns


class Store:
    def __init__(self) -> None:
        self.log, self.messages = InMemoryEventLog(), MemoryMessageStore()


async def exported() -> tuple[list[bytes], Ed25519Signer, str, str]:
    store = Store()
    parent, boundary, _ = await parent_with_two_turns(store)
    engine = engine_for(store, [[{"text": "Coat.", "split": 1}], [{"text": "Hat.", "split": 1}]])
    child = await engine.fork(parent, boundary)
    await live_turn(engine, child, "Wear?")
    grandchild = await engine.fork(child, (await store.log.last(child)).version)
    await live_turn(engine, grandchild, "And?")
    signer = Ed25519Signer.generate()
    await create_checkpoint(store.log, signer)
    lines = [line async for line in export_conversation(store.log, grandchild)]
    return lines, signer, parent, child


async def test_a_forks_export_carries_and_checks_its_parents() -> None:
    lines, signer, parent, child = await exported()
    events = [json.loads(line) for line in lines if json.loads(line)["kind"] == "event"]
    streams = list(dict.fromkeys(e["stream_id"] for e in events))
    assert streams[:2] == [parent, child] and len(streams) == 3
    report = verify_export(lines, [signer.verifier])
    assert report.ok, report.summary()
    assert report.inherited == sum(1 for e in events if e["stream_id"] != streams[2])
    assert "a fork: its parents'" in report.summary()


def _rewrite(lines: list[bytes], pick, change) -> list[bytes]:  # type: ignore[no-untyped-def]
    out = []
    for line in lines:
        item = json.loads(line)
        if item["kind"] == "event" and pick(item):
            change(item)
        out.append(json.dumps(item).encode() + b"\n")
    return out


async def test_a_changed_or_missing_parent_in_the_export_is_reported() -> None:
    lines, signer, parent, _ = await exported()
    # The parent's events left out: the fork's parent is not there.
    without = [line for line in lines if json.loads(line).get("stream_id") != parent]
    report = verify_export(without, [signer.verifier])
    assert not report.ok and "whose parent is not in the export" in report.summary()

    # A parent's event changed and its chain sealed again by a forger: its hash at the fork
    # point changes, and the child's link no longer holds.
    def forge(item: dict) -> None:  # type: ignore[type-arg]
        payload = json.loads(base64.b64decode(item["payload"]))
        if payload.get("type") == "turn_started":
            payload["user_message"] = "forged"
        item["payload"] = base64.b64encode(json.dumps(payload).encode()).decode()

    forged = _rewrite(lines, lambda e: e["stream_id"] == parent, forge)
    report = verify_export(forged, [signer.verifier])
    assert not report.ok
    assert any("do not hash" in str(p) for p in report.problems)

    # ...and the parent's chain sealed again over the forged bytes: the parent holds on its own,
    # the fork's link names the old hash.
    prev = "0" * 64
    resealed = []
    for line in forged:
        item = json.loads(line)
        if item["kind"] == "event" and item["stream_id"] == parent:
            item["prev_hash"] = prev
            payload = base64.b64decode(item["payload"])
            keys = ("stream_id", "version", "turn_id", "recorded_at", "type", "schema")
            item["hash"] = prev = chain_hash(prev, *(item[k] for k in keys), payload)
        resealed.append(json.dumps(item).encode() + b"\n")
    report = verify_export(resealed, [signer.verifier])
    assert not report.ok
    assert "(the parent was changed)" in report.summary()
    assert not any("do not hash" in str(p) for p in report.problems)
