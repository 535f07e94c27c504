"""GET /usage over real HTTP (uvicorn on 127.0.0.1, httpx), on memory, SQLite and PostgreSQL: who
may read it, that it never crosses a tenant, its query checks, and that its figures are the
usage the log recorded, priced by the server's table."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import httpx
from turnlog.adapters.llm import EchoLLM
from turnlog.adapters.server import Principal, ServerConfig, TokenAuth, TurnService
from turnlog.engine import UsageRecorded, replay
from turnlog.projections import PriceTable, rebuild

from ..server.conftest import serving

PRINCIPALS = {
    "ann": Principal("acme", level=1, subject="ann"),
    "bob": Principal("acme", level=1, subject="bob"),
    "boss": Principal("acme", level=100, subject="boss"),
    "gil": Principal("globex", level=1, subject="gil"),
    "gboss": Principal("globex", level=100, subject="gboss"),
}


def auth(who: str) -> dict[str, str]:
    return {"authorization": f"Bearer tok-{who}"}


async def settled(service: TurnService) -> None:
    for _ in range(500):
        if not service.running:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("a turn's task is still running")


async def recorded(store: Any, convs: list[str]) -> tuple[int, int, int]:
    """The usage the log holds for these conversations: (prompt, completion, total)."""
    p = c = t = 0
    for conv in convs:
        async for rec in replay(store.log, conv):
            if isinstance(rec.event, UsageRecorded):
                p, c, t = p + rec.event.prompt_tokens, c + rec.event.completion_tokens, t + rec.event.total_tokens
    return p, c, t


async def test_usage_is_the_tenants_own_and_matches_the_log(store) -> None:
    tokens = TokenAuth({f"tok-{who}": p for who, p in PRINCIPALS.items()})
    prices = PriceTable.parse({"models": {"echo-1": {"input": "3", "output": "15"}}})
    cfg = ServerConfig(recover_grace=0.0, prices=prices, allowed_models=("echo-1",))
    service = TurnService(store.log, store.messages, EchoLLM(), authenticate=tokens, config=cfg)
    convs: dict[str, list[str]] = {"acme": [], "globex": []}
    async with serving(service) as url, httpx.AsyncClient(base_url=url, timeout=10) as client:
        for who, tenant, turns in (("ann", "acme", 2), ("bob", "acme", 1), ("gil", "globex", 3)):
            r = await client.post("/conversations", json={"model": "echo-1"}, headers=auth(who))
            conv = r.json()["id"]
            convs[tenant].append(conv)
            for i in range(turns):
                r = await client.post(
                    f"/conversations/{conv}/turns", json={"message": f"hello number {i} " * (i + 1)}, headers=auth(who)
                )
                assert r.status_code == 200, r.text
                await settled(service)

        # Below the usage level: 403, even for one's own conversations.
        r = await client.get("/usage", headers=auth("ann"))
        assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
        assert (await client.get("/usage")).status_code == 401

        by_subject = (await client.get("/usage", params={"by": "subject"}, headers=auth("boss"))).json()
        assert by_subject["by"] == "subject" and by_subject["currency"] == "USD"
        assert {(r["tenant"], r["key"]) for r in by_subject["rows"]} == {("acme", "ann"), ("acme", "bob")}
        assert [r["calls"] for r in by_subject["rows"]] == [2, 1]

        for who, tenant in (("boss", "acme"), ("gboss", "globex")):
            body = (await client.get("/usage", params={"by": "tenant"}, headers=auth(who))).json()
            assert [r["key"] for r in body["rows"]] == [tenant]  # never another tenant's
            row = body["rows"][0]
            prompt, completion, total = await recorded(store, convs[tenant])
            assert (row["prompt_tokens"], row["completion_tokens"], row["total_tokens"]) == (prompt, completion, total)
            assert Decimal(row["cost"]) == (prompt * Decimal(3) + completion * Decimal(15)) / Decimal(1_000_000)
            assert row["unpriced"] == []

        by_conv = (await client.get("/usage", headers=auth("gboss"))).json()["rows"]
        assert [r["key"] for r in by_conv] == convs["globex"]

        # The time range: nothing before the first turn's day, nothing up to it (exclusive).
        days = (await client.get("/usage", params={"by": "day"}, headers=auth("boss"))).json()["rows"]
        day = days[0]["key"]
        assert (await client.get("/usage", params={"until": day}, headers=auth("boss"))).json()["rows"] == []
        assert len((await client.get("/usage", params={"since": day}, headers=auth("boss"))).json()["rows"]) == 2

        for query in ({"by": "planet"}, {"since": "last week"}, {"until": "2026-13"}, {"tenant": "globex"}):
            r = await client.get("/usage", params=query, headers=auth("boss"))
            assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_query", (query, r.text)

    # The ledger the turns kept is the ledger rebuilt from the log.
    live = await store.messages.usage.entries()
    assert len(live) == 6
    fresh = store.fresh_messages()
    await rebuild(store.log, fresh)
    assert await fresh.usage.entries() == live
