"""Size limits over HTTP (issue 13, item 8), a real client against uvicorn on a SQLite log: each
limit answers a clear JSON error before anything is written (413 ``too_large``, 413
``conversation_too_large``, 422 ``full_mode_too_large``), or ends what it bounds with an ``error``
frame (a turn's output: ``too_large``; a full-mode stream: ``full_mode_too_large``)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
from turnlog.adapters.llm import EchoLLM
from turnlog.adapters.server import ServerConfig, TurnService
from turnlog.adapters.stores import open_store
from turnlog.engine import EngineConfig

from ..server.conftest import frames_of, ids_of, serving


@contextlib.asynccontextmanager
async def served(tmp_path: Path, engine: EngineConfig, **config: object) -> AsyncIterator[httpx.AsyncClient]:
    log, messages = await open_store(tmp_path / "limits.db")
    async with log:
        service = TurnService(
            log, messages, EchoLLM(), engine_config=engine, config=ServerConfig(recover_grace=0.0, **config)
        )
        async with serving(service) as url, httpx.AsyncClient(base_url=url, timeout=30) as client:
            yield client


async def new_conversation(client: httpx.AsyncClient) -> str:
    r = await client.post("/conversations", json={})
    assert r.status_code == 201, r.text
    return r.json()["id"]


async def version_of(client: httpx.AsyncClient, conv: str) -> int:
    r = await client.get(f"/conversations/{conv}/events")
    return ids_of(frames_of(r.content))[-1] if frames_of(r.content) else 1


def error_of(r: httpx.Response, status: int, code: str) -> str:
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert error["status"] == status and error["code"] == code
    return error["message"]


def data(frame: bytes) -> dict:
    return json.loads(frame.split(b"data: ", 1)[1])


async def test_a_message_above_the_limit_answers_413_too_large_and_writes_nothing(tmp_path: Path) -> None:
    async with served(tmp_path, EngineConfig(max_message_bytes=100)) as client:
        conv = await new_conversation(client)
        r = await client.post(f"/conversations/{conv}/turns", json={"message": "x" * 101})
        assert "101 bytes" in error_of(r, 413, "too_large")
        assert await version_of(client, conv) == 1, "nothing written"
        r = await client.post(f"/conversations/{conv}/turns", json={"message": "x" * 100})
        assert r.status_code == 200 and b"event: done" in r.content


async def test_a_turn_past_its_output_limit_ends_too_large_with_its_output_kept(tmp_path: Path) -> None:
    async with served(tmp_path, EngineConfig(max_turn_bytes=20)) as client:
        conv = await new_conversation(client)
        words = " ".join(f"w{i}" for i in range(10))  # deltas "w0" (2 bytes), " w1" (3), ...
        r = await client.post(f"/conversations/{conv}/turns", json={"message": words})
        live = frames_of(r.content)
        end = data(live[-1])
        assert b"event: error" in live[-1] and end["reason"] == "too_large" and "max_turn_bytes" in end["content"]
        assert frames_of((await client.get(f"/conversations/{conv}/events")).content) == live, "replay is exact"
        rows = (await client.get(f"/conversations/{conv}/messages")).json()["messages"]
        assert rows[-1]["status"] == "failed" and rows[-1]["content"]["text"] == "w0 w1 w2 w3 w4 w5 w6"


async def test_a_conversation_at_its_limit_answers_413_conversation_too_large(tmp_path: Path) -> None:
    # One turn of three words: created, started, iteration, 3 deltas, usage, finalized: 8 events.
    async with served(tmp_path, EngineConfig(max_conversation_events=8)) as client:
        conv = await new_conversation(client)
        assert b"event: done" in (await client.post(f"/conversations/{conv}/turns", json={"message": "a b c"})).content
        r = await client.post(f"/conversations/{conv}/turns", json={"message": "more"})
        message = error_of(r, 413, "conversation_too_large")
        assert "max_conversation_events" in message and "start a new conversation" in message
        assert await version_of(client, conv) == 8, "nothing written"


async def test_full_mode_is_refused_with_422_on_a_conversation_above_the_limit(tmp_path: Path) -> None:
    async with served(tmp_path, EngineConfig(), max_full_mode_events=10) as client:
        conv = await new_conversation(client)
        r = await client.post(f"/conversations/{conv}/turns?mode=full", json={"message": "a b c"})
        assert b"event: done" in r.content  # 8 events: full mode is served
        assert b"event: done" in (await client.get(f"/conversations/{conv}/events?mode=full")).content
        r = await client.post(f"/conversations/{conv}/turns", json={"message": "a b c"})
        assert await version_of(client, conv) == 15
        r = await client.get(f"/conversations/{conv}/events?mode=full")
        message = error_of(r, 422, "full_mode_too_large")
        assert "15 events" in message and "max_full_mode_events" in message and "mode=delta" in message
        r = await client.post(f"/conversations/{conv}/turns?mode=full", json={"message": "again"})
        error_of(r, 422, "full_mode_too_large")
        assert await version_of(client, conv) == 15, "no turn started"
        # Delta mode has no such limit.
        assert b"event: done" in (await client.get(f"/conversations/{conv}/events?mode=delta")).content
        r = await client.post(f"/conversations/{conv}/turns", json={"message": "again"})
        assert b"event: done" in r.content


async def test_a_full_mode_stream_that_passes_the_limit_ends_with_an_error_frame(tmp_path: Path) -> None:
    async with served(tmp_path, EngineConfig(), max_full_mode_events=10) as client:
        conv = await new_conversation(client)
        words = " ".join(f"w{i}" for i in range(20))
        r = await client.post(f"/conversations/{conv}/turns?mode=full", json={"message": words})
        body = r.content
        kept = frames_of(body)
        assert ids_of(kept) == list(range(4, 11)), "full frames up to the limit (deltas at versions 4..10)"
        assert data(kept[-1])["step"]["content"] == " ".join(f"w{i}" for i in range(7))
        last = body.rstrip(b"\n").rsplit(b"\n\n", 1)[-1]
        assert last.startswith(b"event: error\n"), "an error frame without id: ends the stream"
        assert json.loads(last.split(b"data: ", 1)[1])["reason"] == "full_mode_too_large"
        # The turn goes on; the client resumes in delta mode from the last id it received.
        rest = frames_of(
            (await client.get(f"/conversations/{conv}/events?mode=delta", headers={"last-event-id": "10"})).content
        )
        assert ids_of(rest)[0] == 11 and b"event: done" in rest[-1]
        text = "".join(data(f)["step"]["content"] for f in rest if b'"type":"text"' in f)
        assert text == "".join(f" w{i}" for i in range(7, 20))
