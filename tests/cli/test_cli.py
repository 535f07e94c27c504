"""The turnlog command: demo, replay in every format, verify, rebuild, and one-line errors."""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest


def turnlog(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "turnlog.adapters.cli", *args], cwd=cwd, capture_output=True, text=True, timeout=120
    )


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    cwd = tmp_path_factory.mktemp("cli")
    proc = turnlog("demo", "--db", "demo.db", cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    conv = re.search(r"^conversation (\S+) in demo\.db", proc.stdout, re.M).group(1)  # type: ignore[union-attr]
    return cwd, conv, proc.stdout


def test_demo_streams_replays_stores_and_verifies(demo: tuple[Path, str, str]) -> None:
    _, _, out = demo
    assert out.count("event: done") == 2
    assert '"type":"tool_call"' in out and '"type":"thinking"' in out
    assert "IDENTICAL to the live stream" in out
    assert "verify: ok, hash chain intact" in out
    assert len(re.findall(r"^\s+\d+ (user|assistant)\s+finalized", out, re.M)) == 4


def test_replay_sse_equals_the_live_frames(demo: tuple[Path, str, str]) -> None:
    cwd, conv, out = demo
    replayed = turnlog("replay", conv, "--db", "demo.db", cwd=cwd)
    assert replayed.returncode == 0, replayed.stderr
    live = "".join(re.findall(r"^(id: \d+\nevent: .*?\ndata: .*?\n\n)", out, re.M | re.S))
    assert replayed.stdout == live


def test_replay_after_a_version_gives_only_what_follows(demo: tuple[Path, str, str]) -> None:
    cwd, conv, _ = demo
    full = turnlog("replay", conv, "--db", "demo.db", cwd=cwd).stdout
    tail = turnlog("replay", conv, "--db", "demo.db", "--after", "30", cwd=cwd).stdout
    ids = [int(i) for i in re.findall(r"^id: (\d+)$", tail, re.M)]
    assert ids and min(ids) > 30
    assert full.endswith(tail)


def test_replay_other_formats(demo: tuple[Path, str, str]) -> None:
    cwd, conv, _ = demo
    transcript = turnlog("replay", conv, "--db", "demo.db", "--format", "transcript", cwd=cwd).stdout
    assert "tool_call call_paris get_weather" in transcript and "finalized <msg-2>" in transcript
    events = [
        json.loads(line)
        for line in turnlog("replay", conv, "--db", "demo.db", "--format", "events", cwd=cwd).stdout.splitlines()
    ]
    assert [e["version"] for e in events] == list(range(1, len(events) + 1))
    assert events[0]["event"]["type"] == "conversation_created"
    rows = [
        json.loads(line)
        for line in turnlog("replay", conv, "--db", "demo.db", "--format", "messages", cwd=cwd).stdout.splitlines()
    ]
    assert [r["role"] for r in rows] == ["user", "assistant", "user", "assistant"]


def test_rebuild_recomputes_the_same_rows(demo: tuple[Path, str, str]) -> None:
    cwd, _, _ = demo
    with sqlite3.connect(cwd / "demo.db") as db:
        before = db.execute("SELECT * FROM turnlog_messages ORDER BY conversation_id, seq").fetchall()
        db.execute("UPDATE turnlog_messages SET content = 'damaged'")
    proc = turnlog("rebuild", "--db", "demo.db", cwd=cwd)
    assert proc.returncode == 0 and "rebuilt 4 message rows" in proc.stdout
    with sqlite3.connect(cwd / "demo.db") as db:
        assert db.execute("SELECT * FROM turnlog_messages ORDER BY conversation_id, seq").fetchall() == before


def test_errors_are_one_line_without_traceback(demo: tuple[Path, str, str], tmp_path: Path) -> None:
    cwd, _, _ = demo
    proc = turnlog("replay", "no-such-conversation", "--db", "demo.db", cwd=cwd)
    assert proc.returncode == 1
    assert proc.stderr == "turnlog: error: unknown conversation 'no-such-conversation' in demo.db\n"
    (tmp_path / "garbage.db").write_bytes(b"this is not a database" * 100)
    proc = turnlog("verify", "--db", "garbage.db", cwd=tmp_path)
    assert proc.returncode != 0
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
