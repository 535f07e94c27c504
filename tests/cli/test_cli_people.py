"""The command as people meet it: --version, a --help that explains, TURNLOG_DB, chat with tools
and a recording that play turns back into the same transcript, a provider left unset said so, no
demo tools offered to a real model unasked, and failed turns failing the command."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from turnlog.adapters.cli import main
from turnlog.adapters.cli._common import provider_config
from turnlog.adapters.cli._main import build_parser
from turnlog.adapters.cli._serve import _tools as serve_tools
from turnlog.adapters.llm import LocalServer, Reply, Request
from turnlog.engine import ConfigError

PROVIDER_VARIABLES = ("OPENAI_API_KEY", "OPENAI_BASE_URL", "TURNLOG_MODEL", "TURNLOG_PROVIDER", "TURNLOG_DB")

TOOLS_MODULE = """
from turnlog.engine import ToolRegistry


def tools():
    registry = ToolRegistry()

    @registry.tool(parameters={"type": "object", "properties": {"city": {"type": "string"}}})
    def get_weather(city: str) -> dict:
        return {"city": city, "temp_c": 21}

    return registry
"""


async def turnlog(*args: str, cwd: Path, stdin: bytes = b"", env: dict[str, str] | None = None) -> tuple[int, str, str]:
    clean = {k: v for k, v in os.environ.items() if k not in PROVIDER_VARIABLES}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "turnlog.adapters.cli",
        *args,
        cwd=cwd,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**clean, **(env or {})},
    )
    out, err = await asyncio.wait_for(proc.communicate(stdin), 60)
    return proc.returncode or 0, out.decode(), err.decode()


def sse(*chunks: dict[str, Any]) -> bytes:
    return b"".join(b"data: " + json.dumps(c).encode() + b"\n\n" for c in chunks) + b"data: [DONE]\n\n"


def delta(d: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {"choices": [{"index": 0, "delta": d, "finish_reason": finish}]}


def weather_model(request: Request) -> Reply:
    """Asks for the weather when the user spoke last and tools are offered; else answers."""
    body = json.loads(request.body)
    last = body["messages"][-1]
    if body.get("tools") and last["role"] == "user":
        call = {"index": 0, "id": "call_1", "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}
        return Reply(body=sse(delta({"tool_calls": [call]}), delta({}, "tool_calls")), seed=3)
    said = f"tool said {last['content']}" if last["role"] == "tool" else f"you said {last['content']}"
    return Reply(body=sse(delta({"content": "Well, "}), delta({"content": said}), delta({}, "stop")), seed=4)


def test_version_and_a_help_that_explains(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out.startswith("turnlog 0.")
    with pytest.raises(SystemExit):
        main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "The ``turnlog`` command" not in text
    assert "hash-chained event log" in text and "TURNLOG_DB" in text
    for phrase in ("delta sends each step's new text only", "full re-sends", "transcript (readable text)"):
        assert phrase in text
    for variable in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "TURNLOG_MODEL", "TURNLOG_PROVIDER"):
        assert variable in text
    with pytest.raises(SystemExit):
        main(["replay", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "requests: every request sent to the model" in text and "how SSE frames carry text" in text


def test_turnlog_db_names_the_log_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TURNLOG_DB", "from-env.db")
    assert build_parser().parse_args(["replay", "c1"]).db == "from-env.db"
    assert build_parser().parse_args(["replay", "c1", "--db", "given.db"]).db == "given.db"
    monkeypatch.delenv("TURNLOG_DB")
    assert build_parser().parse_args(["db", "upgrade"]).db == "turnlog.db"


async def test_demo_and_replay_with_turnlog_db(tmp_path: Path) -> None:
    env = {"TURNLOG_DB": "env.db"}
    rc, out, err = await turnlog("demo", cwd=tmp_path, env=env)
    assert rc == 0, err
    conv = out.split("conversation ")[1].split(" ")[0]
    assert (tmp_path / "env.db").exists() and not (tmp_path / "turnlog.db").exists()
    rc, replayed, err = await turnlog("replay", conv, "--format", "transcript", cwd=tmp_path, env=env)
    assert rc == 0 and "get_weather" in replayed, err


async def test_chat_with_no_provider_says_what_to_set(tmp_path: Path) -> None:
    rc, out, err = await turnlog("chat", cwd=tmp_path, stdin=b"hello\n")
    assert rc == 1 and out == ""
    assert err.startswith("turnlog: error: no model provider is configured") and err.count("\n") == 1
    for variable in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "TURNLOG_MODEL", "TURNLOG_PROVIDER"):
        assert variable in err
    assert not (tmp_path / "turnlog.db").exists()  # refused before anything was opened
    rc, _, err = await turnlog("chat", cwd=tmp_path, env={"TURNLOG_PROVIDER": "deepseek"})
    assert rc == 1 and "TURNLOG_PROVIDER=deepseek needs an API key: set DEEPSEEK_API_KEY or OPENAI_API_KEY" in err


def test_a_provider_is_configured_by_a_key_or_a_server_of_ones_own() -> None:
    assert provider_config({"OPENAI_API_KEY": "sk-x"}).name == "openai"
    assert provider_config({"OPENAI_BASE_URL": "http://127.0.0.1:1/v1"}).url == "http://127.0.0.1:1/v1/chat/completions"
    assert provider_config({"TURNLOG_PROVIDER": "ollama"}).name == "ollama"  # local: no key needed
    with pytest.raises(ConfigError, match="no model provider is configured"):
        provider_config({})


def test_serve_offers_demo_tools_to_a_real_model_only_when_asked() -> None:
    def tools_of(*argv: str) -> list[str]:
        return serve_tools(build_parser().parse_args(["serve", *argv])).names()

    assert tools_of("--llm", "openai") == []
    assert tools_of("--llm", "openai", "--tools", "demo") == ["get_weather"]
    assert tools_of() == ["get_weather"]  # the scripted echo model keeps its demo tools


async def test_chat_with_tools_recorded_then_played_gives_the_same_transcript(tmp_path: Path) -> None:
    (tmp_path / "weather_tools.py").write_text(TOOLS_MODULE)
    async with LocalServer(weather_model) as server:
        env = {"OPENAI_BASE_URL": server.url + "/v1", "OPENAI_API_KEY": "sk-test", "TURNLOG_MODEL": "fake-1"}
        args = ("--db", "chat.db", "--tools", "weather_tools:tools", "--record", "cassettes")
        rc, out, err = await turnlog("chat", *args, cwd=tmp_path, stdin=b"weather in Oslo?\n", env=env)
        sent = [r.body for r in server.requests]
    assert rc == 0, err
    assert "-> tool get_weather" in out and '<- get_weather ok: {"city": "Oslo", "temp_c": 21}' in out
    assert "recording to cassettes" in out
    assert json.loads(sent[0])["tools"][0]["function"]["name"] == "get_weather"
    recordings = sorted((tmp_path / "cassettes").iterdir())
    assert [p.name for p in recordings] == ["0001.sse", "0002.sse"]
    assert recordings[0].read_bytes() == weather_model(Request("POST", "/", {}, sent[0])).body  # byte for byte
    chatted = out.split("conversation ")[1].split(" ")[0]

    rc, frames, err = await turnlog(
        "play",
        *map(str, recordings),
        "--db",
        "played.db",
        "--tools",
        "weather_tools:tools",
        "--provider",
        "openai",
        "--model",
        "fake-1",
        "--message",
        "weather in Oslo?",
        cwd=tmp_path,
    )
    assert rc == 0, err
    assert "tool said" in frames
    played = err.split("conversation ")[1].split(":")[0]
    transcripts = []
    for db, conv in (("chat.db", chatted), ("played.db", played)):
        rc, text, err = await turnlog("replay", conv, "--db", db, "--format", "transcript", cwd=tmp_path)
        assert rc == 0, err
        transcripts.append(text)
    assert transcripts[0] == transcripts[1]
    assert "tool_result call_1 get_weather" in transcripts[0]


async def test_a_failed_turn_fails_demo(tmp_path: Path) -> None:
    refusal = Reply(body=b'{"error": {"message": "no such model"}}', status=404, content_type="application/json")
    async with LocalServer([refusal]) as server:
        env = {"OPENAI_BASE_URL": server.url + "/v1", "TURNLOG_MODEL": "nope"}
        rc, out, err = await turnlog("demo", "--llm", "openai", "--db", "d.db", cwd=tmp_path, env=env)
    assert rc == 1
    assert "verify: ok" in out  # the log holds; the turns failed
    assert "turnlog: demo: a turn of" in err and "failed (llm_error): openai: HTTP 404: no such model" in err
