"""`turnlog serve` as users run it: separate processes, several servers over one PostgreSQL,
and a server killed mid-turn."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from turnlog.adapters.stores import open_store
from turnlog.engine import TurnFailed, TurnFinalized, replay
from turnlog.projections import project

from .conftest import ServeProcess, frames_of, ids_of

WORDS = " ".join(f"w{i}" for i in range(100))


async def read_frames_then_drop(client: httpx.AsyncClient, url: str, body: dict[str, Any], n: int) -> list[bytes]:
    """Start a turn and drop the connection after n whole frames; returns the whole frames seen."""
    got = b""
    async with client.stream("POST", url, json=body) as r:
        assert r.status_code == 200, await r.aread()
        async for chunk in r.aiter_raw():
            got += chunk
            if len(frames_of(got)) >= n:
                break
    return frames_of(got)


@pytest.mark.postgres
async def test_resume_on_another_server_equals_a_full_replay(
    pg_schema_url: str, serve_processes: list, tmp_path: Path
) -> None:
    a, b = (ServeProcess(pg_schema_url, tmp_path, "--echo-delay", "0.02") for _ in "ab")
    serve_processes += [a, b]
    a.wait_ready()
    b.wait_ready()
    async with httpx.AsyncClient(timeout=30) as client, (await open_store(pg_schema_url)).log as log:
        conv = (await client.post(a.url + "/conversations", json={})).json()["id"]
        kept = await read_frames_then_drop(client, f"{a.url}/conversations/{conv}/turns", {"message": WORDS}, 5)
        last_id = ids_of(kept)[-1]
        # The turn is still running on server A while the browser resumes on server B.
        assert not isinstance((await log.last(conv)).event, (TurnFinalized, TurnFailed))
        r = await client.get(f"{b.url}/conversations/{conv}/events", headers={"last-event-id": str(last_id)})
        rest = frames_of(r.content)
        assembled = kept + rest
        ids = ids_of(assembled)
        assert ids == sorted(set(ids)), "no frame twice, in order"
        full = (await client.get(f"{b.url}/conversations/{conv}/events")).content
        assert assembled == frames_of(full)
        assert assembled == project([rec async for rec in replay(log, conv)])
        assert b"event: done" in assembled[-1]
        # The rows, written by server A, are served by server B.
        rows = (await client.get(f"{b.url}/conversations/{conv}/messages")).json()["messages"]
        assert rows[-1]["content"]["text"] == WORDS and rows[-1]["status"] == "finalized"


@pytest.mark.postgres
async def test_fifty_clients_across_two_servers_one_turn_runs(
    pg_schema_url: str, serve_processes: list, tmp_path: Path
) -> None:
    a, b = (ServeProcess(pg_schema_url, tmp_path, "--echo-delay", "0.03") for _ in "ab")
    serve_processes += [a, b]
    a.wait_ready()
    b.wait_ready()
    limits = httpx.Limits(max_connections=60)
    async with (
        httpx.AsyncClient(timeout=60, limits=limits) as client,
        (await open_store(pg_schema_url)).log as log,
    ):
        conv = (await client.post(a.url + "/conversations", json={})).json()["id"]
        await client.get(b.url + f"/conversations/{conv}/events")  # both servers know it
        refused_at: list[float] = []
        winner_done_at: list[float] = []

        async def attempt(n: int) -> tuple[int, bytes]:
            base = (a, b)[n % 2].url
            async with client.stream("POST", f"{base}/conversations/{conv}/turns", json={"message": WORDS}) as r:
                body = await r.aread()
                (refused_at if r.status_code == 409 else winner_done_at).append(time.monotonic())
                return r.status_code, body

        results = await asyncio.gather(*(attempt(n) for n in range(50)))
        assert sorted(code for code, _ in results) == [200] + [409] * 49
        # Every refusal came while the winner's turn was live (not after it ended).
        assert max(refused_at) < winner_done_at[0]
        events = [rec async for rec in replay(log, conv)]  # checked: no interleaving of two turns
        assert [rec.type for rec in events].count("turn_started") == 1
        assert isinstance(events[-1].event, TurnFinalized)
        winner = next(body for code, body in results if code == 200)
        assert frames_of(winner) == project(events)


def _kill(proc: ServeProcess) -> None:
    proc.proc.send_signal(signal.SIGKILL)
    proc.proc.wait(10)


async def test_a_turn_killed_with_its_server_ends_interrupted_when_one_starts(
    tmp_path: Path, serve_processes: list
) -> None:
    db = str(tmp_path / "serve.db")
    first = ServeProcess(db, tmp_path, "--echo-delay", "0.05")
    serve_processes.append(first)
    first.wait_ready()
    async with httpx.AsyncClient(timeout=30) as client:
        conv = (await client.post(first.url + "/conversations", json={})).json()["id"]
        kept = await read_frames_then_drop(client, f"{first.url}/conversations/{conv}/turns", {"message": WORDS}, 4)
        _kill(first)
        async with (await open_store(db)).log as log:
            assert not isinstance((await log.last(conv)).event, (TurnFinalized, TurnFailed))

        # Restarted with no grace: recovery runs before the first request is served.
        second = ServeProcess(db, tmp_path, "--recover-grace", "0")
        serve_processes.append(second)
        second.wait_ready()
        r = await client.get(
            f"{second.url}/conversations/{conv}/events", headers={"last-event-id": str(ids_of(kept)[-1])}
        )
        rest = frames_of(r.content)
        assert rest[-1].startswith(b"id: ") and b"event: error" in rest[-1] and b'"reason":"interrupted"' in rest[-1]
        full = frames_of((await client.get(f"{second.url}/conversations/{conv}/events")).content)
        assert kept + rest == full
        rows = (await client.get(f"{second.url}/conversations/{conv}/messages")).json()["messages"]
        assistant = rows[-1]
        assert assistant["status"] == "failed"
        streamed = "".join(
            json.loads(f.split(b"data: ", 1)[1])["step"]["content"] for f in full if b'"type":"text"' in f
        )
        assert assistant["content"]["text"] == streamed and streamed, "the partial output is kept"
        # A new turn can start now.
        r = await client.post(f"{second.url}/conversations/{conv}/turns", json={"message": "again"})
        assert r.status_code == 200 and b"event: done" in r.content


async def test_with_a_grace_period_the_sweep_ends_the_orphan_and_the_waiting_client(
    tmp_path: Path, serve_processes: list
) -> None:
    db = str(tmp_path / "serve.db")
    first = ServeProcess(db, tmp_path, "--echo-delay", "0.05")
    serve_processes.append(first)
    first.wait_ready()
    async with httpx.AsyncClient(timeout=30) as client:
        conv = (await client.post(first.url + "/conversations", json={})).json()["id"]
        await read_frames_then_drop(client, f"{first.url}/conversations/{conv}/turns", {"message": WORDS}, 3)
        _kill(first)
        # Another server with a grace period spares the turn at start (it might be alive
        # elsewhere), then its sweep ends it: the client following the turn is not left waiting.
        second = ServeProcess(db, tmp_path, "--recover-grace", "1")
        serve_processes.append(second)
        second.wait_ready()
        start = time.monotonic()
        r = await client.get(f"{second.url}/conversations/{conv}/events")
        assert b'"reason":"interrupted"' in frames_of(r.content)[-1]
        assert time.monotonic() - start < 10


def test_turnlog_recover_command(tmp_path: Path, serve_processes: list) -> None:
    db = str(tmp_path / "serve.db")
    first = ServeProcess(db, tmp_path, "--echo-delay", "0.05")
    serve_processes.append(first)
    first.wait_ready()
    conv = httpx.post(first.url + "/conversations", json={}).json()["id"]
    got = b""
    with httpx.stream("POST", f"{first.url}/conversations/{conv}/turns", json={"message": WORDS}) as r:
        for chunk in r.iter_raw():
            got += chunk
            if got.count(b"event: process_step") >= 2:
                break
    _kill(first)
    run = [sys.executable, "-m", "turnlog.adapters.cli", "recover", "--db", db]
    out = subprocess.run(run, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert f"recovered {conv} turn " in out.stdout and "1 interrupted turn(s) ended" in out.stdout
    again = subprocess.run(run, capture_output=True, text=True, timeout=60)
    assert "0 interrupted turn(s) ended" in again.stdout
