"""Recovery by owner with `turnlog serve` as users run it (issue 13, item 10): one server killed
mid-turn and started again, with the default grace, ends the turn before it serves, so the
conversation takes a new turn at once; with two servers over PostgreSQL, a quiet turn on the other,
running server is never swept, and is ended promptly once that server is killed."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from turnlog.adapters.stores import PostgresEventLog
from turnlog.engine import TurnFailed, TurnFinalized, TurnStarted, replay

from ..server.conftest import ServeProcess, frames_of

WORDS = " ".join(f"w{i}" for i in range(100))


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[list[ServeProcess]]:
    procs: list[ServeProcess] = []
    try:
        yield procs
    finally:
        for p in procs:
            p.stop()


def start(servers: list[ServeProcess], db: str, tmp_path: Path, *extra: str) -> ServeProcess:
    proc = ServeProcess(db, tmp_path, *extra)
    servers.append(proc)
    proc.wait_ready()
    return proc


def kill(proc: ServeProcess) -> None:
    proc.proc.send_signal(signal.SIGKILL)
    proc.proc.wait(10)


async def frames_then_drop(client: httpx.AsyncClient, url: str, message: str, n: int) -> list[bytes]:
    got = b""
    async with client.stream("POST", url, json={"message": message}) as r:
        assert r.status_code == 200, await r.aread()
        async for chunk in r.aiter_raw():
            got += chunk
            if len(frames_of(got)) >= n:
                break
    return frames_of(got)


@pytest.mark.parametrize("db", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def test_a_server_killed_mid_turn_and_restarted_takes_a_new_turn_at_once(
    db: str, tmp_path: Path, servers: list[ServeProcess], request: pytest.FixtureRequest
) -> None:
    url = str(tmp_path / "serve.db") if db == "sqlite" else request.getfixturevalue("pg_schema_url")
    first = start(servers, url, tmp_path, "--echo-delay", "0.05")
    async with httpx.AsyncClient(timeout=30) as client:
        conv = (await client.post(first.url + "/conversations", json={})).json()["id"]
        await frames_then_drop(client, f"{first.url}/conversations/{conv}/turns", WORDS, 3)
        kill(first)
        # Started again as it was (the default --recover-grace, 60 s): the dead server's turn is
        # ended before the first request is served, not after a minute.
        second = start(servers, url, tmp_path, "--echo-delay", "0.05")
        began = time.monotonic()
        r = await client.post(f"{second.url}/conversations/{conv}/turns", json={"message": "again"})
        assert r.status_code == 200, r.text
        assert b"event: done" in r.content and time.monotonic() - began < 10
        events = frames_of((await client.get(f"{second.url}/conversations/{conv}/events")).content)
        interrupted = [f for f in events if b"event: error" in f]
        assert len(interrupted) == 1 and b'"reason":"interrupted"' in interrupted[0]


@pytest.mark.postgres
async def test_a_quiet_turn_on_a_running_server_is_not_swept_by_another(
    pg_schema_url: str, tmp_path: Path, servers: list[ServeProcess]
) -> None:
    # Server A's model waits 2.5 s before each word; server B sweeps every 0.5 s for turns quiet
    # longer than 1 s. By the grace alone, B would end A's turn at its first silence.
    a = start(servers, pg_schema_url, tmp_path, "--echo-delay", "2.5")
    b = start(servers, pg_schema_url, tmp_path, "--recover-grace", "1")
    async with httpx.AsyncClient(timeout=60) as client, await PostgresEventLog.open(pg_schema_url) as log:
        conv = (await client.post(a.url + "/conversations", json={})).json()["id"]
        r = await client.post(f"{a.url}/conversations/{conv}/turns", json={"message": "slow answer"})
        assert b"event: done" in frames_of(r.content)[-1], r.content
        events = [rec async for rec in replay(log, conv)]
        assert isinstance(events[-1].event, TurnFinalized) and not any(isinstance(e.event, TurnFailed) for e in events)
        owner = next(e.event.owner for e in events if isinstance(e.event, TurnStarted))
        assert owner, "the turn names the server that ran it"

        # Once A is killed, B ends its orphan at the next sweep after the grace.
        await frames_then_drop(client, f"{a.url}/conversations/{conv}/turns", "w1 w2 w3 w4", 1)
        kill(a)
        began = time.monotonic()
        r = await client.get(f"{b.url}/conversations/{conv}/events", headers={"last-event-id": "1"})
        assert b'"reason":"interrupted"' in frames_of(r.content)[-1]
        assert time.monotonic() - began < 10
