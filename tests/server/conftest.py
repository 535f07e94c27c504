"""Server tests run the real thing: uvicorn on 127.0.0.1 (in this process, or `turnlog serve`
subprocesses for the several-servers tests) and httpx as the browser."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from turnlog.adapters.server import TurnService, create_app

FRAME_ID = re.compile(rb"^id: (\d+)$", re.M)


@contextlib.asynccontextmanager
async def serving(service: TurnService) -> AsyncIterator[str]:
    """uvicorn serving the service on a free 127.0.0.1 port; yields the base URL."""
    async with serving_app(create_app(service)) as port:
        yield f"http://127.0.0.1:{port}"


@contextlib.asynccontextmanager
async def serving_app(app: Any, *, graceful: float = 2.0) -> AsyncIterator[int]:
    """uvicorn serving an ASGI app (with its lifespan) on a free 127.0.0.1 port; yields the port.
    Leaving the block shuts uvicorn down as a signal would (connections, then the lifespan's
    shutdown, ``graceful`` seconds for the connections)."""
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
    try:
        yield server.servers[0].sockets[0].getsockname()[1]
    finally:
        server.should_exit = True
        await task


def frames_of(body: bytes) -> list[bytes]:
    """The event frames of an SSE body (comments and the retry hint dropped), each with its
    blank-line terminator, exactly as sent."""
    out = []
    for block in body.split(b"\n\n"):
        if block.startswith(b"id: "):
            out.append(block + b"\n\n")
    return out


def ids_of(frames: list[bytes]) -> list[int]:
    return [int(FRAME_ID.search(f).group(1)) for f in frames]  # type: ignore[union-attr]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(proc: subprocess.Popen[bytes], health: str, log_path: Path, what: str, timeout: float) -> None:
    """Until ``health`` answers 200; the process's log in the error if it exits or never does."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited {proc.returncode}: {log_path.read_text()}")
        try:
            if httpx.get(health, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{what} not ready after {timeout} s: {log_path.read_text()}")


class ServeProcess:
    """One `turnlog serve` process."""

    def __init__(self, db: str, tmp: Path, *extra: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = tmp / f"serve-{self.port}.log"
        self._out = self.log_path.open("wb")
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "turnlog.adapters.cli", "serve", "--db", db, "--port", str(self.port), *extra],
            stdout=self._out,
            stderr=subprocess.STDOUT,
            env=env,
        )

    def wait_ready(self, timeout: float = 30.0) -> None:
        wait_healthy(self.proc, self.url + "/health", self.log_path, "turnlog serve", timeout)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._out.close()


@pytest.fixture
def serve_processes(tmp_path: Path) -> Iterator[list[ServeProcess]]:
    """Start processes with ``procs.append(ServeProcess(...))``; all are stopped afterwards."""
    procs: list[ServeProcess] = []
    try:
        yield procs
    finally:
        for p in procs:
            p.stop()
