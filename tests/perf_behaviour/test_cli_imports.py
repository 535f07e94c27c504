"""The command line loads the model adapters (httpx and what it pulls in) only in the commands
that call a model: a reading command (replay, verify, export, rebuild) starts ~7 MB smaller,
which its peak memory on a large conversation is measured against (bench/memory_profile.py)."""

from __future__ import annotations

import subprocess
import sys

PROBE = """
import sys
from turnlog.adapters.cli._main import build_parser
build_parser()
print(",".join(m for m in ("httpx", "httpx_sse", "turnlog.adapters.llm") if m in sys.modules))
"""


def test_building_the_command_line_loads_no_model_adapter() -> None:
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ""


def test_a_command_that_calls_a_model_still_finds_its_adapter() -> None:
    probe = PROBE.replace(
        "build_parser()",
        "from turnlog.adapters.cli._common import provider_config\nprovider_config({'OPENAI_BASE_URL': 'http://127.0.0.1:9'})",
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "turnlog.adapters.llm" in done.stdout
