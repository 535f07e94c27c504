"""``turnlog list``: one line per conversation, newest first, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from turnlog.adapters.cli import main
from turnlog.adapters.llm import EchoLLM
from turnlog.adapters.stores import Store, open_store
from turnlog.engine import FixedClock, SequentialIds, TurnEngine, TurnRequest


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "list.db")
    return request.getfixturevalue("pg_schema_url")


async def index(store: Store, conv: str) -> None:
    """What the server does after creating a conversation: its first event, to the row sink."""
    await store.messages.sink(conv, 0).committed(await store.log.read(conv, 0, 1))


async def fill(db: str) -> list[str]:
    """Conversations of two tenants and three subjects (a turn moves one to the top)."""
    async with await open_store(db) as store:
        engine = TurnEngine(store.log, EchoLLM(), messages=store.messages, clock=FixedClock(), ids=SequentialIds())
        made = []
        for tenant, subject, title in [
            ("", "", "Plans"),
            ("acme", "ann", 'Grüße "👋"'),
            ("acme", "bob", "Budget"),
            ("acme", "ann", "Trip"),
            ("globex", "ann", "Secret"),
        ]:
            conv = await engine.create_conversation(title=title, tenant=tenant, subject=subject)
            await index(store, conv)
            made.append(conv)
        for message in ("hello there", "again and again"):
            async for _ in engine.run_turn(made[1], TurnRequest(message, tenant="acme", subject="ann")):
                pass
        return made


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, list[str], str]:
    code = main(["list", *argv])
    captured = capsys.readouterr()
    return code, captured.out.splitlines(), captured.err


def test_list_prints_one_line_per_conversation_newest_first(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    plans, greet, budget, trip, secret = asyncio.run(fill(db))
    code, lines, err = run(capsys, "--db", db, "--tenant", "acme")
    assert code == 0 and err == ""
    # greet had two turns after every creation: the newest activity.
    assert [line.split()[1] for line in lines] == [greet, trip, budget]
    when, conv, turns, _, status, tokens, _, who, title = lines[0].split(maxsplit=8)
    assert (conv, turns, status, who) == (greet, "2", "finalized", "acme/ann") and int(tokens) > 0
    assert json.loads(title) == 'Grüße "👋"' and when.startswith("2026-01-01T")
    assert lines[1].split()[2:4] == ["0", "turns"] and " - " in lines[1]  # no turn yet: no status
    # A subject, a limit, the default tenant "", another tenant.
    assert [line.split()[1] for line in run(capsys, "--db", db, "--tenant", "acme", "--subject", "ann")[1]] == [
        greet,
        trip,
    ]
    assert [line.split()[1] for line in run(capsys, "--db", db, "--tenant", "acme", "--limit", "1")[1]] == [greet]
    assert [line.split()[1] for line in run(capsys, "--db", db)[1]] == [plans]
    assert [line.split()[1] for line in run(capsys, "--db", db, "--tenant", "globex")[1]] == [secret]
    assert run(capsys, "--db", db, "--tenant", "nobody") == (0, [], "")


def test_list_pages_through_a_long_index(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    async def many() -> list[str]:
        async with await open_store(db) as store:
            engine = TurnEngine(store.log, EchoLLM(), messages=store.messages, clock=FixedClock(), ids=SequentialIds())
            made = []
            for i in range(1010):
                conv = await engine.create_conversation(title=f"n{i}")
                await index(store, conv)
                made.append(conv)
            return made

    made = asyncio.run(many())
    code, lines, _ = run(capsys, "--db", db, "--limit", "5000")
    assert code == 0 and [line.split()[1] for line in lines] == made[::-1]
    assert len(run(capsys, "--db", db, "--limit", "1001")[1]) == 1001


def test_list_refuses_what_it_cannot_do(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "missing.db"
    code, lines, err = run(capsys, "--db", str(missing))
    assert code == 1 and lines == [] and "no database at" in err and not missing.exists()
    db = str(tmp_path / "x.db")
    asyncio.run(fill(db))
    code, _, err = run(capsys, "--db", db, "--limit", "0")
    assert code == 1 and "--limit must be at least 1" in err


def test_an_index_never_filled_says_to_rebuild(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = str(tmp_path / "old.db")
    asyncio.run(fill(db))

    async def forget() -> None:
        async with await open_store(db) as store:
            await store.conversations.clear()  # as a log from before the index (revision 0005)

    asyncio.run(forget())
    code, lines, err = run(capsys, "--db", db, "--tenant", "acme")
    assert (code, lines) == (0, []) and "turnlog rebuild" in err
    assert main(["rebuild", "--db", db]) == 0
    capsys.readouterr()
    assert len(run(capsys, "--db", db, "--tenant", "acme")[1]) == 3
