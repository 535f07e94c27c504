"""What the console's audit page reads (GET .../log, .../checkpoint, .../export) and the console's
own routes (at the root and under a mount path), over HTTP on every store."""

from __future__ import annotations

import asyncio
import re
import sqlite3
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from turnlog.adapters.llm import EchoLLM
from turnlog.adapters.server import Principal, ServerConfig, TokenAuth, TurnService, mount
from turnlog.adapters.signing import Ed25519Signer
from turnlog.engine import create_checkpoint, export_conversation, replay, verify_export

from .conftest import serving

A = {"authorization": "Bearer tok-a"}
B = {"authorization": "Bearer tok-b"}
CONSOLE = Path(__file__).resolve().parents[2] / "adapters" / "server" / "console"


def service(store: Any, **config: Any) -> TurnService:
    auth = TokenAuth({"tok-a": Principal("acme", subject="ann"), "tok-b": Principal("globex", subject="bob")})
    return TurnService(
        store.log, store.messages, EchoLLM(), authenticate=auth, config=ServerConfig(recover_grace=0.0, **config)
    )


async def conversation(client: httpx.AsyncClient, *messages: str) -> str:
    r = await client.post("/conversations", json={"title": "t"}, headers=A)
    assert r.status_code == 201, r.text
    conv = r.json()["id"]
    for message in messages:
        r = await client.post(f"/conversations/{conv}/turns", json={"message": message}, headers=A)
        assert r.status_code == 200, r.text
    return conv


async def test_log_pages_are_the_stored_events_in_order(store: Any) -> None:
    async with serving(service(store)) as url, httpx.AsyncClient(base_url=url) as client:
        conv = await conversation(client, "one two", "three four")
        got, after = [], 0
        while True:
            r = await client.get(f"/conversations/{conv}/log", params={"after": after, "limit": 3}, headers=A)
            assert r.status_code == 200, r.text
            page = r.json()
            assert page["broken"] is None and len(page["events"]) <= 3
            got += page["events"]
            if page["next"] is None:
                break
            after = page["next"]
        events = [rec async for rec in replay(store.log, conv)]
        assert [(e["version"], e["type"], e["hash"], e["prev_hash"]) for e in got] == [
            (r.version, r.type, r.hash, r.prev_hash) for r in events
        ]
        actors = {e["type"]: e["actor"] for e in got}
        assert actors["conversation_created"] == actors["turn_started"] == "ann@acme"
        assert actors["text_delta"] == "model" and actors["turn_finalized"] == "turnlog"
        assert got[1]["data"]["user_message"] == "one two"
        # Past the end: an empty last page. Bad queries and other tenants: the usual answers.
        r = await client.get(f"/conversations/{conv}/log?after=999", headers=A)
        assert r.json() == {"conversation_id": conv, "events": [], "next": None, "broken": None}
        assert (await client.get(f"/conversations/{conv}/log?after=-1", headers=A)).status_code == 422
        assert (await client.get(f"/conversations/{conv}/log?limit=501", headers=A)).status_code == 422
        assert (await client.get(f"/conversations/{conv}/log", headers=B)).status_code == 404
        assert (await client.get(f"/conversations/{conv}/log")).status_code == 401


def _forge(db: Path, conv: str, version: int) -> None:
    with sqlite3.connect(db, timeout=10) as con:
        (payload,) = con.execute(
            "SELECT payload FROM turnlog_events WHERE stream_id = ? AND version = ?", (conv, version)
        ).fetchone()
        forged = bytes(payload).replace(b'"subject":"ann"', b'"subject":"eve"')
        assert forged != payload
        con.execute(
            "UPDATE turnlog_events SET payload = ? WHERE stream_id = ? AND version = ?", (forged, conv, version)
        )


@pytest.mark.parametrize("store", ["sqlite"], indirect=True)
async def test_a_log_page_stops_before_a_broken_link_and_names_it(store: Any, tmp_path: Path) -> None:
    async with serving(service(store)) as url, httpx.AsyncClient(base_url=url) as client:
        conv = await conversation(client, "first", "second")
        versions = [rec.version async for rec in replay(store.log, conv) if rec.type == "turn_started"]
        # From a thread: the server shares this event loop and may hold SQLite's write lock.
        await asyncio.to_thread(_forge, tmp_path / "turnlog.db", conv, versions[1])
        page = (await client.get(f"/conversations/{conv}/log", headers=A)).json()
        assert [e["version"] for e in page["events"]] == list(range(1, versions[1]))
        assert f"first broken link at version {versions[1]}" in page["broken"]
        assert page["next"] is None
        # After the break, nothing: the forged subject is never served.
        page = (await client.get(f"/conversations/{conv}/log?after={versions[1]}", headers=A)).json()
        assert page["events"] == [] and page["broken"]
        assert (await client.get(f"/conversations/{conv}/verify", headers=A)).status_code == 409


async def test_checkpoint_status_and_export(store: Any) -> None:
    signer = Ed25519Signer.generate()
    async with serving(service(store)) as url, httpx.AsyncClient(base_url=url) as client:
        conv = await conversation(client, "first")
        status = (await client.get(f"/conversations/{conv}/checkpoint", headers=A)).json()
        assert status == {
            "conversation_id": conv,
            "status": "none",
            "anchored": 0,
            "events": status["events"],
            "checkpoint": None,
        }
        r = await client.get(f"/conversations/{conv}/export", headers=A)
        assert r.status_code == 409 and r.json()["error"]["code"] == "no_checkpoint"

        cp = await create_checkpoint(store.log, signer, origin="test")
        status = (await client.get(f"/conversations/{conv}/checkpoint", headers=A)).json()
        assert status["status"] == "anchored" and status["anchored"] == status["events"]
        assert status["checkpoint"]["root"] == cp.root and status["checkpoint"]["origin"] == "test"
        covered = status["events"]

        # Another conversation in between, then a turn the checkpoint does not cover.
        await conversation(client, "other")
        r = await client.post(f"/conversations/{conv}/turns", json={"message": "later"}, headers=A)
        assert r.status_code == 200
        status = (await client.get(f"/conversations/{conv}/checkpoint", headers=A)).json()
        assert status["status"] == "partial" and status["anchored"] == covered and status["events"] > covered

        r = await client.get(f"/conversations/{conv}/export", headers=A)
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("application/jsonl")
        assert r.headers["content-disposition"] == f'attachment; filename="{conv}.jsonl"'
        assert r.content == b"".join([line async for line in export_conversation(store.log, conv)])
        report = verify_export(r.content.splitlines(), [signer.verifier])
        assert report.ok and report.anchored == covered
        assert (await client.get(f"/conversations/{conv}/export", headers=B)).status_code == 404


def test_the_console_uses_only_relative_urls() -> None:
    # Relative URLs are what make the console work under a mount path.
    html = (CONSOLE / "index.html").read_text()
    assert not re.search(r'(?:src|href)="/', html)
    script = (CONSOLE / "app.js").read_text()
    assert not re.search(r"""fetch\(\s*["'`]/|api\(\s*["'`]/|getJSON\(\s*["'`]/""", script)
    # The token is never put in a URL.
    assert not re.search(r"[?&](?:token|access_token)=", script)


async def test_the_console_is_served_at_the_root_and_under_a_mount_path(store: Any) -> None:
    async with serving(service(store)) as url, httpx.AsyncClient(base_url=url) as client:
        r = await client.get("/")
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
        assert "default-src 'self'" in r.headers["content-security-policy"]
        assert 'src="console/app.js"' in r.text
        for name, kind in (("app.js", "javascript"), ("style.css", "text/css"), ("icon.svg", "image/svg+xml")):
            r = await client.get(f"/console/{name}")
            assert r.status_code == 200 and kind in r.headers["content-type"], name
        assert (await client.get("/console/nothing.js")).status_code == 404
        assert "/" not in (await client.get("/openapi.json")).json()["paths"]

    host = Starlette()
    mount(host, "/chat", service(store))
    transport = httpx.ASGITransport(app=host)
    async with (
        host.router.lifespan_context(host),
        httpx.AsyncClient(transport=transport, base_url="http://host") as client,
    ):
        r = await client.get("/chat/")
        assert r.status_code == 200 and 'href="console/style.css"' in r.text
        assert (await client.get("/chat/console/app.js")).status_code == 200
        r = await client.get("/chat", follow_redirects=True)
        assert r.status_code == 200 and str(r.url).endswith("/chat/")
        assert (await client.get("/chat/conversations", headers=A)).status_code == 200
