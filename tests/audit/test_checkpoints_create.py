"""``create_checkpoint`` and ``verify_log`` through the engine's API: no checkpoint is signed over
a log that lost or changed events, a stored frontier is a shortcut never trusted, an event whose
bytes no longer decode is named, and a verify scoped to one conversation hashes only its events."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import msgspec
import pytest
from turnlog.adapters.signing import Ed25519Signer
from turnlog.adapters.stores import SqliteEventLog
from turnlog.engine import (
    ConfigError,
    FixedClock,
    InMemoryEventLog,
    IntegrityError,
    checkpoint_if_grown,
    create_checkpoint,
    verify,
    verify_log,
)
from turnlog.engine.testing import RECORDED_AT, deltas

KEY = Ed25519Signer.generate()


async def filled(log, streams: int = 3, each: int = 4):
    for round_ in range(2):
        for s in range(streams):
            await log.append(f"s{s}", deltas(each, start=round_ * each), round_ * each, recorded_at=RECORDED_AT)
    return log


async def test_a_checkpoint_is_never_signed_over_a_gap_or_a_shortened_log() -> None:
    log = await filled(InMemoryEventLog())
    del log._all[5]  # the event at position 6, behind the log's back
    with pytest.raises(IntegrityError, match=r"position 6 is missing .* events were removed"):
        await create_checkpoint(log, KEY)
    log = await filled(InMemoryEventLog())
    await create_checkpoint(log, KEY)
    del log._all[-2:]
    for full in (False, True):
        with pytest.raises(IntegrityError, match="events were removed from its end"):
            await create_checkpoint(log, KEY, full=full)


async def test_full_mode_refuses_a_log_changed_before_its_last_checkpoint() -> None:
    log = await filled(InMemoryEventLog())
    await create_checkpoint(log, KEY)
    log._all[3] = msgspec.structs.replace(log._all[3], hash="ab" * 32)
    with pytest.raises(IntegrityError, match="do not match its checkpoint"):
        await create_checkpoint(log, KEY, full=True)
    # Going on from the frontier signs the honest tree: verify sees the change against both.
    await create_checkpoint(log, KEY)
    report = await verify_log(log, keys=[KEY.verifier])
    assert [p.kind for p in report.problems][:1] == ["changed"]
    assert sum("checkpoint of size" in p.why for p in report.problems) == 2


async def test_a_stored_frontier_that_does_not_fold_to_its_root_is_ignored() -> None:
    log = await filled(InMemoryEventLog())
    first = await create_checkpoint(log, KEY, clock=FixedClock())
    log._raw_checkpoints()[0] = msgspec.structs.replace(first, frontier=("00" * 32,) * len(first.frontier))
    await log.append("s0", deltas(3, start=8), 8, recorded_at=RECORDED_AT)
    second = await create_checkpoint(log, KEY, clock=FixedClock())
    full = await create_checkpoint(log, KEY, clock=FixedClock(), full=True)
    assert second.root == full.root and second.size == full.size == 27
    assert (await verify_log(log, keys=[KEY.verifier])).ok


async def test_an_origin_is_one_line() -> None:
    log = InMemoryEventLog()
    for origin in ("", "two\nlines"):
        with pytest.raises(ConfigError, match="one non-empty line"):
            await create_checkpoint(log, KEY, origin=origin)


async def test_the_first_problem_of_a_middle_removal_names_the_conversation() -> None:
    log = await filled(InMemoryEventLog())
    removed = log._all.pop(13)
    log._streams[removed.stream_id].remove(removed)
    report = await verify_log(log)
    assert report.problems[0].kind == "removed"
    assert (
        str(report.problems[0])
        == f"stream {removed.stream_id!r}: first broken link at version 7: it follows version 5: 1 event(s) removed"
    )
    assert "position 14 is missing" in report.problems[1].why


@pytest.fixture
async def sqlite_log(tmp_path: Path):
    log = await SqliteEventLog.open(tmp_path / "log.db")
    await filled(log)
    try:
        yield log
    finally:
        await log.close()


async def test_an_event_that_no_longer_decodes_is_named(sqlite_log: SqliteEventLog) -> None:
    with sqlite3.connect(sqlite_log.path) as db:
        db.execute("UPDATE turnlog_events SET payload = X'7b7b' WHERE position = 17")
    report = await verify_log(sqlite_log)
    assert not report.ok and report.problems[-1].why.startswith("the event at position 17 cannot be decoded")


async def test_a_scoped_verify_hashes_only_its_conversation(sqlite_log: SqliteEventLog) -> None:
    with sqlite3.connect(sqlite_log.path) as db:
        db.execute(
            "UPDATE turnlog_events SET payload = CAST(replace(payload, 'tok', 'tik') AS BLOB) WHERE position = 5"
        )
        changed, version = db.execute("SELECT stream_id, version FROM turnlog_events WHERE position = 5").fetchone()
    other = next(s for s in ("s0", "s1", "s2") if s != changed)
    assert (await verify_log(sqlite_log, other)).ok
    report = await verify_log(sqlite_log, changed)
    assert (
        f"stream {changed!r}: first broken link at version {version}: the stored bytes do not hash" in report.summary()
    )
    assert not (await verify_log(sqlite_log)).ok
    # The per-conversation check of old callers (the server's /verify) still reports the link.
    old = await verify(sqlite_log, changed)
    assert not old.ok and old.broken[0].version == version


async def test_checkpoint_if_grown_signs_only_new_events() -> None:
    log = InMemoryEventLog()
    empty = await checkpoint_if_grown(log, KEY)
    assert empty is not None and empty.size == 0
    assert await checkpoint_if_grown(log, KEY) is None
    await filled(log)
    grown = await checkpoint_if_grown(log, KEY)
    assert grown is not None and grown.size == 24
    assert await checkpoint_if_grown(log, KEY) is None
    assert len(await log.checkpoints()) == 2
