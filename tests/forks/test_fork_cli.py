"""``turnlog fork`` on a SQLite file, as users run it: prints the fork's id; a turn of the fork
repeats the parent's history; a version inside a turn exits 1 with one line, nothing written."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from turnlog.adapters.cli import main
from turnlog.adapters.llm import EchoLLM
from turnlog.adapters.stores import open_store
from turnlog.engine import ConversationCreated, ForkPoint, TurnEngine, TurnRequest, verify


async def echo_parent(engine: TurnEngine) -> tuple[str, int]:
    """A conversation with one turn ("one"); returns it and the version that ends that turn."""
    conv = await engine.create_conversation(system_prompt="Be brief.", model="echo")
    [r async for r in engine.run_turn(conv, TurnRequest("one"))]
    return conv, (await engine.log.last(conv)).version  # type: ignore[union-attr]


def test_turnlog_fork(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = str(tmp_path / "t.db")

    async def setup() -> tuple[str, int]:
        log, messages = await open_store(db)
        async with log:
            engine = TurnEngine(log, EchoLLM(), messages=messages)
            conv, boundary = await echo_parent(engine)
            [r async for r in engine.run_turn(conv, TurnRequest("two"))]
            return conv, boundary

    conv, boundary = asyncio.run(setup())
    assert main(["fork", conv, "--at", str(boundary), "--db", db, "--subject", "ann"]) == 0
    fork = capsys.readouterr().out.strip()
    assert main(["fork", conv, "--at", "2", "--db", db]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"turnlog: error: cannot fork conversation {conv!r}: version 2 (turn_started) is inside")
    assert err.count("\n") == 1
    assert main(["fork", "nope", "--at", "1", "--db", db]) == 1
    assert "unknown conversation 'nope'" in capsys.readouterr().err

    async def check() -> None:
        log, messages = await open_store(db, create=False)
        async with log:
            created = (await log.read(fork, 0, 1))[0].event
            assert isinstance(created, ConversationCreated) and isinstance(created.parent, ForkPoint)
            assert (created.parent.conversation_id, created.parent.version, created.subject) == (conv, boundary, "ann")
            llm = EchoLLM()
            bodies: list[bytes] = []
            render = llm.render
            llm.render = lambda request: bodies.append(render(request)) or bodies[-1]  # type: ignore[method-assign]
            engine = TurnEngine(log, llm, messages=messages)
            [r async for r in engine.run_turn(fork, TurnRequest("two, again"))]
            sent = json.loads(bodies[0])["messages"]
            assert [m["content"] for m in sent if m["role"] == "user"] == ["one", "two, again"]
            assert (await verify(log)).ok
            assert sorted(await log.streams()) == sorted([conv, fork])

    asyncio.run(check())
