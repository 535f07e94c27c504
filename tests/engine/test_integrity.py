"""Forged logs are detected, tampering is caught by verify, and concurrent writers cannot both win."""

from __future__ import annotations

import asyncio
import sqlite3
import sys

import msgspec
import pytest
from turnlog.adapters.llm import ScriptedLLM
from turnlog.adapters.stores import SqliteEventLog
from turnlog.engine import (
    ConcurrencyError,
    ConversationFold,
    EngineConfig,
    FixedClock,
    IllegalEvent,
    InMemoryEventLog,
    IntegrityError,
    NewEvent,
    SequentialIds,
    TextDelta,
    TurnEngine,
    TurnRequest,
    replay,
    verify,
)


async def one_turn(log) -> str:
    llm = ScriptedLLM([[{"text": "alpha beta gamma delta", "split": 6}, {"usage": [1, 2, 3]}]])
    engine = TurnEngine(log, llm, clock=FixedClock(), ids=SequentialIds(), config=EngineConfig(flush_events=2))
    conv = await engine.create_conversation(model="m")
    async for _ in engine.run_turn(conv, TurnRequest("hi")):
        pass
    return conv


async def forged(mutate) -> InMemoryEventLog:
    log = InMemoryEventLog()
    conv = await one_turn(log)
    mutate(log._raw(conv))
    return log


def remove(events, i):
    del events[i]


def duplicate(events, i):
    events.insert(i, events[i])


def swap(events, i):
    events[i], events[i + 1] = events[i + 1], events[i]


@pytest.mark.parametrize(
    ("mutation", "index", "read", "fold"),
    [
        (
            remove,
            4,
            "version 5: the store returned version 6 where 5 was expected",
            "expected version 5 .events are missing before it.",
        ),
        (
            duplicate,
            4,
            "version 6: the store returned version 5 where 6 was expected",
            "expected version 6 .duplicated or reordered.",
        ),
        (swap, 2, "version 3: the store returned version 4 where 3 was expected", "expected version 3"),
    ],
)
async def test_replay_rejects_a_forged_log(mutation, index: int, read: str, fold: str) -> None:
    log = await forged(lambda evs: mutation(evs, index))
    # The checked read refuses it first, naming the version...
    with pytest.raises(IntegrityError, match=read):
        [rec async for rec in replay(log, "conv-1")]
    # ...and the state machine's fold would too, on its own.
    folding = ConversationFold()
    with pytest.raises(IllegalEvent, match=fold):
        async for rec in log.iter_stream("conv-1", check=False):
            folding.apply(rec)


async def test_replay_rejects_a_renumbered_log_by_state() -> None:
    """A forger who also fixes versions and hashes still cannot put an event where the machine
    forbids it: a text delta after the turn was finalized is illegal in state 'finalized'."""
    log = InMemoryEventLog()
    conv = await one_turn(log)
    events = log._raw(conv)
    delta = next(e for e in events if e.type == "text_delta")
    final = events[-1]
    log2 = InMemoryEventLog()
    replayed = [NewEvent(e.event, e.turn_id) for e in events] + [NewEvent(delta.event, final.turn_id)]
    await log2.append(conv, replayed, 0, recorded_at="2026-01-01T00:00:00Z")
    with pytest.raises(IllegalEvent, match=r"event text_delta is not legal in state 'finalized'") as err:
        [rec async for rec in replay(log2, conv)]
    assert err.value.version == len(events) + 1


async def test_verify_catches_a_changed_payload_byte(tmp_path) -> None:
    path = tmp_path / "log.db"
    async with await SqliteEventLog.open(path) as log:
        conv = await one_turn(log)
        assert (await verify(log)).ok
    with sqlite3.connect(path) as db:
        (payload,) = db.execute(
            "SELECT payload FROM turnlog_events WHERE stream_id=? AND version=5", (conv,)
        ).fetchone()
        changed = bytes(payload).replace(b"beta", b"bEta")
        assert changed != bytes(payload)
        db.execute("UPDATE turnlog_events SET payload=? WHERE stream_id=? AND version=5", (changed, conv))
    async with await SqliteEventLog.open(path) as log:
        report = await verify(log)
    assert not report.ok
    assert str(report.broken[0]) == (
        f"stream {conv!r}: first broken link at version 5: the stored bytes do not hash to the stored hash (changed)"
    )
    # The command line names the same link and exits 1, in one line, without a traceback.
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "turnlog.adapters.cli", "verify", "--db", str(path), stderr=asyncio.subprocess.PIPE
    )
    _, stderr = await proc.communicate()
    assert proc.returncode == 1
    assert stderr.decode().strip().splitlines() == [f"turnlog: verify: {report.broken[0]}"]


@pytest.mark.parametrize("kind", ["memory", "sqlite", "sqlite-two-connections"])
async def test_two_appends_with_the_same_expected_version(kind: str, tmp_path) -> None:
    if kind == "memory":
        a = b = InMemoryEventLog()
    else:
        a = await SqliteEventLog.open(tmp_path / "c.db")
        b = a if kind == "sqlite" else await SqliteEventLog.open(tmp_path / "c.db")
    try:
        await a.append("s", [NewEvent(TextDelta(1, "base"))], 0, recorded_at="t0")
        results = await asyncio.gather(
            a.append("s", [NewEvent(TextDelta(1, "A1")), NewEvent(TextDelta(1, "A2"))], 1, recorded_at="t1"),
            b.append("s", [NewEvent(TextDelta(1, "B1")), NewEvent(TextDelta(1, "B2"))], 1, recorded_at="t1"),
            return_exceptions=True,
        )
        winners = [r for r in results if isinstance(r, list)]
        losers = [r for r in results if isinstance(r, ConcurrencyError)]
        assert len(winners) == 1 and len(losers) == 1
        assert "expected version 1 but the log is at version 3" in str(losers[0])
        stored = await a.read("s")
        assert [e.event.text for e in stored] == ["base"] + [e.event.text for e in winners[0]]
        assert [e.version for e in stored] == [1, 2, 3]
    finally:
        if kind != "memory":
            await a.close()
            if b is not a:
                await b.close()


def test_events_are_immutable_and_versioned() -> None:
    ev = TextDelta(1, "x")
    with pytest.raises(AttributeError):
        ev.text = "y"  # type: ignore[misc]
    assert TextDelta.SCHEMA == 1
    assert msgspec.json.encode(ev) == b'{"type":"text_delta","iteration":1,"text":"x"}'


def test_batch_sealing_hashes_exactly_as_chain_hash_says() -> None:
    """seal() builds hash headers from per-batch pieces for speed; verify() recomputes them with
    chain_hash(). The two must agree for any ids, including ones JSON must escape."""
    from turnlog.engine import chain_hash, seal

    batch = [
        NewEvent(TextDelta(1, "x"), 'turn "1"'),
        NewEvent(TextDelta(1, 'é"\n'), 'turn "1"'),
        NewEvent(TextDelta(2, "y"), "turn-2"),
    ]
    for rec in seal(
        'conv "ü"', batch, head_version=3, head_hash="ab" * 32, first_position=9, recorded_at="2026-01-01T00:00:00Z"
    ):
        assert rec.hash == chain_hash(
            rec.prev_hash, rec.stream_id, rec.version, rec.turn_id, rec.recorded_at, rec.type, rec.schema, rec.payload
        )


async def test_request_digests_are_recomputable_from_the_log() -> None:
    """What the model saw, proven: every request is rebuilt from the log alone and hashes to the
    recorded digest, across turns (history from earlier turns' rows) and tool iterations."""
    from turnlog.adapters.llm import ScriptedLLM
    from turnlog.engine import ToolRegistry, check_requests

    tools = ToolRegistry()

    @tools.tool()
    async def ping() -> str:
        return "pong"

    llm = ScriptedLLM(
        [
            [{"reasoning": "use ping"}, {"tool": "ping"}],
            [{"text": "pong it is", "split": 3}],
            [{"text": "second turn"}],
        ]
    )
    log = InMemoryEventLog()
    engine = TurnEngine(log, llm, tools=tools, clock=FixedClock(), ids=SequentialIds())
    conv = await engine.create_conversation(system_prompt="sys", model="m")
    for text in ("first", "second"):
        async for _ in engine.run_turn(conv, TurnRequest(text, enabled_tools=["ping"])):
            pass
    checks = await check_requests(log, conv, ScriptedLLM([]))
    assert [(c.iteration, c.ok) for c in checks] == [(1, True), (2, True), (1, True)]
    # ...and the digests are of the bytes the model actually received.
    import hashlib

    assert [c.recorded_sha256 for c in checks] == [hashlib.sha256(b).hexdigest() for b in llm.bodies]

    # Changing what a tool returned (and re-sealing the chain, as a forger would) is exposed.
    forged = InMemoryEventLog()
    rewritten = []
    for rec in log._raw(conv):
        ev = rec.event
        if rec.type == "tool_result_recorded":
            ev = msgspec.structs.replace(ev, content="forged")
        rewritten.append(NewEvent(ev, rec.turn_id))
    await forged.append(conv, rewritten, 0, recorded_at="2026-01-01T00:00:00Z")
    checks = await check_requests(forged, conv, ScriptedLLM([]))
    # Every request that carried the tool result changes: its own turn's second one, and the
    # later turn's (earlier turns' tool traffic is repeated in full since issue 12).
    assert [c.ok for c in checks] == [True, False, False]
