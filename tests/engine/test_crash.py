"""After a kill at any instant the log is a valid prefix, and recover ends the dead turn."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from turnlog.adapters.stores import SqliteEventLog, SqlMessageStore
from turnlog.engine import TurnFailed, recover, replay, verify
from turnlog.projections import fold_rows

CHILD = r"""
import asyncio, sys
from turnlog.adapters.llm import ScriptedLLM
from turnlog.adapters.stores import SqliteEventLog, SqlMessageStore
from turnlog.engine import EngineConfig, ToolRegistry, TurnEngine, TurnRequest

async def main(path):
    tools = ToolRegistry()

    @tools.tool()
    async def lookup() -> str:
        await asyncio.sleep(0.05)
        return "found"

    script = [
        [{"reasoning": "thinking hard " * 20, "split": 7}, {"tool": "lookup"}],
        [{"sleep": 0.001}, {"text": "part " * 400, "split": 5}, {"sleep": 5}],
    ]
    async with await SqliteEventLog.open(path) as log:
        engine = TurnEngine(log, ScriptedLLM(script), tools=tools, messages=SqlMessageStore(log.writer),
                            config=EngineConfig(flush_events=8, flush_ms=1.0))
        conv = await engine.create_conversation(conversation_id="conv-crash", model="m")
        async for _ in engine.run_turn(conv, TurnRequest("go", enabled_tools=["lookup"])):
            pass

asyncio.run(main(sys.argv[1]))
"""


def count_events(path: Path) -> int:
    try:
        with sqlite3.connect(path, timeout=5) as db:
            return db.execute("SELECT count(*) FROM turnlog_events").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


@pytest.mark.parametrize("kill_after", [3, 12, 40, 200])
async def test_kill_leaves_a_valid_prefix_and_recover_ends_the_turn(tmp_path: Path, kill_after: int) -> None:
    path = tmp_path / "crash.db"
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(path)])
    try:
        deadline = time.monotonic() + 60
        while count_events(path) < kill_after:
            assert proc.poll() is None, "the child ended before it could be killed"
            assert time.monotonic() < deadline, "the child never wrote enough events"
            await asyncio.sleep(0.002)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()

    async with await SqliteEventLog.open(path) as log:
        before = [rec async for rec in replay(log, "conv-crash")]  # a valid prefix: replays cleanly
        assert len(before) >= kill_after
        assert (await verify(log)).ok
        messages = SqlMessageStore(log.writer)
        recovered = await recover(log, messages=messages)
        assert [r.stream_id for r in recovered] == ["conv-crash"]
        after = [rec async for rec in replay(log, "conv-crash")]
        assert after[: len(before)] == before  # every committed event is still there
        failed = after[-1].event
        assert isinstance(failed, TurnFailed) and failed.reason == "interrupted"
        rows = await messages.rows("conv-crash")
        assert rows == fold_rows("conv-crash", after)
        assert rows[-1].status == "failed"
        text = "".join(r.event.text for r in after if r.type == "text_delta")
        assert json.loads(rows[-1].content)["text"] == text  # partial output kept
        assert await recover(log, messages=messages) == []  # nothing left to recover
