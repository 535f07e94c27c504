"""turnlog embedded in a real FastAPI app under /chat, over real uvicorn on 127.0.0.1: the host's
own routes, lifespan, auth and tools keep working; a turn runs; Locations name /chat; a host
stopped mid-turn gives the turn its shutdown grace; a host killed mid-turn recovers the turn on
its next start and the conversation takes a new turn; mounted the naive way, the service says 503."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI
from turnlog.adapters.llm import EchoLLM
from turnlog.adapters.server import TurnService, create_app, mount
from turnlog.adapters.stores import open_store
from turnlog.engine import InMemoryEventLog, TurnFailed, TurnFinalized, replay
from turnlog.projections import MemoryMessageStore, project

from .conftest import HostProcess, serving
from .host_app import ANN, build

WORDS = " ".join(f"w{i}" for i in range(100))


def frames_of(body: bytes) -> list[bytes]:
    return [block + b"\n\n" for block in body.split(b"\n\n") if block.startswith(b"id: ")]


async def new_conversation(client: httpx.AsyncClient) -> str:
    r = await client.post("/chat/conversations", json={}, headers=ANN)
    assert r.status_code == 201, r.text
    conv = r.json()["id"]
    assert r.headers["location"] == f"/chat/conversations/{conv}"
    return conv


async def last_event(db: Path, conv: str) -> Any:
    async with await open_store(db) as (log, _):
        last = await log.last(conv)
    assert last is not None
    return last.event


async def test_a_fastapi_host_runs_turnlog_under_chat(tmp_path: Path) -> None:
    db = tmp_path / "chat.db"
    app = build(str(db))
    async with serving(app) as url, httpx.AsyncClient(base_url=url, timeout=30) as client:
        # The host's own lifespan ran, and its state reaches its routes.
        hello = (await client.get("/hello")).json()
        assert hello == {"greeting": "hello from the host", "events": ["host started"]}
        # The host's users: no key, no conversation.
        r = await client.post("/chat/conversations", json={})
        assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
        conv = await new_conversation(client)
        body = {"message": '/call shout {"text": "hi"}', "enabled_tools": ["shout"]}
        turn = await client.post(f"/chat/conversations/{conv}/turns", json=body, headers=ANN)
        assert turn.status_code == 200, turn.text
        live = frames_of(turn.content)
        steps = [json.loads(f.split(b"data: ", 1)[1]) for f in live if b"process_step" in f]
        results = [s["step"] for s in steps if s["step"]["type"] == "tool_result"]
        assert [(s["name"], s["success"]) for s in results] == [("shout", True)] and "HI!" in results[0]["content"]
        assert b"event: done" in live[-1]
        # Another user of the host does not see ann's conversation.
        r = await client.get(f"/chat/conversations/{conv}/messages", headers={"x-api-key": "key-bob"})
        assert r.status_code == 404
        # The document names the path the service is mounted at.
        doc = (await client.get("/chat/openapi.json")).json()
        assert doc["servers"] == [{"url": "/chat"}] and "/conversations/{id}/turns" in doc["paths"]
    # The host's lifespan ended after the service's.
    assert app.state.host_events == ["host started", "host stopped"]
    async with await open_store(db) as (log, _):
        events = [rec async for rec in replay(log, conv)]
    assert isinstance(events[-1].event, TurnFinalized)
    assert live == project(events)


async def test_a_host_stopped_mid_turn_gives_the_turn_its_shutdown_grace(tmp_path: Path) -> None:
    db = tmp_path / "chat.db"
    async with (
        serving(build(str(db), delay=0.05, shutdown_grace=0.3)) as url,
        httpx.AsyncClient(base_url=url, timeout=30) as client,
    ):
        conv = await new_conversation(client)
        got = b""
        async with client.stream(
            "POST", f"/chat/conversations/{conv}/turns", json={"message": WORDS}, headers=ANN
        ) as r:
            async for chunk in r.aiter_raw():
                got += chunk
                if len(frames_of(got)) >= 3:
                    break  # the browser goes away; the turn goes on (5 s of words)
        stopping = time.monotonic()
    # uvicorn stopped, the host's lifespan stopped the service: the turn got 0.3 s, then was
    # cancelled, its partial output kept.
    assert time.monotonic() - stopping < 4
    ev = await last_event(db, conv)
    assert isinstance(ev, TurnFailed) and ev.reason == "cancelled", ev


async def test_a_host_killed_mid_turn_recovers_it_on_its_next_start(tmp_path: Path) -> None:
    db = tmp_path / "chat.db"
    first = HostProcess(db, tmp_path, delay=0.05)
    try:
        first.wait_ready()
        async with httpx.AsyncClient(base_url=first.url, timeout=30) as client:
            conv = await new_conversation(client)
            got = b""
            url = f"/chat/conversations/{conv}/turns"
            async with client.stream("POST", url, json={"message": WORDS}, headers=ANN) as r:
                async for chunk in r.aiter_raw():
                    got += chunk
                    if len(frames_of(got)) >= 4:
                        break
        first.kill()  # SIGKILL: no lifespan shutdown, the turn is left live in the log
    finally:
        first.kill()
    assert not isinstance(await last_event(db, conv), (TurnFinalized, TurnFailed))
    second = HostProcess(db, tmp_path)
    try:
        second.wait_ready()  # the host's lifespan ran the service's recovery before it served
        ev = await last_event(db, conv)
        assert isinstance(ev, TurnFailed) and ev.reason == "interrupted", ev
        async with httpx.AsyncClient(base_url=second.url, timeout=30) as client:
            r = await client.post(f"/chat/conversations/{conv}/turns", json={"message": "again"}, headers=ANN)
            assert r.status_code == 200, r.text
            assert b"event: done" in frames_of(r.content)[-1]
            rows = (await client.get(f"/chat/conversations/{conv}/messages", headers=ANN)).json()["messages"]
            assert [(m["role"], m["status"]) for m in rows] == [
                ("user", "failed"),
                ("assistant", "failed"),
                ("user", "finalized"),
                ("assistant", "finalized"),
            ]
            await new_conversation(client)  # Location under /chat here too
    finally:
        second.kill()


async def test_mounted_the_naive_way_the_service_refuses_with_503() -> None:
    service = TurnService(InMemoryEventLog(), MemoryMessageStore(), EchoLLM())
    naive = FastAPI()
    naive.mount("/chat", create_app(service))  # Starlette never runs this app's lifespan
    async with serving(naive) as url, httpx.AsyncClient(base_url=url) as client:
        for method, path in (("GET", "/chat/health"), ("POST", "/chat/conversations")):
            r = await client.request(method, path)
            assert r.status_code == 503, r.text
            error = r.json()["error"]
            assert error["code"] == "not_started" and "mount(app, '/chat', service)" in error["message"].replace(
                "'/path'", "'/chat'"
            )
        assert (await client.get("/chat/openapi.json")).status_code == 200  # the document needs no service
    assert not service.started
    # The documented way, with a service already built: started with the host, stopped with it.
    host = FastAPI()
    mount(host, "/chat", service)
    async with serving(host) as url, httpx.AsyncClient(base_url=url) as client:
        assert service.started
        r = await client.post("/chat/conversations")
        assert r.status_code == 201 and r.headers["location"].startswith("/chat/conversations/")
    assert not service.started
