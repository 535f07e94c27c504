"""The three folders install as turnlog.engine / .projections / .adapters, and nothing else: a
top-level `engine` or `adapters` module would collide with users' own packages."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str, cwd: Path) -> tuple[int, str]:
    proc = subprocess.run(args, cwd=cwd, capture_output=True, text=True)
    return proc.returncode, proc.stdout + proc.stderr


def test_installed_package_has_no_generic_top_level_modules(tmp_path: Path) -> None:
    code = (
        "import importlib.util, turnlog.engine, turnlog.projections, turnlog.adapters\n"
        "print([m for m in ('engine', 'adapters', 'projections') if importlib.util.find_spec(m)])"
    )
    rc, out = run(sys.executable, "-c", code, cwd=tmp_path)
    assert rc == 0, out
    assert out.strip() == "[]"


def test_wheel_contains_only_the_turnlog_package(tmp_path: Path) -> None:
    rc, out = run(
        sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(tmp_path), str(ROOT), cwd=tmp_path
    )
    assert rc == 0, out
    (wheel,) = tmp_path.glob("turnlog-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names if not n.startswith("turnlog-")}
    assert top == {"turnlog"}
    for module in (
        "engine/_runner.py",
        "projections/_sse.py",
        "adapters/cli/__init__.py",
        "adapters/stores/migrations/versions/0001_initial.py",
        "projections/pytest_plugin.py",
        "engine/testing/__init__.py",
        # The web console's files: `turnlog serve` answers / with them.
        "adapters/server/console/index.html",
        "adapters/server/console/app.js",
        "adapters/server/console/style.css",
        "adapters/server/console/icon.svg",
    ):
        assert f"turnlog/{module}" in names
    entry_points = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "turnlog = turnlog.adapters.cli:main" in entry_points
    assert "turnlog = turnlog.projections.pytest_plugin" in entry_points
