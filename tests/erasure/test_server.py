"""Erasure over HTTP (``DELETE /conversations/{id}``) and retention on a schedule, through a real
uvicorn on SQLite: who may erase (the owner, an admin of the tenant; not an auditor, not another
tenant), what the conversation shows afterwards, and the sweep with an injected clock."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import httpx
from turnlog.adapters.llm import EchoLLM
from turnlog.adapters.server import Principal, ServerConfig, TokenAuth, TurnService
from turnlog.adapters.stores import open_store
from turnlog.engine import ConversationErased, FixedClock, replay, verify

from ..server.conftest import serving

ANN = {"authorization": "Bearer tok-ann"}
AUDREY = {"authorization": "Bearer tok-audrey"}  # an auditor of ann's tenant
ADA = {"authorization": "Bearer tok-ada"}  # an admin of ann's tenant
BOB = {"authorization": "Bearer tok-bob"}  # another tenant

AUTH = TokenAuth(
    {
        "tok-ann": Principal("acme", level=1, subject="ann"),
        "tok-audrey": Principal("acme", level=10, subject="audrey"),
        "tok-ada": Principal("acme", level=100, subject="ada"),
        "tok-bob": Principal("globex", level=100, subject="bob"),
    }
)


async def turn(client: httpx.AsyncClient, message: str) -> str:
    r = await client.post("/conversations", json={}, headers=ANN)
    conv = r.json()["id"]
    done = await client.post(f"/conversations/{conv}/turns", json={"message": message}, headers=ANN)
    assert done.status_code == 200 and b"event: done" in done.content
    return conv


async def test_delete_erases_for_the_owner_and_an_admin_only(tmp_path: Path) -> None:
    store = await open_store(tmp_path / "http.db")
    service = TurnService(store.log, store.messages, EchoLLM(), authenticate=AUTH, config=ServerConfig(recover_grace=0))
    try:
        async with serving(service) as url, httpx.AsyncClient(base_url=url, timeout=30) as client:
            mine = await turn(client, "Marmoset-canary one")
            theirs = await turn(client, "Marmoset-canary two")
            assert (await client.delete(f"/conversations/{mine}", headers=BOB)).status_code == 404
            forbidden = await client.delete(f"/conversations/{mine}", headers=AUDREY)
            assert forbidden.status_code == 403 and forbidden.json()["error"]["code"] == "forbidden"
            r = await client.delete(f"/conversations/{mine}", params={"reason": "user asked"}, headers=ANN)
            assert r.status_code == 200 and r.json() == {"id": mine, "erased": True}
            assert (await client.delete(f"/conversations/{theirs}", headers=ADA)).status_code == 200
            again = await client.delete(f"/conversations/{mine}", headers=ANN)
            assert again.status_code == 409 and again.json()["error"]["code"] == "conversation_erased"
            refused = await client.post(f"/conversations/{mine}/turns", json={"message": "more"}, headers=ANN)
            assert refused.status_code == 409 and refused.json()["error"]["code"] == "conversation_erased"
            rows = (await client.get(f"/conversations/{mine}/messages", headers=ANN)).json()["messages"]
            assert [m["content"]["text"] for m in rows] == ["[erased]", "[erased]"]
            assert [m["status"] for m in rows] == ["finalized", "finalized"]
            checked = await client.get(f"/conversations/{mine}/verify", headers=ANN)
            assert checked.status_code == 200 and checked.json()["ok"]
            replayed = await client.get(f"/conversations/{mine}/events", headers=ANN)
            assert replayed.status_code == 200 and b"Marmoset" not in replayed.content
        last = (await store.log.last(mine)).event  # type: ignore[union-attr]
        assert last == ConversationErased(tenant="acme", subject="ann", reason="user asked")
        assert (await verify(store.log)).ok
    finally:
        await store.close()


async def test_delete_by_subject_erases_every_conversation_of_it_in_one_call(tmp_path: Path) -> None:
    store = await open_store(tmp_path / "subject.db")
    service = TurnService(store.log, store.messages, EchoLLM(), authenticate=AUTH, config=ServerConfig(recover_grace=0))
    try:
        async with serving(service) as url, httpx.AsyncClient(base_url=url, timeout=30) as client:
            ann = [await turn(client, f"Quokka-canary {i}") for i in range(3)]
            r = await client.post("/conversations", json={}, headers=ADA)
            adas = r.json()["id"]
            missing = await client.delete("/conversations", headers=ANN)
            assert missing.status_code == 422 and missing.json()["error"]["code"] == "invalid_query"
            # Only the subject itself or an administrator; another tenant's admin finds nothing of ann's.
            forbidden = await client.delete("/conversations", params={"subject": "ann"}, headers=AUDREY)
            assert forbidden.status_code == 403 and forbidden.json()["error"]["code"] == "forbidden"
            elsewhere = await client.delete("/conversations", params={"subject": "ann"}, headers=BOB)
            assert elsewhere.status_code == 200 and elsewhere.json()["erased"] == []
            done = await client.delete(
                "/conversations", params={"subject": "ann", "reason": "account closed"}, headers=ANN
            )
            assert done.status_code == 200
            assert sorted(done.json()["erased"]) == sorted(ann) and done.json()["skipped"] == {}
            for conv in ann:
                rows = (await client.get(f"/conversations/{conv}/messages", headers=ANN)).json()["messages"]
                assert {m["content"]["text"] for m in rows} == {"[erased]"}
                assert (await client.get(f"/conversations/{conv}/verify", headers=ANN)).json()["ok"]
            # Another subject's conversation is untouched; a second call finds ann's already erased.
            assert (await store.log.last(adas)).event.__struct_config__.tag == "conversation_created"  # type: ignore[union-attr]
            again = await client.delete("/conversations", params={"subject": "ann"}, headers=ADA)
            assert again.json()["erased"] == [] and set(again.json()["skipped"].values()) == {"conversation_erased"}
        for conv in ann:
            last = (await store.log.last(conv)).event  # type: ignore[union-attr]
            assert last == ConversationErased(tenant="acme", subject="ann", reason="account closed")
    finally:
        await store.close()


class MovableClock(FixedClock):
    """Stands still until the test moves it."""

    def __init__(self) -> None:
        super().__init__("2026-01-01T00:00:00Z", step=timedelta(0))

    def move(self, by: timedelta) -> None:
        self._t += by


async def test_retention_erases_what_is_older_than_its_days(tmp_path: Path) -> None:
    clock = MovableClock()
    store = await open_store(tmp_path / "ret.db")
    config = ServerConfig(recover_grace=0, retention_days=30, retention_every=0.05)
    service = TurnService(store.log, store.messages, EchoLLM(), authenticate=AUTH, config=config, clock=clock)
    try:
        async with serving(service) as url, httpx.AsyncClient(base_url=url, timeout=30) as client:
            old = await turn(client, "old words")
            clock.move(timedelta(days=20))
            recent = await turn(client, "recent words")
            await asyncio.sleep(0.2)
            assert service.retention is not None and service.retention.erased == 0
            clock.move(timedelta(days=15))  # old is 35 days quiet, recent 15
            async with asyncio.timeout(10):
                while service.retention.erased < 1:
                    await asyncio.sleep(0.02)
            assert (await store.log.last(old)).type == "conversation_erased"  # type: ignore[union-attr]
            assert (await store.log.last(recent)).type != "conversation_erased"  # type: ignore[union-attr]
            erased = [r.event async for r in replay(store.log, old)][-1]
            assert isinstance(erased, ConversationErased) and erased.subject == "retention"
            assert "30 days" in erased.reason
    finally:
        await store.close()
