"""Stop across processes, as users run it: two ``turnlog serve`` over one PostgreSQL (the turn runs
on server A, the cancel is POSTed to server B), and ``turnlog cancel`` against a server's SQLite
file. The server running the turn learns of the cancel from the log alone."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from turnlog.adapters.cli import main
from turnlog.adapters.llm import EchoLLM
from turnlog.adapters.stores import open_store
from turnlog.engine import CancelRequested, TurnEngine, TurnFailed, TurnRequest, replay
from turnlog.projections import project

from ..server.conftest import ServeProcess
from .conftest import SseReader

WORDS = " ".join(f"w{i}" for i in range(100))
ANN = {"authorization": "Bearer tok-ann"}


@pytest.fixture
def processes() -> Iterator[list[ServeProcess]]:
    procs: list[ServeProcess] = []
    try:
        yield procs
    finally:
        for p in procs:
            p.stop()


def tokens(tmp_path: Path) -> str:
    path = tmp_path / "tokens.json"
    path.write_text(json.dumps({"tok-ann": {"tenant": "acme", "subject": "ann", "level": 1}}))
    return str(path)


@pytest.mark.postgres
@pytest.mark.parametrize(
    "delay",
    [
        "0.02",  # streaming: server A's next commit meets the cancel
        "0.5",  # a slow model: server A's watch is woken by PostgreSQL's NOTIFY
    ],
)
async def test_a_cancel_posted_to_server_b_stops_the_turn_on_server_a(
    pg_schema_url: str, tmp_path: Path, processes: list[ServeProcess], delay: str
) -> None:
    auth = tokens(tmp_path)
    a, b = (ServeProcess(pg_schema_url, tmp_path, "--echo-delay", delay, "--tokens", auth) for _ in "ab")
    processes += [a, b]
    a.wait_ready()
    b.wait_ready()
    async with httpx.AsyncClient(timeout=30) as client, (await open_store(pg_schema_url)).log as log:
        conv = (await client.post(a.url + "/conversations", json={}, headers=ANN)).json()["id"]
        async with client.stream(
            "POST", f"{a.url}/conversations/{conv}/turns", json={"message": WORDS}, headers=ANN
        ) as turn:
            assert turn.status_code == 200
            on_a = SseReader(turn)
            await on_a.until(2)

            async def follow_on_b() -> list[bytes]:
                async with client.stream("GET", f"{b.url}/conversations/{conv}/events", headers=ANN) as r:
                    return await SseReader(r).rest()

            follower = asyncio.get_running_loop().create_task(follow_on_b())
            await asyncio.sleep(0.3)  # B's follower is live; with a slow model, A's turn is quiet
            r = await client.post(f"{b.url}/conversations/{conv}/cancel", json={"reason": "stop"}, headers=ANN)
            assert r.status_code == 200, r.text
            assert r.json()["turn_id"] == turn.headers["turnlog-turn-id"]
            frames_a = await asyncio.wait_for(on_a.rest(), 10)
        frames_b = await asyncio.wait_for(follower, 10)
        events = [rec async for rec in replay(log, conv)]
        # Both servers' clients got the final frame, each exactly the log's frames.
        assert b"event: error" in frames_a[-1] and b'"reason":"cancelled"' in frames_a[-1]
        assert frames_a == frames_b == project(events)
        cancel = events[r.json()["version"] - 1]
        assert cancel.event == CancelRequested(tenant="acme", subject="ann", reason="stop")
        failed = events[-1].event
        assert isinstance(failed, TurnFailed) and failed.reason == "cancelled"
        assert failed.message.startswith("cancelled by tenant 'acme' subject 'ann'")
        assert [e.type for e in events].count("text_delta") < 100


async def test_turnlog_cancel_stops_a_turn_a_server_runs_on_the_same_sqlite_file(
    tmp_path: Path, processes: list[ServeProcess]
) -> None:
    db = str(tmp_path / "serve.db")
    server = ServeProcess(db, tmp_path, "--echo-delay", "0.05")
    processes.append(server)
    server.wait_ready()
    async with httpx.AsyncClient(timeout=30) as client:
        conv = (await client.post(server.url + "/conversations", json={})).json()["id"]
        async with client.stream("POST", f"{server.url}/conversations/{conv}/turns", json={"message": WORDS}) as turn:
            reader = SseReader(turn)
            await reader.until(2)
            cmd = [sys.executable, "-m", "turnlog.adapters.cli", "cancel", conv, "--db", db]
            cmd += ["--reason", "from the shell", "--tenant", "ops", "--subject", "oncall"]
            proc = await asyncio.create_subprocess_exec(*cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            out, err = await proc.communicate()
            assert proc.returncode == 0, err
            frames = await asyncio.wait_for(reader.rest(), 10)
        turn_id = turn.headers["turnlog-turn-id"]
        assert out.decode().startswith(f"cancel requested for turn {turn_id} of {conv} (version ")
        assert b'"reason":"cancelled"' in frames[-1]
    async with (await open_store(db)).log as log:
        events = [rec async for rec in replay(log, conv)]
    assert frames == project(events)
    (cancel,) = [e.event for e in events if e.type == "cancel_requested"]
    assert cancel == CancelRequested(tenant="ops", subject="oncall", reason="from the shell")


def test_turnlog_cancel_refuses_what_it_cannot_stop(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = str(tmp_path / "t.db")

    async def setup() -> tuple[str, str]:
        async with (await open_store(db)).log as log:
            engine = TurnEngine(log, EchoLLM())
            idle = await engine.create_conversation(model="echo")
            orphaned = await engine.create_conversation(model="echo")
            turn = engine.run_turn(orphaned, TurnRequest("hi"))
            await anext(turn)  # started, then its process "dies": the turn stays live in the log
            return idle, orphaned

    idle, orphaned = asyncio.run(setup())
    assert main(["cancel", idle, "--db", db]) == 1
    err = capsys.readouterr().err
    assert err == f"turnlog: error: conversation {idle!r} has no running turn to cancel: it has no turn yet\n"
    assert main(["cancel", "nope", "--db", db]) == 1
    assert capsys.readouterr().err == f"turnlog: error: unknown conversation 'nope' in {db}\n"
    # A turn nobody runs any more: the cancel is recorded (the log says it is live), and
    # recovery ends it, as interrupted.
    assert main(["cancel", orphaned, "--db", db, "--subject", "oncall"]) == 0
    assert "cancel requested for turn " in capsys.readouterr().out
    assert main(["recover", "--db", db]) == 0
    assert "1 interrupted turn(s) ended" in capsys.readouterr().out
    assert main(["cancel", orphaned, "--db", db]) == 1
    assert "has already ended" in capsys.readouterr().err
