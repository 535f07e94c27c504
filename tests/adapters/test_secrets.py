"""The API key reaches the Authorization header and nothing else: not the SQLite file (nor its
WAL), not the logs (httpx and httpcore at DEBUG), not an error message, not a repr, even when a
server echoes the key back in its error body."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from turnlog.adapters.llm import LocalServer, OpenAILLM, ProviderConfig, Reply, RetryPolicy, Timeouts
from turnlog.adapters.stores import SqliteEventLog, SqlMessageStore
from turnlog.engine import ErrorChunk, FixedClock, SequentialIds, TurnEngine, TurnRequest

KEY = "sk-SECRET-7f3a9c-do-not-leak-0451"


def ok(text: str) -> bytes:
    chunk = {"choices": [{"index": 0, "delta": {"content": text}, "finish_reason": "stop"}]}
    return b"data: " + json.dumps(chunk).encode() + b"\n\ndata: [DONE]\n\n"


async def noop_sleep(_: float) -> None:
    return None


async def test_the_key_is_sent_and_found_nowhere_else(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    echo = json.dumps({"error": {"message": f"Incorrect API key provided: {KEY}"}}).encode()
    replies = [
        Reply(body=ok("fine")),
        Reply(body=echo, status=401, content_type="application/json"),
        Reply(body=b"busy", status=429, content_type="text/plain", headers={"Retry-After": "0"}),
        Reply(body=ok("partial")[:-14] + b'data: {"error": {"message": "boom ' + KEY.encode() + b'"}}\n\n'),
    ]
    errors: list[str] = []
    db = tmp_path / "secret.db"
    async with LocalServer(replies) as server:
        config = ProviderConfig(name="acme", base_url=server.url + "/v1", model="m", api_key_resolver=lambda: KEY)
        llm = OpenAILLM(config, retry=RetryPolicy(attempts=2), timeouts=Timeouts(idle=2.0), sleep=noop_sleep)
        log = await SqliteEventLog.open(db)
        try:
            engine = TurnEngine(log, llm, messages=SqlMessageStore(log.writer), clock=FixedClock(), ids=SequentialIds())
            conv = await engine.create_conversation(model="m")
            for n in range(3):
                async for rec in engine.run_turn(conv, TurnRequest(f"turn {n}")):
                    if rec.type == "turn_failed":
                        errors.append(rec.event.message)
            # The same server error once more, read directly: the chunk's message is masked too.
            errors += [c.message async for c in llm.stream(b"{}") if isinstance(c, ErrorChunk)]
            errors += [repr(config), repr(llm), str(config)]
        finally:
            await log.close()
            await llm.aclose()
        sent = [r.headers.get("authorization") for r in server.requests]
    assert sent and all(h == f"Bearer {KEY}" for h in sent)
    assert len(errors) == 2 + 1 + 3 and any("Incorrect API key provided: ***" in e for e in errors)
    assert sum("boom ***" in e for e in errors) == 2
    files = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("secret.db"))
    assert b"turn 2" in files  # the log really is in these bytes
    for haystack in (files, caplog.text.encode(), "\n".join(errors).encode()):
        assert KEY.encode() not in haystack
        assert KEY[3:20].encode() not in haystack
