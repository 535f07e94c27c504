"""Every mutation of a real log is detected by ``verify_log`` (hypothesis for the byte flips).

A SQLite log with two conversations, tools and a failed turn, and a signed checkpoint of its head.
Each mutation is made with SQL behind the log's back on a copy of the file: a byte flipped at a
sampled offset of any column of any event, every single drop, every swap of neighbours, every
event replaced by a duplicate of the one before it, every truncation of the log's tail. All of
them must make ``verify_log`` report a problem; the untouched copy must verify."""

from __future__ import annotations

import asyncio
import itertools
import shutil
import sqlite3
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from turnlog.adapters.llm import ScriptedLLM
from turnlog.adapters.signing import Ed25519Signer
from turnlog.adapters.stores import SqliteEventLog, open_store
from turnlog.engine import ToolRegistry, TurnEngine, TurnRequest, create_checkpoint, verify_log

COLUMNS = ("stream_id", "turn_id", "recorded_at", "type", "prev_hash", "hash", "payload")
SIGNER = Ed25519Signer.generate()


async def _build(path: Path) -> None:
    tools = ToolRegistry()

    @tools.tool(parameters={"type": "object", "properties": {"q": {"type": "string"}}})
    async def lookup(q: str) -> str:
        return q.upper()

    script = [
        [{"reasoning": "think", "split": 2}, {"tool": "lookup", "arguments": {"q": "a"}}],
        [{"text": "found A", "split": 3}, {"usage": [3, 2, 5]}],
        [{"text": "partial", "split": 2}, {"error": "provider went away"}],
        [{"text": "second conversation", "split": 4}],
    ]
    async with await open_store(path) as (log, messages):
        engine = TurnEngine(log, ScriptedLLM(script), tools=tools, messages=messages)
        one = await engine.create_conversation(model="m", tenant="t", subject="s")
        async for _ in engine.run_turn(one, TurnRequest("find a", enabled_tools=["lookup"])):
            pass
        async for _ in engine.run_turn(one, TurnRequest("again")):
            pass
        two = await engine.create_conversation(model="m")
        async for _ in engine.run_turn(two, TurnRequest("hi")):
            pass
        await create_checkpoint(log, SIGNER)


@pytest.fixture(scope="module")
def original(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("mutations") / "log.db"
    asyncio.run(_build(path))
    with sqlite3.connect(path) as db:  # fold the WAL into the file: one file to copy
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return path


def rows(path: Path) -> list[tuple]:
    with sqlite3.connect(path) as db:
        return db.execute(
            f"SELECT position, version, {', '.join(COLUMNS)}, schema FROM turnlog_events ORDER BY position"
        ).fetchall()


def problems(path: Path) -> list[str]:
    async def run() -> list[str]:
        async with await SqliteEventLog.open(path, create=False) as log:
            report = await verify_log(log, keys=[SIGNER.verifier])
        return [p.why for p in report.problems]

    return asyncio.run(run())


def mutated(original: Path, tmp_path: Path, *statements: tuple[str, tuple]) -> Path:
    copy = tmp_path / f"m{len(list(tmp_path.iterdir()))}.db"
    shutil.copyfile(original, copy)
    with sqlite3.connect(copy) as db:
        for sql, args in statements:
            db.execute(sql, args)
    return copy


def test_the_untouched_log_verifies(original: Path) -> None:
    assert problems(original) == []
    assert len(rows(original)) > 30


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_a_flipped_byte_anywhere_is_detected(original: Path, tmp_path: Path, data: st.DataObject) -> None:
    table = rows(original)
    row = data.draw(st.sampled_from(table))
    position = row[0]
    column = data.draw(st.sampled_from([c for c in COLUMNS if row[2 + COLUMNS.index(c)]]))
    value = row[2 + COLUMNS.index(column)]
    raw = bytes(value) if isinstance(value, bytes) else value.encode()
    offset = data.draw(st.integers(0, len(raw) - 1))
    flipped = raw[:offset] + bytes([raw[offset] ^ data.draw(st.sampled_from([0x01, 0x20, 0x80]))]) + raw[offset + 1 :]
    new: bytes | str = flipped if isinstance(value, bytes) else flipped.decode("latin-1")
    copy = mutated(original, tmp_path, (f"UPDATE turnlog_events SET {column} = ? WHERE position = ?", (new, position)))
    assert problems(copy), f"a flip at byte {offset} of {column} of position {position} went unseen"


def test_every_drop_swap_duplicate_and_truncation_is_detected(original: Path, tmp_path: Path) -> None:
    table = rows(original)
    n = len(table)
    content = ("turn_id", "recorded_at", "type", "prev_hash", "hash", "payload", "schema")
    sets = ", ".join(f"{c} = ?" for c in content)
    unseen = []

    def values(r: tuple) -> tuple:
        return (r[3], r[4], r[5], r[6], r[7], r[8], r[9])

    cases: list[tuple[str, tuple[tuple[str, tuple], ...]]] = []
    for p in range(1, n + 1):
        cases.append((f"drop {p}", (("DELETE FROM turnlog_events WHERE position = ?", (p,)),)))
        cases.append((f"truncate after {p - 1}", (("DELETE FROM turnlog_events WHERE position >= ?", (p,)),)))
    for a, b in itertools.pairwise(table):
        # Swap what two neighbouring rows hold (their places in the log stay).
        cases.append(
            (
                f"swap {a[0]} and {b[0]}",
                (
                    (f"UPDATE turnlog_events SET {sets} WHERE position = ?", (*values(b), a[0])),
                    (f"UPDATE turnlog_events SET {sets} WHERE position = ?", (*values(a), b[0])),
                ),
            )
        )
        # The next event replaced by a copy of this one.
        cases.append(
            (
                f"duplicate {a[0]} over {b[0]}",
                ((f"UPDATE turnlog_events SET {sets} WHERE position = ?", (*values(a), b[0])),),
            )
        )
    for name, statements in cases:
        if not problems(mutated(original, tmp_path, *statements)):
            unseen.append(name)
    assert unseen == []
    assert len(cases) > 4 * (n - 1)
