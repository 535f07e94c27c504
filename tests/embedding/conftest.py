"""Embedding tests run a host application on real uvicorn on 127.0.0.1 (in this process, or a
process of its own that a test can kill) and use httpx as the browser."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import uvicorn

HOST_APP = Path(__file__).with_name("host_app.py")


@contextlib.asynccontextmanager
async def serving(app: Any, *, graceful: float = 2.0) -> AsyncIterator[str]:
    """uvicorn serving ``app`` (lifespan on) on a free 127.0.0.1 port; yields the base URL. Leaving
    the block shuts uvicorn down as a signal would (connections, then the lifespan's shutdown)."""
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=0,
        log_level="warning",
        lifespan="on",
        ws="none",
        timeout_graceful_shutdown=graceful,
    )
    server = uvicorn.Server(config)
    task = asyncio.get_running_loop().create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
            raise RuntimeError("uvicorn did not start")
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"host app exited {self.proc.returncode}: {self.log_path.read_text()}")
            try:
                if httpx.get(self.url + "/chat/health", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"host app not ready after {timeout} s: {self.log_path.read_text()}")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(15)
        self._out.close()
