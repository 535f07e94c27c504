"""What the model was sent: ``GET /conversations/{id}/requests`` rebuilds every request body from
the log, renders it with the LLM the conversation's provider maps to on this server, and says
whether it matches the digest recorded when it was sent. Auditors only."""

from __future__ import annotations

from typing import Any

import httpx
from turnlog.adapters.llm import EchoLLM
from turnlog.adapters.server import Principal, ServerConfig, TokenAuth, TurnService
from turnlog.engine import LLM, LLMRequest, ToolRegistry, TurnEngine, check_requests

from ..server.conftest import serving

OWNER = {"authorization": "Bearer tok-ann"}
AUDITOR = {"authorization": "Bearer tok-audrey"}
AUTH = TokenAuth(
    {
        "tok-ann": Principal("acme", level=1, subject="ann"),
        "tok-audrey": Principal("acme", level=10, subject="audrey"),
    }
)


class OtherEcho(EchoLLM):
    """Another provider whose bodies differ from EchoLLM's: a digest matches only when the
    request is rendered by this one."""

    provider = "other"

    def render(self, request: LLMRequest) -> bytes:
        return b'{"via":"other",' + super().render(request)[1:]


class DriftingEcho(EchoLLM):
    """An adapter whose bodies change between renders: the log no longer explains what was sent."""

    def __init__(self) -> None:
        super().__init__()
        self.renders = 0

    def render(self, request: LLMRequest) -> bytes:
        self.renders += 1
        return super().render(request)[:-1] + b',"render":%d}' % self.renders


def tools() -> ToolRegistry:
    registry = ToolRegistry()

    def lookup(key: str) -> str:
        return key.upper()

    registry.register(lookup)
    return registry


def service(store: Any, llms: dict[str, LLM]) -> TurnService:
    return TurnService(
        store.log,
        store.messages,
        llms,
        tools=tools(),
        authenticate=AUTH,
        # The client names the models and the system prompt: the server's policy must allow it.
        config=ServerConfig(recover_grace=0, allowed_models=("echo", "echo-2"), allow_system_prompt=True),
    )


async def converse(client: httpx.AsyncClient, provider: str) -> str:
    conv = (
        await client.post(
            "/conversations", json={"provider": provider, "model": "echo", "system_prompt": "Be brief."}, headers=OWNER
        )
    ).json()["id"]
    for body in (
        {"message": '/call lookup {"key": "k"}', "enabled_tools": ["lookup"], "thinking": True},
        {"message": "and now?", "model": "echo-2"},
    ):
        r = await client.post(f"/conversations/{conv}/turns", json=body, headers=OWNER)
        assert r.status_code == 200 and b"event: done" in r.content, r.text
    return conv


async def test_the_auditor_gets_every_request_rebuilt_and_checked(store: Any) -> None:
    llms: dict[str, LLM] = {"scripted": EchoLLM(), "other": OtherEcho()}
    async with serving(service(store, llms)) as url, httpx.AsyncClient(base_url=url, timeout=30) as client:
        for provider, llm in llms.items():
            conv = await converse(client, provider)
            r = await client.get(f"/conversations/{conv}/requests", headers=AUDITOR)
            assert r.status_code == 200, r.text
            answer = r.json()
            assert answer["conversation_id"] == conv
            got = answer["requests"]
            # Turn 1: the tool call, then the answer after its result; turn 2: one call.
            assert [(q["iteration"], q["model"]) for q in got] == [(1, "echo"), (2, "echo"), (1, "echo-2")]
            assert len({q["turn_id"] for q in got}) == 2
            assert all(q["match"] and q["sha256"] == q["recorded_sha256"] for q in got)
            # The same digests as the engine's own check, with the provider's LLM.
            checks = await check_requests(store.log, conv, llm)
            assert [(c.version, c.recorded_sha256) for c in checks] == [(q["version"], q["sha256"]) for q in got]
            # The bodies are the provider's, as JSON.
            first, second, third = (q["body"] for q in got)
            assert first.get("via") == ("other" if provider == "other" else None)
            assert [m["role"] for m in first["messages"]] == ["system", "user"]
            assert first["thinking"] is True and [t["function"]["name"] for t in first["tools"]] == ["lookup"]
            assert second["messages"][-1] == {"role": "tool", "tool_call_id": "call_1", "content": "K"}
            assert third["model"] == "echo-2" and third["messages"][-1] == {"role": "user", "content": "and now?"}
            # The owner (not an auditor) may read the conversation, not its requests.
            denied = await client.get(f"/conversations/{conv}/requests", headers=OWNER)
            assert denied.status_code == 403 and denied.json()["error"]["code"] == "forbidden"
            assert "auditor" in denied.json()["error"]["message"]


async def test_a_request_the_log_does_not_explain_is_shown_as_a_mismatch(store: Any) -> None:
    async with (
        serving(service(store, {"scripted": DriftingEcho()})) as url,
        httpx.AsyncClient(base_url=url, timeout=30) as client,
    ):
        conv = (await client.post("/conversations", json={}, headers=OWNER)).json()["id"]
        assert (await client.post(f"/conversations/{conv}/turns", json={"message": "hi"}, headers=OWNER)).is_success
        [q] = (await client.get(f"/conversations/{conv}/requests", headers=AUDITOR)).json()["requests"]
    assert q["match"] is False and q["sha256"] != q["recorded_sha256"]
    assert q["body"]["render"] == 2  # rendered again for the audit, not the body that was sent


async def test_a_provider_this_server_does_not_have_is_a_conflict(store: Any) -> None:
    gone = await TurnEngine(store.log, OtherEcho()).create_conversation(tenant="acme", subject="ann")
    async with serving(service(store, {"scripted": EchoLLM()})) as url, httpx.AsyncClient(base_url=url) as client:
        r = await client.get(f"/conversations/{gone}/requests", headers=AUDITOR)
    assert r.status_code == 409 and r.json()["error"]["code"] == "provider_unavailable"
    assert "'other'" in r.json()["error"]["message"]


async def test_requests_come_in_pages_with_a_bounded_size(store: Any) -> None:
    async with (
        serving(service(store, {"scripted": EchoLLM()})) as url,
        httpx.AsyncClient(base_url=url, timeout=30) as client,
    ):
        conv = await converse(client, "scripted")
        whole = (await client.get(f"/conversations/{conv}/requests", headers=AUDITOR)).json()
        assert whole["next"] is None and len(whole["requests"]) == 3
        got, after = [], 0
        while True:
            page = (await client.get(f"/conversations/{conv}/requests?limit=2&after={after}", headers=AUDITOR)).json()
            got += page["requests"]
            assert len(page["requests"]) <= 2
            if page["next"] is None:
                break
            after = page["next"]
        assert got == whole["requests"]
        for bad in ("limit=0", "limit=21", "limit=x", "after=-1"):
            r = await client.get(f"/conversations/{conv}/requests?{bad}", headers=AUDITOR)
            assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_query", bad
