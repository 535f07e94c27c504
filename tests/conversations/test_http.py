"""GET /conversations, GET /conversations/{id} and the paged GET .../messages over real HTTP
(uvicorn on 127.0.0.1, httpx as the client), on memory, SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import msgspec
from turnlog.adapters.llm import EchoLLM
from turnlog.adapters.server import Principal, ServerConfig, TokenAuth, TurnService
from turnlog.projections import fold_summary, rebuild

from ..server.conftest import serving

PRINCIPALS = {
    "ann": Principal("acme", level=1, subject="ann"),
    "carl": Principal("acme", level=1, subject="carl"),
    # Subject "": conversations it creates belong to the whole tenant.
    "shared": Principal("acme", level=1, subject=""),
    "audrey": Principal("acme", level=10, subject="audrey"),
    # Another tenant, with ann's subject name and an auditor's level: still nothing of acme's.
    "ann@globex": Principal("globex", level=10, subject="ann"),
}


def auth(who: str) -> dict[str, str]:
    return {"authorization": f"Bearer tok-{who}"}


#: The services of the running test, newest last (``settled`` waits for the turns of the newest).
SERVICES: list[TurnService] = []


def service(store: Any, *, delay: float = 0.0, **config: Any) -> TurnService:
    tokens = TokenAuth({f"tok-{who}": p for who, p in PRINCIPALS.items()})
    cfg = ServerConfig(**{"recover_grace": 0.0, **config})
    SERVICES[:] = [TurnService(store.log, store.messages, EchoLLM(delay=delay), authenticate=tokens, config=cfg)]
    return SERVICES[0]


async def create(client: httpx.AsyncClient, who: str, title: str = "") -> str:
    r = await client.post("/conversations", json={"title": title}, headers=auth(who))
    assert r.status_code == 201, r.text
    return r.json()["id"]


async def turn(client: httpx.AsyncClient, who: str, conv: str, message: str = "hello there") -> None:
    """A whole turn, and its rows and summary saved: the stream follows the log, so its last frame
    can arrive a moment before the turn's task has saved them (``_service``)."""
    r = await client.post(f"/conversations/{conv}/turns", json={"message": message}, headers=auth(who))
    assert r.status_code == 200, r.text
    await settled()


async def settled() -> None:
    for _ in range(500):
        if not SERVICES[-1].running:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("a turn's task is still running")


async def listed(client: httpx.AsyncClient, who: str, **query: Any) -> list[dict[str, Any]]:
    """Every page, followed to the end."""
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        params = {**query, **({"cursor": cursor} if cursor else {})}
        r = await client.get("/conversations", params=params, headers=auth(who))
        assert r.status_code == 200, r.text
        items += r.json()["items"]
        cursor = r.json()["next"]
        if cursor is None:
            return items


def ids(items: list[dict[str, Any]]) -> list[str]:
    return [i["id"] for i in items]


async def test_the_list_is_newest_first_by_last_activity_with_each_summary(store: Any) -> None:
    async with serving(service(store)) as url, httpx.AsyncClient(base_url=url) as client:
        first = await create(client, "ann", "Trip to Lisbon")
        second, third = await create(client, "ann", "Grüße 👋"), await create(client, "ann")
        assert ids(await listed(client, "ann")) == [third, second, first]
        # Created: listed at once, with no turn yet.
        (item,) = [i for i in await listed(client, "ann") if i["id"] == first]
        assert item["title"] == "Trip to Lisbon" and item["created_at"] == item["updated_at"]
        assert (item["turns"], item["last_status"], item["parent"]) == (0, None, None)
        assert item["usage"] == {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
        # A turn in the oldest makes it the newest; a failed one too (an unknown tool: it still ends).
        await turn(client, "ann", first, "one two three")
        await turn(client, "ann", second, "/call nothing {}")
        items = await listed(client, "ann")
        assert ids(items) == [second, first, third]
        by_id = {i["id"]: i for i in items}
        done = by_id[first]
        assert (done["turns"], done["last_status"]) == (1, "finalized") and done["updated_at"] > done["created_at"]
        usage = done["usage"]
        assert usage["completion_tokens"] == 3 and usage["total_tokens"] == usage["prompt_tokens"] + 3
        assert by_id[second]["turns"] == 1 and by_id[second]["last_status"] in ("finalized", "failed")
        await turn(client, "ann", first, "again")
        again = {i["id"]: i for i in await listed(client, "ann")}[first]
        assert again["turns"] == 2 and again["usage"]["completion_tokens"] == 4
        # What the list shows is the summary folded from the log.
        for conv in (first, second, third):
            folded = fold_summary(conv, [rec async for rec in store.log.iter_stream(conv)])
            assert folded is not None and (await store.messages.conversations.get(conv)) == folded


async def test_paging_visits_every_conversation_once_while_others_are_created(store: Any) -> None:
    async with serving(service(store, max_conversations_page=5)) as url, httpx.AsyncClient(base_url=url) as client:
        before = [await create(client, "ann", f"c{i}") for i in range(17)]
        seen: list[str] = []
        made: list[str] = []
        cursor, pages = None, 0
        while True:
            params = {"limit": "4", **({"cursor": cursor} if cursor else {})}
            r = await client.get("/conversations", params=params, headers=auth("ann"))
            assert r.status_code == 200, r.text
            page = r.json()
            assert len(page["items"]) <= 4
            seen += ids(page["items"])
            pages += 1
            # Two new conversations between every two pages (one of them created concurrently).
            made += await asyncio.gather(create(client, "ann", "new"), create(client, "ann", "new too"))
            cursor = page["next"]
            if cursor is None:
                break
        assert seen == before[::-1] and pages == 5  # 4+4+4+4+1: every one once, in order
        assert not set(made) & set(seen)  # created behind the reader: never slipped into its pages
        # From the top again: the new ones first, then the rest, each once.
        again = ids(await listed(client, "ann", limit=3))
        assert again[: len(made)] == sorted(made, key=again.index) and again[len(made) :] == before[::-1]
        assert len(again) == len(set(again)) == 17 + len(made)


async def test_each_principal_lists_what_may_lets_it_read_and_nothing_else(store: Any) -> None:
    async with serving(service(store, max_conversations_page=3)) as url, httpx.AsyncClient(base_url=url) as client:
        made: dict[str, list[str]] = {}
        for who, n in (("ann", 3), ("carl", 2), ("shared", 1), ("ann@globex", 2), ("audrey", 1)):
            made[who] = [await create(client, who) for _ in range(n)]
        for who in ("ann", "carl"):
            await turn(client, who, made[who][0])

        async def sees(who: str) -> set[str]:
            items = await listed(client, who)
            assert len(items) == len(set(ids(items)))
            return set(ids(items))

        acme = {c for who in ("ann", "carl", "shared", "audrey") for c in made[who]}
        assert await sees("ann") == {*made["ann"], *made["shared"]}
        assert await sees("carl") == {*made["carl"], *made["shared"]}
        assert await sees("shared") == set(made["shared"])
        assert await sees("audrey") == acme  # an auditor reads the tenant's
        assert await sees("ann@globex") == set(made["ann@globex"])  # the tenant decides first
        # Each conversation's own endpoints agree: 404 where the list leaves it out.
        for who in PRINCIPALS:
            visible = await sees(who)
            for conv in {c for cs in made.values() for c in cs}:
                r = await client.get(f"/conversations/{conv}", headers=auth(who))
                assert r.status_code == (200 if conv in visible else 404), (who, conv, r.text)
                if r.status_code == 404:
                    assert r.json()["error"]["code"] == "not_found"
        r = await client.get("/conversations")
        assert r.status_code == 401


async def test_limits_and_cursors_out_of_bounds_are_422(store: Any) -> None:
    cfg = {"max_conversations_page": 5, "max_messages_page": 7}
    async with serving(service(store, **cfg)) as url, httpx.AsyncClient(base_url=url) as client:
        conv = await create(client, "ann")
        await turn(client, "ann", conv)
        r = await client.get("/conversations", params={"limit": "1"}, headers=auth("ann"))
        assert r.status_code == 200 and r.json()["next"] is None
        await create(client, "ann")
        list_cursor = (await client.get("/conversations", params={"limit": "1"}, headers=auth("ann"))).json()["next"]
        rows_cursor = (await client.get(f"/conversations/{conv}/messages?limit=1", headers=auth("ann"))).json()["next"]
        assert list_cursor and rows_cursor
        forged = "eyJub3QiOiJhIGxpc3QifQ"  # base64url of {"not":"a list"}
        bad = {
            "/conversations": [
                {"limit": "0"},
                {"limit": "6"},
                {"limit": "-1"},
                {"limit": "two"},
                {"limit": "1e3"},
                {"cursor": "!!not base64!!"},
                {"cursor": forged},
                {"cursor": rows_cursor},  # a cursor of the messages is not one of the list
            ],
            f"/conversations/{conv}/messages": [
                {"limit": "0"},
                {"limit": "8"},
                {"limit": "x"},
                {"cursor": "%%%"},
                {"cursor": list_cursor},
                {"cursor": forged},
            ],
        }
        for path, queries in bad.items():
            for query in queries:
                r = await client.get(path, params=query, headers=auth("ann"))
                assert r.status_code == 422, (path, query, r.text)
                assert r.json()["error"]["code"] == "invalid_query", (path, query)
            # The bounds themselves are fine.
            top = cfg["max_conversations_page"] if path == "/conversations" else cfg["max_messages_page"]
            for limit in ("1", str(top)):
                r = await client.get(path, params={"limit": limit}, headers=auth("ann"))
                assert r.status_code == 200, (path, limit, r.text)


async def test_a_conversation_shows_its_settings_and_its_state(store: Any) -> None:
    async with serving(service(store, delay=0.01, allow_system_prompt=True)) as url:
        async with httpx.AsyncClient(base_url=url) as client:
            body = {"title": "Plans", "system_prompt": "Be brief.", "temperature": 0.5, "max_tokens": 64}
            r = await client.post("/conversations", json={**body, "thinking": True}, headers=auth("ann"))
            conv = r.json()["id"]
            r = await client.get(f"/conversations/{conv}", headers=auth("ann"))
            assert r.status_code == 200, r.text
            detail = r.json()
            assert detail["id"] == conv
            settings = detail["settings"]
            assert {k: settings[k] for k in body} == body
            assert settings["thinking"] is True and (settings["tenant"], settings["subject"]) == ("acme", "ann")
            assert settings["provider"] == "scripted" and "model" in settings
            (item,) = await listed(client, "ann")
            assert detail["state"] == {**item, "live": False}
            # While a turn runs, it is live; the auditor sees the same.
            async with client.stream(
                "POST", f"/conversations/{conv}/turns", json={"message": "a b c d e f g h i j"}, headers=auth("ann")
            ) as stream:
                assert stream.status_code == 200
                checked = False
                async for _ in stream.aiter_raw():
                    if not checked:  # the turn has started and is streaming
                        for who in ("ann", "audrey"):
                            state = (await client.get(f"/conversations/{conv}", headers=auth(who))).json()["state"]
                            assert state["live"] is True and (state["turns"], state["last_status"]) == (1, "live")
                        checked = True
                assert checked
            await settled()
            state = (await client.get(f"/conversations/{conv}", headers=auth("ann"))).json()["state"]
            (item,) = await listed(client, "ann")
            assert state == {**item, "live": False} and item["last_status"] == "finalized"
            assert (await client.get(f"/conversations/{conv}", headers=auth("carl"))).status_code == 404
            assert (await client.get("/conversations/nope", headers=auth("ann"))).status_code == 404


async def test_message_pages_put_together_are_the_rows(store: Any) -> None:
    async with serving(service(store, max_messages_page=50)) as url, httpx.AsyncClient(base_url=url) as client:
        conv = await create(client, "ann")
        for i in range(5):
            await turn(client, "ann", conv, f"message {i} ü")
        whole = (await client.get(f"/conversations/{conv}/messages", headers=auth("ann"))).json()
        assert whole["next"] is None and whole["conversation_id"] == conv and len(whole["messages"]) == 10
        rows = await store.messages.rows(conv)
        assert [(m["id"], m["seq"], json.dumps(m["content"], ensure_ascii=False)) for m in whole["messages"]] == [
            (r.id, r.seq, r.content) for r in rows
        ]
        for limit in (1, 3, 4, 10):
            got, cursor, pages = [], None, 0
            while True:
                params = {"limit": str(limit), **({"cursor": cursor} if cursor else {})}
                r = await client.get(f"/conversations/{conv}/messages", params=params, headers=auth("ann"))
                assert r.status_code == 200 and r.json()["conversation_id"] == conv
                got += r.json()["messages"]
                pages += 1
                cursor = r.json()["next"]
                if cursor is None:
                    break
            assert got == whole["messages"] and pages == -(-10 // limit), limit
        assert (await client.get(f"/conversations/{conv}/messages", headers=auth("carl"))).status_code == 404


async def test_the_list_after_a_rebuild_is_the_live_list(store: Any) -> None:
    async with serving(service(store)) as url, httpx.AsyncClient(base_url=url) as client:
        convs = [await create(client, who) for who in ("ann", "ann", "shared", "carl")]
        for conv, who in zip(convs, ("ann", "ann", "shared", "carl"), strict=True):
            await turn(client, who, conv, "/call lookup {}" if conv == convs[1] else "hi there")
        await turn(client, "ann", convs[0], "more")
        live = {who: await listed(client, who) for who in ("ann", "audrey", "carl")}
        await rebuild(store.log, store.messages)
        assert {who: await listed(client, who) for who in live} == live
        for conv in convs:
            kept = await store.messages.conversations.get(conv)
            assert kept == fold_summary(conv, [rec async for rec in store.log.iter_stream(conv)])


async def test_a_server_fills_an_empty_index_from_the_log_at_start(store: Any) -> None:
    async with serving(service(store)) as url, httpx.AsyncClient(base_url=url) as client:
        convs = [await create(client, "ann") for _ in range(3)]
        await turn(client, "ann", convs[1])
        live = await listed(client, "ann")
    await store.messages.conversations.clear()  # as after `turnlog db upgrade` to revision 0006
    assert await store.messages.conversations.empty()
    async with serving(service(store)) as url, httpx.AsyncClient(base_url=url) as client:
        assert await listed(client, "ann") == live
    assert msgspec.json.encode(live)  # plain JSON throughout
