"""The auth hook receives the request (cookies and sessions work, not only bearer tokens); the
tokens file names a subject per token; ``turnlog serve --auditor-level`` sets who audits."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.requests import Request
from turnlog.adapters.llm import EchoLLM
from turnlog.adapters.server import Principal, ServerConfig, TokenAuth, TurnService, bearer_token, open_access
from turnlog.engine import ConfigError, ConversationCreated, TurnStarted, replay

from ..server.conftest import ServeProcess, serving


def request_with(*headers: tuple[str, str]) -> Request:
    return Request({"type": "http", "headers": [(k.encode(), v.encode()) for k, v in headers]})


def test_token_auth_reads_the_bearer_token_from_the_request() -> None:
    ann = Principal("acme", level=2, subject="ann")
    auth = TokenAuth({"tok-ann": ann, "tok-bob": Principal("acme", subject="bob")})
    assert auth(request_with(("authorization", "Bearer tok-ann"))) == ann
    assert auth(request_with(("authorization", "bearer  tok-ann "))) == ann
    for headers in [(), (("authorization", "Bearer nope"),), (("authorization", "Basic tok-ann"),)]:
        assert auth(request_with(*headers)) is None
    assert bearer_token(request_with(("authorization", "Bearer "))) is None
    assert open_access(request_with()) == Principal("", level=1, subject="")


async def test_a_session_cookie_authenticator(store: Any) -> None:
    sessions = {"s-ann": Principal("acme", subject="ann")}

    async def by_session(request: Request) -> Principal | None:
        return sessions.get(request.cookies.get("session", ""))

    svc = TurnService(
        store.log, store.messages, EchoLLM(), authenticate=by_session, config=ServerConfig(recover_grace=0)
    )
    async with serving(svc) as url:
        async with httpx.AsyncClient(base_url=url, cookies={"session": "s-ann"}) as client:
            conv = (await client.post("/conversations", json={})).json()["id"]
            assert (await client.post(f"/conversations/{conv}/turns", json={"message": "hi"})).status_code == 200
            assert (await client.get(f"/conversations/{conv}/messages")).status_code == 200
        async with httpx.AsyncClient(base_url=url, cookies={"session": "s-stolen"}) as client:
            r = await client.get(f"/conversations/{conv}/messages")
            assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
            assert r.json()["error"] == {"status": 401, "code": "unauthorized", "message": "missing bearer token"}
    events = [rec.event async for rec in replay(store.log, conv)]
    assert [(ev.tenant, ev.subject) for ev in events if isinstance(ev, ConversationCreated | TurnStarted)] == [
        ("acme", "ann"),
        ("acme", "ann"),
    ]


def test_the_tokens_file_names_a_subject_per_token(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    path.write_text(json.dumps({"tok-1": {"tenant": "acme", "subject": "ann", "level": 3}}))
    assert TokenAuth.from_file(path)(request_with(("authorization", "Bearer tok-1"))) == Principal("acme", 3, "ann")
    path.write_text(json.dumps({"tok-1": {"tenant": "acme", "subject": ""}}))  # the whole tenant, on purpose
    assert TokenAuth.from_file(path)(request_with(("authorization", "Bearer tok-1"))) == Principal("acme", 1, "")
    for entry, words in [
        ({"tenant": "acme", "level": 2}, "subject"),  # forgotten: refused, not silently tenant-wide
        ({"tenant": "acme", "subject": "ann", "role": "x"}, "role"),
        ({"tenant": "acme", "subject": 7}, "subject"),
    ]:
        path.write_text(json.dumps({"ok": {"tenant": "a", "subject": "b"}, "secret-token": entry}))
        with pytest.raises(ConfigError, match=words) as err:
            TokenAuth.from_file(path)
        assert "token #2" in str(err.value) and "secret-token" not in str(err.value)


def test_turnlog_serve_takes_subjects_and_the_auditor_level(tmp_path: Path) -> None:
    tokens = {
        "tok-ann": {"tenant": "acme", "subject": "ann"},
        "tok-carl": {"tenant": "acme", "subject": "carl", "level": 4},
        "tok-audrey": {"tenant": "acme", "subject": "audrey", "level": 5},
    }
    (tmp_path / "tokens.json").write_text(json.dumps(tokens))
    args = ("--tokens", str(tmp_path / "tokens.json"), "--auditor-level", "5", "--recover-grace", "0")
    server = ServeProcess(str(tmp_path / "t.db"), tmp_path, *args)
    try:
        server.wait_ready()
        with httpx.Client(base_url=server.url, timeout=30) as client:

            def as_(token: str) -> dict[str, str]:
                return {"authorization": f"Bearer {token}"}

            conv = client.post("/conversations", json={}, headers=as_("tok-ann")).json()["id"]
            assert client.get(f"/conversations/{conv}/messages", headers=as_("tok-carl")).status_code == 404
            assert client.get(f"/conversations/{conv}/messages", headers=as_("tok-audrey")).status_code == 200
            assert client.get(f"/conversations/{conv}/requests", headers=as_("tok-audrey")).status_code == 200
    finally:
        server.stop()
