"""``turnlog usage``: the ledger's report on the command line (table and JSON), on SQLite and
PostgreSQL; ``--rebuild`` fills it for a log whose ledger is empty; bad input is one line."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from turnlog.adapters.cli import main
from turnlog.adapters.llm import ScriptedLLM
from turnlog.adapters.stores import open_store
from turnlog.engine import FixedClock, SequentialIds, TurnEngine, TurnRequest


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "usage.db")
    return request.getfixturevalue("pg_schema_url")


async def fill(db: str) -> list[str]:
    script = [
        [{"text": "a"}, {"usage": [1000, 500, 1500]}],
        [{"text": "b"}, {"usage": [2000, 100, 2100]}],
        [{"text": "c"}, {"usage": [10, 5, 15]}],
    ]
    async with await open_store(db) as store:
        engine = TurnEngine(
            store.log, ScriptedLLM(script), messages=store.messages, clock=FixedClock(), ids=SequentialIds()
        )
        convs = []
        for tenant, subject, model in [("acme", "ann", "big"), ("acme", "bob", "big"), ("globex", "gil", "odd")]:
            conv = await engine.create_conversation(model=model, tenant=tenant, subject=subject)
            async for _ in engine.run_turn(conv, TurnRequest("go", tenant=tenant, subject=subject)):
                pass
            convs.append(conv)
        return convs


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["usage", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_usage_reports(db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    convs = asyncio.run(fill(db))
    prices = tmp_path / "prices.toml"
    prices.write_text('[models.big]\ninput = "2"\noutput = "8"\n')

    code, out, _ = run(capsys, "--db", db, "--by", "tenant", "--prices", str(prices))
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["tenant", "calls", "prompt", "cached", "completion", "reasoning", "total", "cost"]
    # acme: 3000 prompt, 600 completion at 2 and 8 per 1M = 0.006 + 0.0048
    assert lines[1].split() == ["acme", "2", "3000", "0", "600", "0", "3600", "0.0108"]
    assert lines[2].split() == ["globex", "1", "10", "0", "5", "0", "15", "?"]
    assert lines[3].split() == ["total", "3", "3010", "0", "605", "0", "3615", "?"]
    assert "? no price for: odd" in out and "cost in USD" in out

    code, out, _ = run(capsys, "--db", db, "--format", "json", "--tenant", "acme", "--prices", str(prices))
    report = json.loads(out)
    assert [(r["key"], r["total_tokens"], r["cost"]) for r in report["rows"]] == [
        (convs[0], 1500, "0.006"),
        (convs[1], 2100, "0.0048"),
    ]

    # A ledger lost (a log from before it): empty until --rebuild recomputes it from the log.
    async def drop() -> None:
        async with await open_store(db) as store:
            await store.usage.clear()

    asyncio.run(drop())
    assert json.loads(run(capsys, "--db", db, "--format", "json")[1])["rows"] == []
    rebuilt = json.loads(run(capsys, "--db", db, "--format", "json", "--rebuild", "--by", "model")[1])["rows"]
    assert [(r["key"], r["calls"], r["total_tokens"]) for r in rebuilt] == [("big", 2, 3600), ("odd", 1, 15)]

    code, out, err = run(capsys, "--db", db, "--since", "tuesday")
    assert code == 1 and out == "" and "not a UTC day or time" in err and len(err.splitlines()) == 1
    prices.write_text("[models.big]\ninput = 2\n")
    code, out, err = run(capsys, "--db", db, "--prices", str(prices))
    assert code == 1 and "missing ['output']" in err
