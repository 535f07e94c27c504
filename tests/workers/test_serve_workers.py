"""``turnlog serve --workers N``: N processes on one port over one PostgreSQL log.

A client's keep-alive connection stays with the worker that accepted it, and a turn runs in the
process that started it (its ``TurnStarted.owner`` is that process's server id): so a client that
started a turn knows which worker holds its connection, and a follower can be placed on the other.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from turnlog.adapters.stores import open_store
from turnlog.engine import TurnStarted, replay
from turnlog.projections import project


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def _serve(db: str, tmp: Path, *extra: str) -> Iterator[str]:
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    out = (tmp / "serve.log").open("wb")
    argv = [sys.executable, "-m", "turnlog.adapters.cli", "serve", "--db", db, "--port", str(port), *extra]
    proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, (tmp / "serve.log").read_text()
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    break
            assert time.monotonic() < deadline, (tmp / "serve.log").read_text()
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        out.close()


def _frames(body: bytes) -> list[bytes]:
    return [block + b"\n\n" for block in body.split(b"\n\n") if block.startswith(b"id: ")]


async def _owner(db: str, conv: str) -> str:
    log, _ = await open_store(db, create=False)
    async with log:
        owners = [r.event.owner async for r in replay(log, conv) if isinstance(r.event, TurnStarted)]
    return owners[-1]


async def _probe(url: str, db: str) -> tuple[httpx.AsyncClient, str]:
    """A client on one keep-alive connection, and the server id of the worker that holds it."""
    client = httpx.AsyncClient(base_url=url, limits=httpx.Limits(max_connections=1), timeout=30)
    conv = (await client.post("/conversations", json={})).json()["id"]
    r = await client.post(f"/conversations/{conv}/turns", json={"message": "which worker"})
    assert r.status_code == 200 and b"event: done" in r.content
    return client, await _owner(db, conv)


@pytest.mark.postgres
async def test_two_workers_serve_turns_and_a_follower_on_one_sees_a_turn_run_by_the_other(
    pg_schema_url: str, tmp_path: Path
) -> None:
    args = ("--workers", "2", "--echo-delay", "0.02", "--recover-grace", "0", "--keep-alive", "60")
    with _serve(pg_schema_url, tmp_path, *args) as url:
        clients: dict[str, httpx.AsyncClient] = {}
        try:
            # Connections opened at once spread over the workers; each keeps its worker.
            for _ in range(6):
                for client, owner in await asyncio.gather(*(_probe(url, pg_schema_url) for _ in range(6))):
                    if owner in clients:
                        await client.aclose()
                    else:
                        clients[owner] = client
                if len(clients) == 2:
                    break
            assert len(clients) == 2, "two workers each ran a turn"
            (a_id, a), (b_id, b) = clients.items()

            conv = (await a.post("/conversations", json={})).json()["id"]
            message = " ".join(f"w{i}" for i in range(40))  # 40 deltas, 20 ms apart
            seen_by_a: list[bytes] = []
            first = asyncio.Event()

            async def run_on_a() -> None:
                async with a.stream("POST", f"/conversations/{conv}/turns", json={"message": message}) as r:
                    assert r.status_code == 200
                    async for chunk in r.aiter_raw():
                        seen_by_a.append(chunk)
                        if b"id: " in chunk:
                            first.set()

            running = asyncio.ensure_future(run_on_a())
            await first.wait()
            followed = b""
            live_from = None
            async with b.stream("GET", f"/conversations/{conv}/events") as r:
                assert r.status_code == 200
                async for chunk in r.aiter_raw():
                    if live_from is None:
                        # What a had received when b's follower began: b must get more than that.
                        live_from = len(_frames(b"".join(seen_by_a)))
                    followed += chunk
            await running

            assert await _owner(pg_schema_url, conv) == a_id != b_id
            log, _ = await open_store(pg_schema_url, create=False)
            async with log:
                expected = project([rec async for rec in replay(log, conv)])
            # b, on the other worker, followed the turn live to its end: every frame, exactly the replay's.
            assert _frames(followed) == expected
            on_a = _frames(b"".join(seen_by_a))
            assert on_a and on_a == expected[-len(on_a) :]  # a's stream: the turn's frames
            assert live_from is not None and live_from < len(expected) - 1
        finally:
            for client in clients.values():
                await client.aclose()


async def test_workers_over_sqlite_are_refused_with_the_reason(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "turnlog.adapters.cli", "serve", "--db", str(tmp_path / "t.db"), "--workers", "2"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 1
    assert "--workers 2 needs a PostgreSQL log" in out.stderr
