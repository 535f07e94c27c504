"""A model that streams the literal string ``[erased]`` is not an erased conversation: on an
encrypted SQLite log, its rows, its transcript and the next request keep every such delta, live
and rebuilt alike; once the conversation is erased, a run of erased deltas shows once."""

from __future__ import annotations

import json
from pathlib import Path

from turnlog.adapters.crypto import erase
from turnlog.adapters.llm import ScriptedLLM
from turnlog.adapters.stores import open_store
from turnlog.engine import ERASED_TEXT, FinishChunk, TextChunk, TurnEngine, TurnRequest, replay
from turnlog.projections import MemoryMessageStore, fold_rows, rebuild, render, row_text

SAID = ["a ", "[erased]", "[erased]", " b"]


async def test_a_models_own_erased_string_is_kept_as_often_as_it_came(tmp_path: Path) -> None:
    store = await open_store(tmp_path / "t.db")
    try:
        llm = ScriptedLLM(
            [[*(TextChunk(t) for t in SAID), FinishChunk("stop")], [TextChunk("ok"), FinishChunk("stop")]]
        )
        engine = TurnEngine(store.log, llm, messages=store.messages)
        conv = await engine.create_conversation(model="m")
        [r async for r in engine.run_turn(conv, TurnRequest("say it"))]
        said = "".join(SAID)
        assert said == "a [erased][erased] b"

        rows = await store.messages.rows(conv)
        events = [rec async for rec in replay(store.log, conv)]
        assert row_text(rows[1]) == said and fold_rows(conv, events) == rows
        fresh = MemoryMessageStore()
        await rebuild(store.log, fresh)
        assert await fresh.rows(conv) == rows
        assert f'text (4 deltas): "{said}"' in render(events)
        # The next request repeats the answer as the model gave it.
        [r async for r in engine.run_turn(conv, TurnRequest("again"))]
        sent = json.loads(llm.bodies[1])["messages"]
        assert [m["content"] for m in sent if m["role"] == "assistant"] == [said]

        await erase(store.log, store.messages, [conv], reason="r")
        events = [rec async for rec in replay(store.log, conv)]
        assert row_text((await store.messages.rows(conv))[1]) == ERASED_TEXT  # the run, once
        assert f'text (4 deltas): "{ERASED_TEXT}"' in render(events)
    finally:
        await store.close()
