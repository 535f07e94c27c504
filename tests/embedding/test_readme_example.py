"""The README's "Embedding in your app" example runs as written: served by uvicorn, it answers under
/chat with its own auth, and a turn calls its own tool (the model: a fake provider on 127.0.0.1)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from turnlog.adapters.llm import LocalServer, Reply, Request

from .conftest import serving

README = Path(__file__).resolve().parents[2] / "README.md"


def example() -> str:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    (block,) = [b for b in blocks if 'mount(app, "/chat"' in b]
    return block


def sse(*chunks: dict[str, Any]) -> bytes:
    return b"".join(b"data: " + json.dumps(c).encode() + b"\n\n" for c in chunks) + b"data: [DONE]\n\n"


def model(request: Request) -> Reply:
    last = json.loads(request.body)["messages"][-1]
    if last["role"] == "user":
        call = {"index": 0, "id": "call_1", "function": {"name": "order_status", "arguments": '{"order": "A7"}'}}
        return Reply(
            body=sse({"choices": [{"index": 0, "delta": {"tool_calls": [call]}, "finish_reason": "tool_calls"}]})
        )
    text = {"choices": [{"index": 0, "delta": {"content": f"Order: {last['content']}"}, "finish_reason": "stop"}]}
    return Reply(body=sse(text))


async def test_the_readme_embedding_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, Any] = {"__name__": "readme_example"}
    exec(compile(example(), "README.md", "exec"), namespace)
    async with LocalServer(model) as provider:
        monkeypatch.setenv("OPENAI_BASE_URL", provider.url + "/v1")
        monkeypatch.setenv("OPENAI_API_KEY", "sk-readme")
        async with serving(namespace["app"]) as url, httpx.AsyncClient(base_url=url, timeout=30) as client:
            assert (await client.post("/chat/conversations", json={})).status_code == 401
            r = await client.post("/chat/conversations", json={}, headers={"x-user": "ann"})
            assert r.status_code == 201 and r.headers["location"] == f"/chat/conversations/{r.json()['id']}"
            turn = await client.post(
                f"{r.headers['location']}/turns",
                json={"message": "where is A7?", "enabled_tools": ["order_status"]},
                headers={"x-user": "ann"},
            )
            assert turn.status_code == 200, turn.text
            assert b'"name":"order_status"' in turn.content and b"shipped" in turn.content
            assert b"event: done" in turn.content
    assert (tmp_path / "chat.db").exists()
