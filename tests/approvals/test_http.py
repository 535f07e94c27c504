"""``POST /conversations/{id}/approvals`` over real uvicorn, on SQLite and PostgreSQL: a turn that
asks for a tool needing approval parks (its stream ends with ``approval_required``), a new turn
answers 409, a decision streams the rest of the turn, a denial reaches the model as the tool's
result, bad decisions are clear JSON errors, and every client's frames are the log's."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from turnlog.adapters.llm import EchoLLM
from turnlog.adapters.server import Principal, ServerConfig, TokenAuth, TurnService
from turnlog.engine import ApprovalDecided, ToolRegistry, TurnFailed, TurnFinalized, replay
from turnlog.projections import project

from ..server.conftest import frames_of, serving

ANN = {"authorization": "Bearer tok-ann"}
BOB = {"authorization": "Bearer tok-bob"}  # another tenant
SQL_STORES = pytest.mark.parametrize(
    "store", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
RAN: list[str] = []


def tools() -> ToolRegistry:
    registry = ToolRegistry()

    async def transfer(amount: int) -> str:
        RAN.append(f"transfer {amount}")
        return f"sent {amount}"

    async def lookup(q: str) -> str:
        return f"found {q}"

    registry.register(transfer, requires_approval=True)
    registry.register(lookup)
    return registry


def service(store: Any, **config: Any) -> TurnService:
    auth = TokenAuth(
        {"tok-ann": Principal("acme", level=1, subject="ann"), "tok-bob": Principal("globex", level=1, subject="bob")}
    )
    return TurnService(
        store.log,
        store.messages,
        EchoLLM(),
        tools=tools(),
        authenticate=auth,
        config=ServerConfig(recover_grace=0.0, default_tools=("transfer", "lookup"), **config),
    )


def data(frame: bytes) -> dict[str, Any]:
    return json.loads(frame.split(b"data: ", 1)[1])


async def parked_conversation(
    client: httpx.AsyncClient, call: str = '/call transfer {"amount": 5}'
) -> tuple[str, list]:
    conv = (await client.post("/conversations", json={}, headers=ANN)).json()["id"]
    r = await client.post(f"/conversations/{conv}/turns", json={"message": call}, headers=ANN)
    assert r.status_code == 200, r.text
    return conv, frames_of(r.content)


@SQL_STORES
async def test_approve_parks_then_continues_the_turn(store) -> None:
    RAN.clear()
    async with serving(service(store)) as url, httpx.AsyncClient(base_url=url, timeout=30) as client:
        conv, frames = await parked_conversation(client)
        assert b"event: approval_required" in frames[-1]
        assert data(frames[-1]) == {"call_id": "call_1", "name": "transfer", "arguments": '{"amount": 5}'}
        # The turn is parked: a replay ends at once, a new turn is refused, rows say so, nothing ran.
        assert frames_of((await client.get(f"/conversations/{conv}/events", headers=ANN)).content) == frames
        again = await client.post(f"/conversations/{conv}/turns", json={"message": "hi"}, headers=ANN)
        assert again.status_code == 409 and again.json()["error"]["code"] == "awaiting_approval"
        rows = (await client.get(f"/conversations/{conv}/messages", headers=ANN)).json()["messages"]
        assert [r["status"] for r in rows] == ["awaiting_approval", "awaiting_approval"]
        assert rows[-1]["content"]["approvals"][0]["decision"] is None
        listed = (await client.get("/conversations", headers=ANN)).json()["items"]
        assert [i["last_status"] for i in listed if i["id"] == conv] == ["awaiting_approval"]
        assert RAN == []
        # Refusals: unknown call (422), bad body (422), another tenant (404). Nothing written.
        head = (await store.log.last(conv)).version
        r = await client.post(
            f"/conversations/{conv}/approvals", json={"call_id": "nope", "decision": "approve"}, headers=ANN
        )
        assert r.status_code == 422 and r.json()["error"]["code"] == "unknown_call"
        r = await client.post(
            f"/conversations/{conv}/approvals", json={"call_id": "call_1", "decision": "maybe"}, headers=ANN
        )
        assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_body"
        r = await client.post(
            f"/conversations/{conv}/approvals", json={"call_id": "call_1", "decision": "approve"}, headers=BOB
        )
        assert r.status_code == 404
        assert (await store.log.last(conv)).version == head
        # The decision streams the rest of the turn.
        r = await client.post(
            f"/conversations/{conv}/approvals",
            json={"call_id": "call_1", "decision": "approve", "reason": "ok"},
            headers=ANN,
        )
        assert r.status_code == 200, r.text
        rest = frames_of(r.content)
        assert b"event: approval_decided" in rest[0] and b"event: done" in rest[-1]
        assert RAN == ["transfer 5"]
        events = [rec async for rec in replay(store.log, conv)]
        assert frames + rest == project(events), "the clients' frames are the log's"
        assert isinstance(events[-1].event, TurnFinalized)
        decided = next(e.event for e in events if e.type == "approval_decided")
        assert decided == ApprovalDecided(1, "call_1", "approve", "ok", "acme", "ann")
        assert frames_of((await client.get(f"/conversations/{conv}/events", headers=ANN)).content) == frames + rest
        # Decided already: 409, nothing written.
        r = await client.post(
            f"/conversations/{conv}/approvals", json={"call_id": "call_1", "decision": "deny"}, headers=ANN
        )
        assert r.status_code == 409 and r.json()["error"]["code"] == "not_awaiting_approval"
        rows = (await client.get(f"/conversations/{conv}/messages", headers=ANN)).json()["messages"]
        assert rows[-1]["status"] == "finalized" and rows[-1]["content"]["approvals"][0]["decision"] == "approve"


@SQL_STORES
async def test_a_denial_is_the_tools_result_and_cancel_ends_a_parked_turn(store) -> None:
    RAN.clear()
    async with serving(service(store)) as url, httpx.AsyncClient(base_url=url, timeout=30) as client:
        conv, frames = await parked_conversation(client)
        r = await client.post(
            f"/conversations/{conv}/approvals",
            json={"call_id": "call_1", "decision": "deny", "reason": "over budget"},
            headers=ANN,
        )
        rest = frames_of(r.content)
        result = next(data(f)["step"] for f in rest if b'"tool_result"' in f)
        assert result["success"] is False and result["content"].endswith("reason: over budget")
        answer = "".join(data(f)["step"]["content"] for f in rest if b'"type":"text"' in f)
        assert answer.startswith("The tool answered: error: denied by tenant 'acme' subject 'ann'")  # the model saw it
        assert RAN == []
        assert project([rec async for rec in replay(store.log, conv)]) == frames + rest

        conv, _ = await parked_conversation(client)
        r = await client.post(f"/conversations/{conv}/cancel", json={"reason": "no"}, headers=ANN)
        assert r.status_code == 200, r.text
        last = (await store.log.last(conv)).event
        assert isinstance(last, TurnFailed) and last.reason == "cancelled"
        r = await client.post(
            f"/conversations/{conv}/approvals", json={"call_id": "call_1", "decision": "approve"}, headers=ANN
        )
        assert r.status_code == 409 and r.json()["error"]["code"] == "not_awaiting_approval"
        again = await client.post(f"/conversations/{conv}/turns", json={"message": "hi"}, headers=ANN)
        assert again.status_code == 200 and b"event: done" in again.content


@SQL_STORES
async def test_the_servers_policy_gates_a_tool_and_several_decisions(store) -> None:
    RAN.clear()
    # lookup is not flagged; the server's policy (approval_tools) gates it.
    async with (
        serving(service(store, approval_tools=("lookup",))) as url,
        httpx.AsyncClient(base_url=url, timeout=30) as client,
    ):
        conv, frames = await parked_conversation(client, '/call lookup {"q": "rates"}')
        assert data(frames[-1])["name"] == "lookup"
        r = await client.post(
            f"/conversations/{conv}/approvals", json={"call_id": "call_1", "decision": "approve"}, headers=ANN
        )
        assert b"event: done" in frames_of(r.content)[-1]
