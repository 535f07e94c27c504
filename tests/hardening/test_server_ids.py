"""Issue 13, ids: a NUL byte (or any id turnlog could never have stored) in a conversation id
answered 500 with a traceback on PostgreSQL and 404 on SQLite. One rule checks every ``{id}``
before any store is touched: 404 ``not_found`` on every store, for every endpoint."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import pytest
from turnlog.adapters.llm import EchoLLM
from turnlog.adapters.server import Principal, ServerConfig, TokenAuth, TurnService

from ..server.conftest import serving

A = {"authorization": "Bearer tok-a"}

#: Every route with an ``{id}``, as (method, path, body).
ENDPOINTS = [
    ("POST", "/conversations/{id}/turns", {"message": "hi"}),
    ("POST", "/conversations/{id}/cancel", {}),
    ("GET", "/conversations/{id}/events", None),
    ("GET", "/conversations/{id}", None),
    ("GET", "/conversations/{id}/messages", None),
    ("GET", "/conversations/{id}/verify", None),
    ("GET", "/conversations/{id}/requests", None),
]
#: Ids no store ever held, percent-encoded as a client sends them: a NUL byte (alone, inside a
#: minted id, at the end), other control characters, DEL, a format character (U+202E), an id
#: of 201 characters.
BAD_IDS = ["%00", "conv_%00abc", "conv_1%00", "conv%01", "conv%0A", "conv%1B", "conv%7F", "conv%E2%80%AE", "c" * 201]


def service(store: Any) -> TurnService:
    auth = TokenAuth({"tok-a": Principal("acme", level=10, subject="ann")})  # an auditor: every route answers
    return TurnService(store.log, store.messages, EchoLLM(), authenticate=auth, config=ServerConfig(recover_grace=0))


def spy_reads(log: Any) -> list[str]:
    """The streams the log is asked to read from now on (``read`` and ``iter_stream``)."""
    calls: list[str] = []
    for name in ("read", "iter_stream", "last"):
        real = getattr(log, name)

        def spy(stream_id: str, *args: Any, _real: Any = real, **kwargs: Any) -> Any:
            calls.append(stream_id)
            return _real(stream_id, *args, **kwargs)

        setattr(log, name, spy)
    return calls


async def test_an_id_no_store_could_hold_is_404_before_any_store_is_touched(store: Any) -> None:
    svc = service(store)
    async with serving(svc) as url, httpx.AsyncClient(base_url=url) as client:
        real = (await client.post("/conversations", json={}, headers=A)).json()["id"]
        assert (await client.get(f"/conversations/{real}", headers=A)).status_code == 200
        reads = spy_reads(store.log)
        for method, path, body in ENDPOINTS:
            for bad in BAD_IDS:
                r = await client.request(method, path.replace("{id}", bad), json=body, headers=A)
                assert r.status_code == 404, (method, path, bad, r.text)
                error = r.json()["error"]
                assert error["code"] == "not_found" and error["message"].startswith("no conversation "), error
        assert reads == []
        # A missing id that follows the rule reaches the store and is the same 404.
        r = await client.get("/conversations/conv_missing", headers=A)
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
        assert reads == ["conv_missing"]
        # The real one still answers, and a 200-character id is a valid one (merely missing).
        assert (await client.get(f"/conversations/{real}/verify", headers=A)).status_code == 200
        assert (await client.get("/conversations/" + "c" * 200, headers=A)).status_code == 404


@pytest.mark.parametrize(
    ("path", "position"),
    [
        ("/conversations", ["2026-01-01T00:00:00Z", "conv\x00x"]),
        ("/conversations", ["2026-01-01\x00", "conv_x"]),
        ("/conversations/{id}/messages", [1 << 40]),  # past PostgreSQL's integer: 500 before
        ("/conversations/{id}/messages", [1 << 70]),  # past SQLite's: 500 before
    ],
)
async def test_a_cursor_no_store_could_hold_is_refused_as_any_foreign_cursor(
    store: Any, path: str, position: list[Any]
) -> None:
    raw = base64.urlsafe_b64encode(json.dumps(position).encode()).rstrip(b"=").decode()
    async with serving(service(store)) as url, httpx.AsyncClient(base_url=url) as client:
        conv = (await client.post("/conversations", json={}, headers=A)).json()["id"]
        r = await client.get(path.replace("{id}", conv), params={"cursor": raw}, headers=A)
        assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_query", r.text


@pytest.mark.parametrize("title", ["a\x00b", "line\nbreak", "bell\x07", "c1\x85"])
async def test_a_title_holding_a_control_character_is_refused_on_every_store(store: Any, title: str) -> None:
    # A NUL in a title was accepted (201), then PostgreSQL could not index the conversation: it
    # was never listed and every read of its messages answered 500.
    async with serving(service(store)) as url, httpx.AsyncClient(base_url=url) as client:
        r = await client.post("/conversations", json={"title": title}, headers=A)
        assert r.status_code == 422, r.text
        error = r.json()["error"]
        assert error["code"] == "invalid_body" and error["message"].endswith("- at `$.title`")
        # Text that only looks unusual is a title: an emoji joined by U+200D, accents, tabs aside.
        r = await client.post("/conversations", json={"title": "Famille 👨\u200d👩\u200d👧 é"}, headers=A)
        assert r.status_code == 201, r.text
        listed = (await client.get("/conversations", headers=A)).json()["items"]
        assert [item["title"] for item in listed] == ["Famille 👨\u200d👩\u200d👧 é"]
