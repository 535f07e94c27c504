"""``turnlog otel export``: a past conversation's spans, one JSON line each, content only on request."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from turnlog.adapters.cli import main
from turnlog.adapters.llm import ScriptedLLM
from turnlog.adapters.stores import open_store
from turnlog.engine import FixedClock, SequentialIds, TurnEngine, TurnRequest


async def fill(db: Path) -> str:
    async with await open_store(db) as store:
        script = [[{"text": "The answer is 42."}, {"usage": [12, 5, 17]}]]
        engine = TurnEngine(
            store.log, ScriptedLLM(script), messages=store.messages, clock=FixedClock(), ids=SequentialIds()
        )
        conv = await engine.create_conversation(model="m1")
        async for _ in engine.run_turn(conv, TurnRequest("What is the answer?")):
            pass
        return conv


def test_export_prints_one_json_line_per_span(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "t.db"
    conv = asyncio.run(fill(db))
    assert main(["otel", "export", "--db", str(db), conv]) == 0
    out = capsys.readouterr().out
    spans = [json.loads(line) for line in out.splitlines()]
    assert [s["name"] for s in spans] == ["chat m1", "invoke_agent turnlog"]  # a child ends first
    chat, turn = spans
    assert chat["parent_id"] == turn["context"]["span_id"] and turn["parent_id"] is None
    assert chat["attributes"]["gen_ai.usage.input_tokens"] == 12
    assert turn["start_time"] == "2026-01-01T00:00:00.002000Z"  # the log's time, not the export's
    assert "The answer is" not in out and "What is the answer" not in out

    assert main(["otel", "export", "--db", str(db), "--content", conv]) == 0
    out = capsys.readouterr().out
    assert "The answer is 42." in out and "What is the answer?" in out

    assert main(["otel", "export", "--db", str(db), "conv-404"]) == 1
    assert "unknown conversation 'conv-404'" in capsys.readouterr().err
