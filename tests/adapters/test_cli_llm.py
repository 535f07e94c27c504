"""``turnlog play``, ``turnlog chat`` and ``turnlog demo --llm openai``, run as the user runs them
(a subprocess), against recordings and a fake OpenAI-compatible server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from turnlog.adapters.llm import LocalServer, Reply, Request

from .conftest import CORPUS

KEY = "sk-CLI-SECRET-91b2-never-printed"
needs_corpus = pytest.mark.skipif(not CORPUS.is_dir(), reason=f"the recorded-stream corpus is not at {CORPUS}")


async def turnlog(*args: str, cwd: Path, stdin: bytes = b"", env: dict[str, str] | None = None) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "turnlog.adapters.cli",
        *args,
        cwd=cwd,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )
    out, err = await asyncio.wait_for(proc.communicate(stdin), 60)
    return proc.returncode or 0, out.decode(), err.decode()


def sse(*chunks: dict[str, Any]) -> bytes:
    return b"".join(b"data: " + json.dumps(c).encode() + b"\n\n" for c in chunks) + b"data: [DONE]\n\n"


def delta(d: dict[str, Any], finish: str | None = None, usage: list[int] | None = None) -> dict[str, Any]:
    chunk: dict[str, Any] = {"choices": [{"index": 0, "delta": d, "finish_reason": finish}]}
    if usage:
        chunk["usage"] = dict(zip(("prompt_tokens", "completion_tokens", "total_tokens"), usage, strict=True))
    return chunk


def fake_openai(request: Request) -> Reply:
    """A model that asks for the weather when the last message is from the user and has not been
    answered by a tool, and otherwise answers in text."""
    body = json.loads(request.body)
    last = body["messages"][-1]
    if body.get("tools") and last["role"] == "user":
        calls = []
        for i, city in enumerate(("Paris", "Tokyo")):
            head = {"index": i, "id": f"call_{city}", "function": {"name": "get_weather", "arguments": ""}}
            calls.append(delta({"tool_calls": [head]}))
            args = json.dumps({"city": city})
            for part in (args[:5], args[5:]):
                calls.append(delta({"tool_calls": [{"index": i, "function": {"arguments": part}}]}))
        return Reply(
            body=sse(delta({"reasoning_content": "Both cities."}), *calls, delta({}, "tool_calls", [30, 9, 39])),
            seed=5,
        )
    said = "tool results seen" if last["role"] == "tool" else f"you said: {last['content']}"
    return Reply(body=sse(delta({"content": "Sure, "}), delta({"content": said}), delta({}, "stop", [20, 4, 24])))


@needs_corpus
async def test_play_prints_the_frames_and_stores_the_turn(tmp_path: Path) -> None:
    rc, out, err = await turnlog(
        "play",
        str(CORPUS / "openai-parallel-tool-calls-1.sse"),
        str(CORPUS / "openai-content-1.sse"),
        "--db",
        "play.db",
        cwd=tmp_path,
    )
    assert rc == 0, err
    assert "turn finalized in play.db" in err
    assert out.count('"type":"tool_call"') == 2 and out.count('"type":"tool_result"') == 2
    assert out.count('"success":false') == 2  # the recording's tools are not registered
    assert out.rstrip().split("\n\n")[-1].split("\n")[1] == "event: done"
    conv = err.split("conversation ")[1].split(":")[0]
    rc, replayed, err = await turnlog("replay", conv, "--db", "play.db", cwd=tmp_path)
    assert rc == 0 and replayed == out


@needs_corpus
async def test_play_fails_clearly_when_the_recordings_run_out(tmp_path: Path) -> None:
    rc, out, err = await turnlog("play", str(CORPUS / "deepseek-tool-call-1.sse"), "--mode", "full", cwd=tmp_path)
    assert rc == 1, err  # a failed turn fails the command
    assert "event: error" in out and "no more recordings: model call 2 has none" in out
    assert "turn failed (llm_error)" in err


async def test_chat_reads_stdin_renders_turns_and_keeps_the_key_out(tmp_path: Path) -> None:
    async with LocalServer(fake_openai) as server:
        env = {"OPENAI_BASE_URL": server.url + "/v1", "OPENAI_API_KEY": KEY, "TURNLOG_MODEL": "fake-1"}
        rc, out, err = await turnlog("chat", "--db", "chat.db", cwd=tmp_path, stdin=b"hello\nand again\n", env=env)
        assert rc == 0, err
        assert [r.headers["authorization"] for r in server.requests] == [f"Bearer {KEY}"] * 2
        second = json.loads(server.requests[1].body)
    assert "assistant: Sure, you said: hello" in out and "assistant: Sure, you said: and again" in out
    assert out.count("[done: stop, tokens 20+4=24]") == 2
    assert [m["role"] for m in second["messages"]] == ["user", "assistant", "user"]  # the history went along
    assert second["model"] == "fake-1"
    db = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    # The turns were written, their content encrypted at rest (issue 15): the words are not in the file.
    assert b"turn_finalized" in db and b"you said: and again" not in db
    for text in (out, err, db.decode("latin-1")):
        assert KEY not in text


async def test_chat_reports_a_provider_error_as_a_failed_turn(tmp_path: Path) -> None:
    refusal = Reply(
        body=b'{"error": {"message": "model fake-9 does not exist"}}', status=404, content_type="application/json"
    )
    async with LocalServer([refusal]) as server:
        env = {"OPENAI_BASE_URL": server.url + "/v1", "OPENAI_API_KEY": KEY, "TURNLOG_MODEL": "fake-9"}
        rc, out, err = await turnlog("chat", cwd=tmp_path, stdin=b"hi\n", env=env)
    assert rc == 1, err  # a failed turn fails the command, after the session
    assert "[turn failed (llm_error): openai: HTTP 404: model fake-9 does not exist]" in out
    assert err.startswith("turnlog: chat: 1 of 1 turn(s) failed (conversation ")
    assert KEY not in out + err


async def test_demo_with_the_openai_llm(tmp_path: Path) -> None:
    async with LocalServer(fake_openai) as server:
        env = {"OPENAI_BASE_URL": server.url + "/v1", "OPENAI_API_KEY": KEY, "TURNLOG_MODEL": "fake-2"}
        rc, out, err = await turnlog("demo", "--llm", "openai", "--db", "demo.db", cwd=tmp_path, env=env)
        bodies = [json.loads(r.body) for r in server.requests]
    assert rc == 0, err + out
    assert "IDENTICAL to the live stream" in out and "verify: ok" in out
    assert out.count('"type":"tool_result"') == 4 and "tool results seen" in out  # two turns, two calls each
    assert bodies[0]["model"] == "fake-2" and bodies[0]["tools"][0]["function"]["name"] == "get_weather"
    # The tool round trip carried the assistant message with its calls, then one tool message each.
    assert [m["role"] for m in bodies[1]["messages"][-3:]] == ["assistant", "tool", "tool"]
    assert KEY not in out + err


async def test_chat_without_a_model_is_one_clear_line(tmp_path: Path) -> None:
    env = {"OPENAI_BASE_URL": "http://127.0.0.1:9/v1", "TURNLOG_MODEL": "", "TURNLOG_PROVIDER": "vllm"}
    rc, _, err = await turnlog("chat", cwd=tmp_path, env=env)
    assert rc == 1
    assert err == "turnlog: error: provider 'vllm' has no default model: set TURNLOG_MODEL\n"
