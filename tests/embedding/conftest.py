"""Embedding tests run a host application on real uvicorn on 127.0.0.1 (in this process, or a
process of its own that a test can kill) and use httpx as the browser."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from ..server.conftest import free_port, serving_app, wait_healthy

HOST_APP = Path(__file__).with_name("host_app.py")


@contextlib.asynccontextmanager
async def serving(app: Any, *, graceful: float = 2.0) -> AsyncIterator[str]:
    """uvicorn serving ``app`` (lifespan on) on a free 127.0.0.1 port; yields the base URL. Leaving
    the block shuts uvicorn down as a signal would (connections, then the lifespan's shutdown)."""
    async with serving_app(app, graceful=graceful) as port:
        yield f"http://127.0.0.1:{port}"


class HostProcess:
    """``host_app.py`` in a process of its own: the FastAPI host with turnlog under /chat."""

    def __init__(self, db: Path, tmp: Path, delay: float = 0.0) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = tmp / f"host-{self.port}.log"
        self._out = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, str(HOST_APP), str(db), str(self.port), str(delay)],
            stdout=self._out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )

    def wait_ready(self, timeout: float = 30.0) -> None:
        wait_healthy(self.proc, self.url + "/chat/health", self.log_path, "host app", timeout)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(15)
        self._out.close()
