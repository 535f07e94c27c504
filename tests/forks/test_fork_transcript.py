"""A fork's transcript, on every store: its conversation line is followed by the conversation and
version it branched off, and each request summary counts the parents' turns the request repeated,
as the model received them (``inherited_prior``); ``turnlog replay --format transcript`` of a fork
on a SQLite file prints the same."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import pytest
from turnlog.adapters.cli import main
from turnlog.adapters.llm import EchoLLM
from turnlog.adapters.stores import open_store
from turnlog.engine import TurnEngine, TurnRequest, inherited_prior, replay
from turnlog.projections import render

from .test_fork_cli import echo_parent
from .test_fork_engine import WEATHER, engine_for, live_turn, parent_with_two_turns

SENT = re.compile(r"^    sent: .* messages=(\d+) \(([^)]*)\)$", re.M)


def sent_roles(transcript: str) -> list[list[str]]:
    return [roles.split(", ") for _, roles in SENT.findall(transcript)]


async def test_a_forks_transcript_names_its_parent_and_counts_what_its_requests_repeated(store) -> None:  # type: ignore[no-untyped-def]
    parent, boundary, _ = await parent_with_two_turns(store)
    engine = engine_for(store, WEATHER)
    fork = await engine.fork(parent, boundary)
    await live_turn(engine, fork, "And in Rome?")
    received = [[m["role"] for m in json.loads(body)["messages"]] for body in engine.llm.bodies]
    assert received[0] == ["system", "user", "assistant", "tool", "assistant", "user"]

    events = [rec async for rec in replay(store.log, fork)]
    inherited = await inherited_prior(store.log, fork)
    text = render(events, inherited)
    lines = text.splitlines()
    assert lines[0].startswith("conversation <conv-1> ")
    assert lines[1] == f"  forked from <conv-2> at v{boundary}"
    # One summary per request the fork's turn sent (two iterations), each as the model got it.
    assert sent_roles(text) == received

    # Without its parents' turns the fork's own events are all there is to show.
    alone = sent_roles(render(events))
    assert alone == [r[:1] + r[5:] for r in received]
    # A conversation that is not a fork has no such line and inherits nothing.
    assert await inherited_prior(store.log, parent) == []
    assert "forked from" not in render([rec async for rec in replay(store.log, parent)])


def test_turnlog_replay_transcript_of_a_fork(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = str(tmp_path / "t.db")

    async def setup() -> tuple[str, int, str]:
        log, messages = await open_store(db)
        async with log:
            engine = TurnEngine(log, EchoLLM(), messages=messages)
            conv, boundary = await echo_parent(engine)
            fork = await engine.fork(conv, boundary)
            [r async for r in engine.run_turn(fork, TurnRequest("two"))]
            return conv, boundary, fork

    conv, boundary, fork = asyncio.run(setup())
    assert main(["replay", fork, "--db", db, "--format", "transcript"]) == 0
    text = capsys.readouterr().out
    assert text.splitlines()[1] == f"  forked from <conv-2> at v{boundary}"
    assert sent_roles(text) == [["system", "user", "assistant", "user"]]
    assert main(["replay", conv, "--db", db, "--format", "transcript"]) == 0
    assert "forked from" not in capsys.readouterr().out
