"""A key that straddles the error-text cut leaves no part of itself anywhere (issue 13, item 3).

Provider error text is cut to 500 characters for messages; the key is masked before the cut, so a
key the cut would split is already gone. Checked in the failed turn, the rows, the SSE error frame
and the database bytes, for each place provider text comes from."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from turnlog.adapters.llm import LocalServer, OpenAILLM, ProviderConfig, Reply, RetryPolicy, Timeouts
from turnlog.adapters.stores import open_store
from turnlog.engine import TurnEngine, TurnRequest
from turnlog.projections import stream_sse

KEY = "sk-live-4c1d7e9a2b8f6053aa91"


def straddling(prefix_len: int = 490) -> str:
    """Provider text in which the key starts 10 characters before the 500-character cut."""
    return "x" * prefix_len + KEY + " and more words after the key"


def pieces_of_the_key(min_len: int = 6) -> list[bytes]:
    return [KEY[i : i + min_len].encode() for i in range(len(KEY) - min_len + 1)]


REPLIES = {
    "json error body": Reply(
        body=json.dumps({"error": {"message": straddling()}}).encode(), status=400, content_type="application/json"
    ),
    "text error body": Reply(body=straddling().encode(), status=400, content_type="text/plain"),
    "in-stream error": Reply(body=b'data: {"error": {"message": ' + json.dumps(straddling()).encode() + b"}}\n\n"),
    "garbage event": Reply(body=b"data: {" + straddling(175).encode() + b"\n\n"),
}


@pytest.mark.parametrize("where", list(REPLIES))
async def test_a_key_cut_by_the_clip_leaves_no_prefix(tmp_path: Path, where: str) -> None:
    db = tmp_path / "cut.db"
    async with LocalServer([REPLIES[where]]) as server:
        config = ProviderConfig(name="acme", base_url=server.url + "/v1", model="m", api_key_resolver=lambda: KEY)
        llm = OpenAILLM(config, retry=RetryPolicy(attempts=1), timeouts=Timeouts(idle=2.0))
        try:
            async with await open_store(db) as (log, messages):
                engine = TurnEngine(log, llm, messages=messages)
                conv = await engine.create_conversation(model="m")
                frames = b"".join([f async for f in stream_sse(engine, conv, TurnRequest("hi"))])
                events = [rec async for rec in log.iter_stream(conv)]
                rows = json.dumps([r.content for r in await messages.rows(conv)]).encode()
        finally:
            await llm.aclose()
    failed = events[-1].event
    assert events[-1].type == "turn_failed" and failed.reason == "llm_error"
    files = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("cut.db"))
    assert b"event: error" in frames
    for haystack in (failed.message.encode(), frames, rows, files):
        leaked = [piece for piece in pieces_of_the_key() if piece in haystack]
        assert leaked == [], f"{where}: part of the key leaked: {leaked[:3]}"
    assert "***" in failed.message  # the provider's words are kept, the key masked
