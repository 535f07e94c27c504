"""Who acted, and who may see it: the principal on every event a person causes, and the one
subject rule (``_tenancy.may``) on every endpoint, over real HTTP on every store.

Four principals: the owner; another subject of the same tenant (404: it cannot tell the
conversation exists); an auditor of the same tenant (reads; 403 when it tries to write); an
auditor-level principal of another tenant with the owner's subject name (404: the tenant decides
first, whatever the level or the name).
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from turnlog.adapters.llm import EchoLLM
from turnlog.adapters.server import Principal, ServerConfig, TokenAuth, TurnService
from turnlog.engine import ConversationCreated, InMemoryEventLog, TurnStarted, replay
from turnlog.projections import MemoryMessageStore

from ..server.conftest import serving

PRINCIPALS = {
    "owner": Principal("acme", level=1, subject="ann"),
    "other": Principal("acme", level=1, subject="carl"),
    "auditor": Principal("acme", level=10, subject="audrey"),
    "stranger": Principal("globex", level=10, subject="ann"),
}
WHO = list(PRINCIPALS)

#: The status each principal gets from each endpoint of a conversation ann created.
EXPECTED = {
    "events": {"owner": 200, "other": 404, "auditor": 200, "stranger": 404},
    "messages": {"owner": 200, "other": 404, "auditor": 200, "stranger": 404},
    "verify": {"owner": 200, "other": 404, "auditor": 200, "stranger": 404},
    "requests": {"owner": 403, "other": 404, "auditor": 200, "stranger": 404},
    "turns": {"owner": 200, "other": 404, "auditor": 403, "stranger": 404},
}
#: A conversation from before subjects (subject ""): the whole tenant's.
EXPECTED_LEGACY = {
    "events": {"owner": 200, "other": 200, "auditor": 200, "stranger": 404},
    "messages": {"owner": 200, "other": 200, "auditor": 200, "stranger": 404},
    "verify": {"owner": 200, "other": 200, "auditor": 200, "stranger": 404},
    "requests": {"owner": 403, "other": 403, "auditor": 200, "stranger": 404},
    "turns": {"owner": 200, "other": 200, "auditor": 200, "stranger": 404},
}


def headers(who: str) -> dict[str, str]:
    return {"authorization": f"Bearer tok-{who}"}


def service(store: Any) -> TurnService:
    auth = TokenAuth({f"tok-{who}": p for who, p in PRINCIPALS.items()})
    return TurnService(store.log, store.messages, EchoLLM(), authenticate=auth, config=ServerConfig(recover_grace=0))


async def call(client: httpx.AsyncClient, conv: str, endpoint: str, who: str) -> httpx.Response:
    if endpoint == "turns":
        return await client.post(f"/conversations/{conv}/turns", json={"message": f"from {who}"}, headers=headers(who))
    return await client.get(f"/conversations/{conv}/{endpoint}", headers=headers(who))


async def check_endpoint(
    client: httpx.AsyncClient, store: Any, conv: str, endpoint: str, expected: dict[str, int]
) -> None:
    for who in WHO:
        before = [rec.version async for rec in replay(store.log, conv)]
        r = await call(client, conv, endpoint, who)
        assert r.status_code == expected[who], (endpoint, who, r.text)
        if r.status_code == 404:
            # Exactly the answer for a conversation that does not exist: ids cannot be probed.
            missing = await call(client, "conv_nope", endpoint, who)
            assert r.text.replace(conv, "conv_nope") == missing.text
            assert "from owner" not in r.text
        if r.status_code == 403:
            assert r.json()["error"]["code"] == "forbidden"
        if r.status_code != 200 or endpoint != "turns":
            # Nothing but a permitted turn writes.
            assert [rec.version async for rec in replay(store.log, conv)] == before, (endpoint, who)


async def test_the_subject_rule_on_every_endpoint(store: Any) -> None:
    async with serving(service(store)) as url, httpx.AsyncClient(base_url=url, timeout=30) as client:
        r = await client.post("/conversations", json={}, headers=headers("owner"))
        conv = r.json()["id"]
        first = await client.post(
            f"/conversations/{conv}/turns", json={"message": "from owner"}, headers=headers("owner")
        )
        assert first.status_code == 200 and b"event: done" in first.content
        for endpoint, expected in EXPECTED.items():
            await check_endpoint(client, store, conv, endpoint, expected)
        # What the auditor reads is the owner's conversation.
        rows = (await client.get(f"/conversations/{conv}/messages", headers=headers("auditor"))).json()
        assert rows["messages"][0]["content"]["text"] == "from owner"


async def test_every_event_a_person_causes_names_the_principal(store: Any) -> None:
    async with serving(service(store)) as url, httpx.AsyncClient(base_url=url, timeout=30) as client:
        r = await client.post("/conversations", json={}, headers=headers("owner"))
        conv = r.json()["id"]
        for _ in range(2):
            turn = await client.post(f"/conversations/{conv}/turns", json={"message": "hi"}, headers=headers("owner"))
            assert turn.status_code == 200
    events = [rec.event async for rec in replay(store.log, conv)]
    created = events[0]
    assert isinstance(created, ConversationCreated)
    assert (created.tenant, created.subject) == ("acme", "ann")
    started = [ev for ev in events if isinstance(ev, TurnStarted)]
    assert [(s.tenant, s.subject, s.permission_level) for s in started] == [("acme", "ann", 1)] * 2


async def test_a_conversation_from_before_subjects_is_the_whole_tenants(store: Any) -> None:
    svc = service(store)
    # As written before subjects existed: a tenant, no subject.
    conv = await svc.engines["scripted"].create_conversation(model="echo", tenant="acme")
    async with serving(svc) as url, httpx.AsyncClient(base_url=url, timeout=30) as client:
        for endpoint, expected in EXPECTED_LEGACY.items():
            await check_endpoint(client, store, conv, endpoint, expected)
    # Each turn still names who started it.
    started = [rec.event async for rec in replay(store.log, conv) if isinstance(rec.event, TurnStarted)]
    assert [s.subject for s in started] == ["ann", "carl", "audrey"]


@pytest.mark.parametrize("level", [9, 10, 11])
async def test_the_auditor_level_is_a_setting(level: int) -> None:
    log, rows = InMemoryEventLog(), MemoryMessageStore()
    auth = TokenAuth({f"tok-{who}": p for who, p in PRINCIPALS.items()})
    svc = TurnService(
        log, rows, EchoLLM(), authenticate=auth, config=ServerConfig(recover_grace=0, auditor_level=level)
    )
    async with serving(svc) as url, httpx.AsyncClient(base_url=url, timeout=30) as client:
        conv = (await client.post("/conversations", json={}, headers=headers("owner"))).json()["id"]
        r = await client.get(f"/conversations/{conv}/messages", headers=headers("auditor"))  # level 10
        assert r.status_code == (200 if level <= 10 else 404)
