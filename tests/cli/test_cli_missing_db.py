"""A reading command never creates a file: a missing --db path says so (issue 13, item 6)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.parametrize(
    "command",
    [["verify"], ["replay", "conv-1"], ["rebuild"], ["recover"], ["export", "conv-1"], ["db", "current"]],
    ids=lambda c: c[0],
)
def test_a_missing_database_is_named_and_not_created(tmp_path: Path, command: list[str]) -> None:
    db = tmp_path / "missing.db"
    proc = subprocess.run(
        [sys.executable, "-m", "turnlog.adapters.cli", *command, "--db", str(db)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and f"no database at {db}" in lines[0], proc.stderr
    assert list(tmp_path.iterdir()) == []  # no file, no -wal, no -shm


def test_db_commands_take_the_synchronous_parameter(tmp_path: Path) -> None:
    db = f"{tmp_path / 'p.db'}?synchronous=FULL"
    run = [sys.executable, "-m", "turnlog.adapters.cli", "db"]
    up = subprocess.run([*run, "upgrade", "--db", db], capture_output=True, text=True, timeout=60)
    assert up.returncode == 0, up.stderr
    current = subprocess.run([*run, "current", "--db", db], capture_output=True, text=True, timeout=60)
    assert current.returncode == 0 and "(current)" in current.stdout, current.stdout + current.stderr
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".db") == ["p.db"]
