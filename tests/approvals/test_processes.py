"""Approvals and resume as users run them: a turn parks on one ``turnlog serve`` and is approved
on a second one over the same PostgreSQL; ``turnlog approve`` / ``deny`` and ``turnlog recover
--resume`` on a SQLite file; a server started with ``resume_interrupted`` takes up a dead server's
turn."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest
from turnlog.adapters.cli import main
from turnlog.adapters.llm import EchoLLM
from turnlog.adapters.server import ServerConfig, TurnService
from turnlog.adapters.stores import open_store
from turnlog.engine import TurnEngine, TurnFailed, TurnFinalized, TurnRequest, TurnResumed, replay
from turnlog.projections import project

from ..controls.test_cancel_processes import processes, tokens  # noqa: F401 (the fixture)
from ..server.conftest import ServeProcess, frames_of, serving

ANN = {"authorization": "Bearer tok-ann"}
CALL = '/call get_weather {"city": "Paris"}'


@pytest.mark.postgres
async def test_a_turn_parked_on_server_a_is_approved_on_server_b(
    pg_schema_url: str,
    tmp_path: Path,
    processes: list[ServeProcess],  # noqa: F811
) -> None:
    auth = tokens(tmp_path)
    a, b = (
        ServeProcess(pg_schema_url, tmp_path, "--tokens", auth, "--approval-tool", "get_weather", "--server-id", name)
        for name in ("server-a", "server-b")
    )
    processes += [a, b]
    a.wait_ready()
    b.wait_ready()
    log, _ = await open_store(pg_schema_url)  # as the servers open it (a store may encrypt fields)
    async with httpx.AsyncClient(timeout=30) as client, log:
        conv = (await client.post(a.url + "/conversations", json={}, headers=ANN)).json()["id"]
        r = await client.post(f"{a.url}/conversations/{conv}/turns", json={"message": CALL}, headers=ANN)
        parked = frames_of(r.content)
        assert b"event: approval_required" in parked[-1]
        await asyncio.sleep(0.5)  # server A holds nothing of the turn: the log is the turn
        r = await client.post(
            f"{b.url}/conversations/{conv}/approvals",
            json={"call_id": "call_1", "decision": "approve", "reason": "fine"},
            headers=ANN,
        )
        assert r.status_code == 200, r.text
        rest = frames_of(r.content)
        assert b"event: done" in rest[-1]
        events = [rec async for rec in replay(log, conv)]
        assert parked + rest == project(events)
        resumed = next(e.event for e in events if e.type == "turn_resumed")
        assert resumed == TurnResumed("approval", "server-b", "acme", "ann")
        result = next(e.event for e in events if e.type == "tool_result_recorded")
        assert result.success and "Paris" in result.content  # it ran on server B
        # Server A sees the same log.
        assert (
            frames_of((await client.get(f"{a.url}/conversations/{conv}/events", headers=ANN)).content) == parked + rest
        )


def _parked(db: str) -> str:
    async def setup() -> str:
        from turnlog.adapters.cli._demo import demo_tools

        log, messages = await open_store(db)
        async with log:
            gate = lambda started, name, arguments: name == "get_weather"  # noqa: E731
            engine = TurnEngine(log, EchoLLM(), tools=demo_tools(), messages=messages, approval=gate)
            conv = await engine.create_conversation(model="echo")
            [rec async for rec in engine.run_turn(conv, TurnRequest(CALL, enabled_tools=["get_weather"]))]
            return conv

    return asyncio.run(setup())


def test_turnlog_approve_and_deny_continue_the_turn(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = str(tmp_path / "t.db")
    conv = _parked(db)
    with pytest.raises(SystemExit) as usage:  # argparse: a denial needs its reason
        main(["deny", conv, "call_1", "--db", db])
    assert usage.value.code == 2 and "--reason" in capsys.readouterr().err
    assert main(["approve", conv, "nope", "--db", db]) == 1
    assert "no tool call 'nope' awaits approval" in capsys.readouterr().err
    args = ["--db", db, "--tools", "demo", "--approval-tool", "get_weather", "--subject", "oncall"]
    assert main(["approve", conv, "call_1", *args]) == 0
    out = capsys.readouterr().out
    assert out.startswith("id: ") and "event: approval_decided" in out and "event: done" in out
    other = _parked(db)
    assert main(["deny", other, "call_1", "--reason", "not now", *args]) == 0
    assert '"success":false' in capsys.readouterr().out

    async def check() -> None:
        log, _ = await open_store(db)
        async with log:
            for c in (conv, other):
                events = [rec async for rec in replay(log, c)]
                assert isinstance(events[-1].event, TurnFinalized)
                decided = next(e.event for e in events if e.type == "approval_decided")
                assert decided.subject == "oncall"

    asyncio.run(check())


def _interrupted(db: str) -> str:
    async def setup() -> str:
        log, messages = await open_store(db)
        async with log:
            engine = TurnEngine(log, EchoLLM(), messages=messages)
            conv = await engine.create_conversation(model="echo")
            turn = engine.run_turn(conv, TurnRequest("hello there"))
            await anext(turn)  # started, then its process "dies": the turn stays live in the log
            return conv

    return asyncio.run(setup())


def test_turnlog_recover_resume_finishes_an_interrupted_turn(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = str(tmp_path / "t.db")
    conv = _interrupted(db)
    parked = _parked(db)  # a parked turn is not interrupted: left alone
    assert main(["recover", "--db", db, "--resume"]) == 0
    out = capsys.readouterr().out
    assert f"resumed {conv} turn " in out and "now turn_finalized" in out and "1 interrupted turn(s) resumed" in out

    async def check() -> None:
        log, _ = await open_store(db)
        async with log:
            events = [rec async for rec in replay(log, conv)]
            assert [e.type for e in events][2] == "turn_resumed"
            assert isinstance(events[-1].event, TurnFinalized)
            assert (await log.last(parked)).type == "approval_requested"

    asyncio.run(check())


async def test_a_server_with_resume_interrupted_takes_up_a_dead_servers_turn(tmp_path: Path) -> None:
    db = str(tmp_path / "t.db")
    log, messages = await open_store(db)
    async with log:
        engine = TurnEngine(log, EchoLLM(), messages=messages)
        conv = await engine.create_conversation(model="echo")
        turn = engine.run_turn(conv, TurnRequest("hello there", owner="dead-server"))
        await anext(turn)  # its server dies: nobody holds "dead-server"
        service = TurnService(log, messages, EchoLLM(), config=ServerConfig(resume_interrupted=True))
        async with serving(service) as url, httpx.AsyncClient(base_url=url, timeout=30) as client:
            for _ in range(100):
                if (await log.last(conv)).type == "turn_finalized":
                    break
                await asyncio.sleep(0.05)
            events = [rec async for rec in replay(log, conv)]
            assert events[2].event == TurnResumed("recovery", service.server_id)
            assert isinstance(events[-1].event, TurnFinalized)
            rows = (await client.get(f"/conversations/{conv}/messages")).json()["messages"]
            assert [r["status"] for r in rows] == ["finalized", "finalized"]
            assert json.loads(json.dumps(rows[-1]["content"]))["text"] == "hello there"
        await turn.aclose()
    assert not isinstance(events[-1].event, TurnFailed)
