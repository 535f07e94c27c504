"""``turnlog replay CONVERSATION --format requests``: every model call rebuilt from the log, with
its header and its exact body. Against a fake OpenAI-compatible provider on 127.0.0.1, the
printed bodies are byte for byte what the provider received; rendered by an adapter configured
otherwise, they are a MISMATCH and the command exits 1."""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

import pytest
from turnlog.adapters.cli import main
from turnlog.adapters.llm import PRESETS, LocalServer, OpenAILLM, Reply, Request
from turnlog.adapters.stores import open_store
from turnlog.engine import TurnEngine, TurnRequest, replay
from turnlog.projections import project, stream_sse

KEY = "sk-REQUESTS-never-printed"
#: The variables ``turnlog chat``/``demo`` read: removed, so a test says which ones it means.
PROVIDER_ENV = ("TURNLOG_PROVIDER", "OPENAI_BASE_URL", "OPENAI_API_KEY", "TURNLOG_MODEL", "DEEPSEEK_API_KEY")


def clean_env(**extra: str) -> dict[str, str]:
    return {**{k: v for k, v in os.environ.items() if k not in PROVIDER_ENV}, **extra}


async def turnlog(*args: str, cwd: Path, env: dict[str, str]) -> tuple[int, bytes, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "turnlog.adapters.cli",
        *args,
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode or 0, out, err.decode()


def parse_requests(out: bytes) -> list[tuple[str, bytes]]:
    """(header, body) of each model call: the header names the body's length, so bodies are cut
    exactly, whatever bytes they hold."""
    items = []
    while out:
        header, out = out.split(b"\n", 1)
        match = re.search(rb" bytes=(\d+) ", header)
        assert match, header
        n = int(match.group(1))
        body, out = out[:n], out[n:]
        assert out[:1] == b"\n", "a body is followed by one newline"
        items.append((header.decode(), body))
        out = out[1:]
    return items


def sse(*chunks: dict[str, Any]) -> bytes:
    return b"".join(b"data: " + json.dumps(c).encode() + b"\n\n" for c in chunks) + b"data: [DONE]\n\n"


def delta(d: dict[str, Any], finish: str | None = None, usage: list[int] | None = None) -> dict[str, Any]:
    chunk: dict[str, Any] = {"choices": [{"index": 0, "delta": d, "finish_reason": finish}]}
    if usage:
        chunk["usage"] = dict(zip(("prompt_tokens", "completion_tokens", "total_tokens"), usage, strict=True))
    return chunk


def fake_provider(request: Request) -> Reply:
    """Thinks, then asks for the weather in two cities (arguments split) when the last message is
    the user's and tools are offered; otherwise answers in text."""
    body = json.loads(request.body)
    last = body["messages"][-1]
    if body.get("tools") and last["role"] == "user":
        calls = []
        for i, city in enumerate(("Paris", "Tokyo")):
            head = {"index": i, "id": f"call_{city}", "function": {"name": "get_weather", "arguments": ""}}
            calls.append(delta({"tool_calls": [head]}))
            args = json.dumps({"city": city})
            calls += [delta({"tool_calls": [{"index": i, "function": {"arguments": p}}]}) for p in (args[:5], args[5:])]
        thinking = [delta({"reasoning_content": p}) for p in ("Both cities ", "at once.")]
        return Reply(body=sse(*thinking, *calls, delta({}, "tool_calls", [30, 9, 39])), seed=5)
    said = "tool results seen" if last["role"] == "tool" else f"you said: {last['content']}"
    return Reply(body=sse(delta({"content": "Sure, "}), delta({"content": said}), delta({}, "stop", [20, 4, 24])))


async def test_requests_are_the_bodies_the_provider_received(tmp_path: Path) -> None:
    """`turnlog demo --llm openai` as DeepSeek (thinking on, reasoning sent back with the tool
    calls, two tools per turn, two turns) against the fake provider; then the requests from the
    log, rendered with the preset alone and with the environment `turnlog chat` reads."""
    async with LocalServer(fake_provider) as server:
        env = clean_env(
            TURNLOG_PROVIDER="deepseek", OPENAI_BASE_URL=server.url + "/v1", OPENAI_API_KEY=KEY, TURNLOG_MODEL="ds-x"
        )
        rc, out, err = await turnlog("demo", "--llm", "openai", "--db", "demo.db", cwd=tmp_path, env=env)
        received = [r.body for r in server.requests]
    assert rc == 0, err + out.decode()
    assert b"IDENTICAL to the live stream" in out  # live == replayed frames (the demo checks its rows too)
    conv = re.search(rb"conversation (\S+) in demo.db", out).group(1).decode()  # type: ignore[union-attr]
    assert len(received) == 4
    assert b"reasoning_content" in received[1]  # the round trip went along
    for run_env in (clean_env(), env):  # the preset as shipped; the environment of `turnlog chat`
        rc, out, err = await turnlog(
            "replay", conv, "--db", "demo.db", "--format", "requests", cwd=tmp_path, env=run_env
        )
        assert rc == 0, err
        printed = parse_requests(out)
        assert [body for _, body in printed] == received
        for (header, body), iteration in zip(printed, [1, 2, 1, 2], strict=True):
            assert header.startswith("request turn=turn_") and f" iteration={iteration} " in header
            assert " model=ds-x " in header and json.loads(body)["model"] == "ds-x"
            assert header.endswith(" match")
        assert KEY not in out.decode() + err
    rc, out, err = await turnlog("replay", conv, "--db", "demo.db", "--format", "transcript", cwd=tmp_path, env=env)
    assert rc == 0, err
    assert (
        '    sent: model=ds-x system="You are a concise travel assistant." tools=get_weather '
        "messages=5 (system, user, assistant, tool, tool)"
    ) in out.decode()


def make_deepseek_conversation(db: Path) -> tuple[str, list[bytes]]:
    async def run() -> tuple[str, list[bytes]]:
        async with LocalServer(fake_provider) as server:
            config = PRESETS["deepseek"].with_(base_url=server.url + "/v1", api_key_resolver=lambda: KEY)
            log, messages = await open_store(db)
            async with log, OpenAILLM(config) as llm:
                engine = TurnEngine(log, llm, messages=messages)
                conv = await engine.create_conversation(system_prompt="Be brief.")
                live = [f async for f in stream_sse(engine, conv, TurnRequest("hello", thinking=True), "delta")]
                assert project([r async for r in replay(log, conv)], "delta") == live
            return conv, [r.body for r in server.requests]

    return asyncio.run(run())


def test_an_adapter_configured_otherwise_is_a_mismatch_and_exits_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    for name in PROVIDER_ENV:
        monkeypatch.delenv(name, raising=False)
    db = tmp_path / "ds.db"
    conv, received = make_deepseek_conversation(db)
    assert main(["replay", conv, "--db", str(db), "--format", "requests"]) == 0
    out, err = capsysbinary.readouterr()
    assert [body for _, body in parse_requests(out)] == received and err == b""
    # The model the conversation named is the preset's default: recorded, so it is in the body.
    assert b" model=deepseek-chat " in out

    # The same log rendered by a DeepSeek adapter that sends max_tokens: not what was sent.
    monkeypatch.setitem(PRESETS, "deepseek", PRESETS["deepseek"].with_(max_tokens=7))
    assert main(["replay", conv, "--db", str(db), "--format", "requests"]) == 1
    out, err = capsysbinary.readouterr()
    ((header, body),) = parse_requests(out)
    assert " MISMATCH recorded sha256:" in header and b'"max_tokens":7' in body
    assert err.decode() == (
        f"turnlog: replay: 1 of 1 request(s) of {conv} do not match the log (rendered as provider 'deepseek')\n"
    )


def test_scripted_conversations_render_as_the_scripted_models(
    tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    db = str(tmp_path / "demo.db")
    assert main(["demo", "--db", db]) == 0
    conv = re.search(rb"conversation (\S+) in ", capsysbinary.readouterr().out).group(1).decode()  # type: ignore[union-attr]
    assert main(["replay", conv, "--db", db, "--format", "requests"]) == 0
    printed = parse_requests(capsysbinary.readouterr().out)
    assert len(printed) == 3 and all(h.endswith(" match") and " model=demo-model " in h for h, _ in printed)
    assert main(["replay", conv, "--db", db, "--format", "requests", "--after", "20"]) == 0
    assert len(parse_requests(capsysbinary.readouterr().out)) < 3
