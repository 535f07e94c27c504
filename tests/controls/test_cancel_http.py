"""``POST /conversations/{id}/cancel`` over real uvicorn, on every store: the streaming client gets
the ``error`` frame (reason ``cancelled``) from the log, 409 ``no_turn_running`` when nothing runs,
and the one rule of who may act (``_tenancy.may``, action "write") decides who may stop a turn."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from turnlog.adapters.llm import EchoLLM
from turnlog.adapters.server import Principal, ServerConfig, TokenAuth, TurnService
from turnlog.engine import CancelRequested, TurnFailed, TurnFinalized, replay
from turnlog.projections import project

from ..server.conftest import frames_of, serving
from .conftest import SseReader

WORDS = " ".join(f"word{i}" for i in range(40))
ANN = {"authorization": "Bearer tok-ann"}
CARL = {"authorization": "Bearer tok-carl"}  # another subject of ann's tenant
AUDREY = {"authorization": "Bearer tok-audrey"}  # an auditor of ann's tenant
BOB = {"authorization": "Bearer tok-bob"}  # another tenant


def service(store: Any, *, delay: float) -> TurnService:
    auth = TokenAuth(
        {
            "tok-ann": Principal("acme", level=1, subject="ann"),
            "tok-carl": Principal("acme", level=1, subject="carl"),
            "tok-audrey": Principal("acme", level=10, subject="audrey"),
            "tok-bob": Principal("globex", level=1, subject="bob"),
        }
    )
    return TurnService(
        store.log, store.messages, EchoLLM(delay=delay), authenticate=auth, config=ServerConfig(recover_grace=0.0)
    )


async def new_conversation(client: httpx.AsyncClient) -> str:
    r = await client.post("/conversations", json={}, headers=ANN)
    assert r.status_code == 201, r.text
    return r.json()["id"]


async def test_cancel_ends_the_streaming_turn_with_an_error_frame(store) -> None:
    async with serving(service(store, delay=0.05)) as url, httpx.AsyncClient(base_url=url, timeout=30) as client:
        conv = await new_conversation(client)
        async with client.stream("POST", f"/conversations/{conv}/turns", json={"message": WORDS}, headers=ANN) as r:
            assert r.status_code == 200
            reader = SseReader(r)
            await reader.until(3)
            cancelled = await client.post(f"/conversations/{conv}/cancel", json={"reason": "enough"}, headers=ANN)
            assert cancelled.status_code == 200, cancelled.text
            assert cancelled.json() == {"turn_id": r.headers["turnlog-turn-id"], "version": cancelled.json()["version"]}
            frames = await reader.rest()
        assert b"event: error" in frames[-1] and b'"reason":"cancelled"' in frames[-1]
        events = [rec async for rec in replay(store.log, conv)]
        assert frames == project(events), "the client's frames are the log's"
        cancel = events[cancelled.json()["version"] - 1]
        assert cancel.event == CancelRequested(tenant="acme", subject="ann", reason="enough")
        failed = events[-1].event
        assert isinstance(failed, TurnFailed) and failed.reason == "cancelled"
        assert "cancelled by tenant 'acme' subject 'ann'" in failed.message and failed.message.endswith(": enough")
        # The partial answer is kept, in the rows too.
        streamed = "".join(e.event.text for e in events if e.type == "text_delta")
        rows = (await client.get(f"/conversations/{conv}/messages", headers=ANN)).json()["messages"]
        assert rows[-1]["status"] == "failed" and rows[-1]["content"]["text"] == streamed
        assert 0 < len(streamed.split()) < 40
        # A replay of the conversation ends with the same frame; a new turn may start.
        replayed = frames_of((await client.get(f"/conversations/{conv}/events", headers=ANN)).content)
        assert replayed == frames
        again = await client.post(f"/conversations/{conv}/turns", json={"message": "hi"}, headers=ANN)
        assert again.status_code == 200 and b"event: done" in again.content


async def test_cancel_reaches_a_turn_waiting_on_a_slow_model(store) -> None:
    # A word every 2 s: the turn is quiet between its commits, its watch hears the cancel.
    async with serving(service(store, delay=2.0)) as url, httpx.AsyncClient(base_url=url, timeout=30) as client:
        conv = await new_conversation(client)
        async with client.stream("POST", f"/conversations/{conv}/turns", json={"message": WORDS}, headers=ANN) as r:
            reader = SseReader(r)
            await reader.until(1)
            await asyncio.sleep(0.2)  # quiet for more than QUIET_S
            loop = asyncio.get_running_loop()
            start = loop.time()
            assert (await client.post(f"/conversations/{conv}/cancel", headers=ANN)).status_code == 200
            frames = await reader.rest()
            assert loop.time() - start < 1.5, "the turn stopped before the model's next word"
        assert b'"reason":"cancelled"' in frames[-1]
        assert b"cancelled by tenant 'acme' subject 'ann'" in frames[-1]
        assert [b'"type":"text"' in f for f in frames] == [True, False], "one word, then the end"


async def test_no_turn_running_answers_409(store) -> None:
    async with serving(service(store, delay=0.0)) as url, httpx.AsyncClient(base_url=url, timeout=30) as client:
        conv = await new_conversation(client)
        r = await client.post(f"/conversations/{conv}/cancel", headers=ANN)
        assert r.status_code == 409
        error = r.json()["error"]
        assert error["code"] == "no_turn_running" and "has no running turn to cancel" in error["message"]
        done = await client.post(f"/conversations/{conv}/turns", json={"message": "hi"}, headers=ANN)
        assert b"event: done" in done.content
        r = await client.post(f"/conversations/{conv}/cancel", json={"reason": "late"}, headers=ANN)
        assert r.status_code == 409 and "has already ended" in r.json()["error"]["message"]
        events = [rec async for rec in replay(store.log, conv)]
        assert isinstance(events[-1].event, TurnFinalized)
        assert "cancel_requested" not in [e.type for e in events]


@pytest.mark.parametrize(
    ("headers", "body", "status", "code"),
    [
        (CARL, None, 404, "not_found"),  # another subject's conversation: not even its existence
        (BOB, None, 404, "not_found"),  # another tenant's
        (AUDREY, None, 403, "forbidden"),  # an auditor reads it; stopping a turn is writing
        ({}, None, 401, "unauthorized"),
        (ANN, {"reason": "x", "force": True}, 422, "invalid_body"),
    ],
)
async def test_who_may_cancel(store, headers: dict, body: Any, status: int, code: str) -> None:
    async with serving(service(store, delay=0.05)) as url, httpx.AsyncClient(base_url=url, timeout=30) as client:
        conv = await new_conversation(client)
        async with client.stream("POST", f"/conversations/{conv}/turns", json={"message": WORDS}, headers=ANN) as r:
            reader = SseReader(r)
            await reader.until(2)
            refused = await client.post(f"/conversations/{conv}/cancel", json=body, headers=headers)
            assert (refused.status_code, refused.json()["error"]["code"]) == (status, code), refused.text
            # Refused: nothing written, the turn goes on; its owner may stop it.
            assert (await client.post(f"/conversations/{conv}/cancel", headers=ANN)).status_code == 200
            frames = await reader.rest()
        events = [rec async for rec in replay(store.log, conv)]
        assert [e.event for e in events if e.type == "cancel_requested"] == [
            CancelRequested(tenant="acme", subject="ann")
        ]
        assert b'"reason":"cancelled"' in frames[-1]


async def test_unknown_conversation_is_404(store) -> None:
    async with serving(service(store, delay=0.0)) as url, httpx.AsyncClient(base_url=url, timeout=30) as client:
        r = await client.post("/conversations/nope/cancel", headers=ANN)
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


async def test_a_client_disconnecting_still_does_not_stop_the_turn(store) -> None:
    async with serving(service(store, delay=0.01)) as url, httpx.AsyncClient(base_url=url, timeout=30) as client:
        conv = await new_conversation(client)
        async with client.stream("POST", f"/conversations/{conv}/turns", json={"message": WORDS}, headers=ANN) as r:
            await SseReader(r).until(2)
        # Gone after two frames; the turn is the log's: it ends as the model ends it.
        frames = frames_of((await client.get(f"/conversations/{conv}/events", headers=ANN)).content)
        assert b"event: done" in frames[-1]
        rows = (await client.get(f"/conversations/{conv}/messages", headers=ANN)).json()["messages"]
        assert rows[-1]["content"]["text"] == WORDS
        assert json.loads(frames[-1].split(b"data: ", 1)[1])["message_id"] == rows[-1]["id"]
