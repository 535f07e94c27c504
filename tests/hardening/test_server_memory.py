"""Issue 13, memory without bound: the conversation cache is bounded by bytes and entries and keeps
no title or prompt; titles and system prompts are bounded in the bodies (422 naming the field)."""

from __future__ import annotations

import gc
import sys
from typing import Any

import httpx
from turnlog.adapters.llm import EchoLLM
from turnlog.adapters.server import Principal, ServerConfig, TokenAuth, TurnService

from ..server.conftest import serving

A = {"authorization": "Bearer tok-a"}
PROMPT = "p" * 100_000


def service(store: Any, **config: Any) -> TurnService:
    auth = TokenAuth({"tok-a": Principal("acme", subject="ann"), "tok-b": Principal("globex", subject="bob")})
    cfg = ServerConfig(recover_grace=0.0, allow_system_prompt=True, **config)
    return TurnService(store.log, store.messages, EchoLLM(), authenticate=auth, config=cfg)


def reachable(root: object) -> tuple[int, int]:
    """(bytes, longest string) of everything ``root`` holds, each object counted once."""
    seen: set[int] = set()
    todo = [root]
    size = longest = 0
    while todo:
        obj = todo.pop()
        if id(obj) in seen or isinstance(obj, type):
            continue
        seen.add(id(obj))
        size += sys.getsizeof(obj)
        if isinstance(obj, str):
            longest = max(longest, len(obj))
        todo.extend(gc.get_referents(obj))
    return size, longest


async def test_the_cache_stays_within_its_bytes_and_keeps_no_prompt(store: Any) -> None:
    bound = 8_192
    svc = service(store, max_system_prompt=len(PROMPT), max_title=1_000, conversation_cache_bytes=bound)
    async with serving(svc) as url, httpx.AsyncClient(base_url=url, timeout=30) as client:
        ids = []
        for _ in range(40):  # ~4 MB of prompts: the old cache kept every one of them whole
            r = await client.post("/conversations", json={"system_prompt": PROMPT, "title": "t" * 1_000}, headers=A)
            assert r.status_code == 201, r.text
            ids.append(r.json()["id"])
            # Every read endpoint goes through the cache; the detail still shows the settings.
            assert (await client.get(f"/conversations/{ids[-1]}/messages", headers=A)).status_code == 200
            detail = (await client.get(f"/conversations/{ids[-1]}", headers=A)).json()
            assert detail["settings"]["system_prompt"] == PROMPT and detail["settings"]["title"] == "t" * 1_000
        cache = svc.tenancy.cache
        assert 0 < len(cache) < 40  # the byte bound evicted the oldest
        assert cache.bytes <= bound
        # What it really holds is within what it counts, and no text of a conversation is in it.
        size, longest = reachable(cache._items)
        assert size <= bound, (size, cache.bytes)
        assert longest < 100
        # An evicted conversation is read again from the log, and still the caller's.
        assert (await client.get(f"/conversations/{ids[0]}/messages", headers=A)).status_code == 200

    svc = service(store, conversation_cache=5)
    async with serving(svc) as url, httpx.AsyncClient(base_url=url) as client:
        for _ in range(12):
            r = await client.post("/conversations", json={}, headers=A)
            assert (await client.get(f"/conversations/{r.json()['id']}/messages", headers=A)).status_code == 200
        assert len(svc.tenancy.cache) == 5


async def test_a_long_title_or_system_prompt_is_refused_naming_the_field(store: Any) -> None:
    svc = service(store)  # the defaults: 200 characters of title, 65,536 of system prompt
    async with serving(svc) as url, httpx.AsyncClient(base_url=url) as client:
        for field, most in (("title", 200), ("system_prompt", 65_536)):
            r = await client.post("/conversations", json={field: "x" * most}, headers=A)
            assert r.status_code == 201, r.text
            r = await client.post("/conversations", json={field: "x" * (most + 1)}, headers=A)
            assert r.status_code == 422, r.text
            error = r.json()["error"]
            assert error["code"] == "invalid_body"
            assert f"<= {most}" in error["message"] and error["message"].endswith(f"- at `$.{field}`")
    svc = service(store, max_title=10)
    async with serving(svc) as url, httpx.AsyncClient(base_url=url) as client:
        r = await client.post("/conversations", json={"title": "x" * 11}, headers=A)
        assert r.status_code == 422 and "<= 10" in r.json()["error"]["message"]
