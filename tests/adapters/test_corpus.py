"""Conformance: every recorded provider stream of ``../shared/corpus/openai-streams`` runs a full
turn through RecordedLLM (a real HTTP server on 127.0.0.1, random piece sizes, several seeds) and
the real client. What each recording says is computed here with plain ``json`` from the raw
bytes, independently of the adapter's normaliser, and compared with what the log recorded."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from turnlog.adapters.llm import RecordedLLM, Recording
from turnlog.adapters.stores import SqliteEventLog, SqlMessageStore
from turnlog.engine import (
    EngineConfig,
    EventLog,
    FixedClock,
    InMemoryEventLog,
    ReasoningDelta,
    SequentialIds,
    TextDelta,
    ToolCallsRequested,
    TurnEngine,
    TurnFailed,
    TurnFinalized,
    TurnRequest,
    UsageRecorded,
    replay,
    verify,
)
from turnlog.projections import MemoryMessageStore, MessageStore, project, rebuild, render, stream_sse

from .conftest import CORPUS

ROOT = Path(__file__).resolve().parents[2]
FILES = sorted(p.name for p in CORPUS.glob("*.sse")) if CORPUS.is_dir() else []

#: The second answer of a turn whose first answer asked for tools: a plain "Done.".
FOLLOW_UP = (
    b'data: {"choices":[{"index":0,"delta":{"role":"assistant","content":"Done."},"finish_reason":null}]}\n\n'
    b'data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}],'
    b'"usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7}}\n\n'
    b"data: [DONE]\n\n"
)


@dataclass
class Expected:
    text: str = ""
    reasoning: str = ""
    #: Arguments of each call, in call order.
    tool_args: list[str] = field(default_factory=list)
    tool_names: list[str] = field(default_factory=list)
    usage: tuple[int, int, int] | None = None
    finish: str | None = None
    #: The provider's error message (whole-body JSON error or mid-stream error object).
    error: str | None = None


def events(body: bytes) -> list[dict[str, Any]]:
    text = body.decode("utf-8").replace("\r\n", "\n")
    out = []
    for block in text.split("\n\n"):
        data = [line[5:].removeprefix(" ") for line in block.split("\n") if line.startswith("data:")]
        if data and "\n".join(data) != "[DONE]":
            out.append(json.loads("\n".join(data)))
    return out


def expected(name: str) -> Expected:
    body = (CORPUS / name).read_bytes()
    exp = Expected()
    if body.lstrip().startswith(b"{"):
        exp.error = json.loads(body)["error"]["message"]
        return exp
    calls: dict[Any, dict[str, str]] = {}
    for chunk in events(body):
        if chunk.get("error"):
            exp.error = chunk["error"]["message"]
        for choice in chunk.get("choices") or []:
            delta = choice.get("delta") or {}
            for key in ("content", "refusal"):
                if isinstance(delta.get(key), str):
                    exp.text += delta[key]
            exp.reasoning += delta.get("reasoning_content") or delta.get("reasoning") or ""
            for tc in delta.get("tool_calls") or []:
                key = tc.get("index", tc.get("id"))
                call = calls.setdefault(key, {"name": "", "args": ""})
                fn = tc.get("function") or {}
                call["name"] = call["name"] or fn.get("name") or ""
                call["args"] += fn.get("arguments") or ""
            if choice.get("usage"):
                u = choice["usage"]
                exp.usage = (u["prompt_tokens"], u["completion_tokens"], u["total_tokens"])
            if choice.get("finish_reason"):
                exp.finish = choice["finish_reason"]
        if chunk.get("usage"):
            u = chunk["usage"]
            exp.usage = (u["prompt_tokens"], u["completion_tokens"], u["total_tokens"])
    exp.tool_args = [c["args"] for c in calls.values()]
    exp.tool_names = [c["name"] for c in calls.values()]
    return exp


# -- the conformance test ---------------------------------------------------------------------


async def run_recorded(log: EventLog, messages: MessageStore, name: str, seed: int) -> tuple[str, list[bytes]]:
    first = Recording.load(CORPUS / name)
    if name in STATUS:
        first = Recording(first.body, status=STATUS[name], name=name)
    async with RecordedLLM([first, FOLLOW_UP], seed=seed, piece_max=13) as llm:
        engine = TurnEngine(
            log,
            llm,
            messages=messages,
            clock=FixedClock(),
            ids=SequentialIds(),
            config=EngineConfig(flush_events=8, flush_ms=20.0),
        )
        conv = await engine.create_conversation(system_prompt="Recorded.", model="recorded-model")
        live = [frame async for frame in stream_sse(engine, conv, TurnRequest("Go."))]
    return conv, live


async def check_invariants(log: EventLog, messages: MessageStore, fresh: MessageStore, conv: str, live: list[bytes]):
    recs = [rec async for rec in replay(log, conv)]
    assert project(recs, "delta") == live, "live frames differ from the replayed frames"
    rows = await messages.rows(conv)
    await rebuild(log, fresh)
    assert await fresh.rows(conv) == rows, "live rows differ from the rebuilt rows"
    assert (await verify(log)).ok
    return recs


def observed(recs) -> Expected:
    got = Expected()
    first = [r.event for r in recs if getattr(r.event, "iteration", 1) == 1]
    for ev in first:
        if isinstance(ev, TextDelta):
            got.text += ev.text
        elif isinstance(ev, ReasoningDelta):
            got.reasoning += ev.text
        elif isinstance(ev, UsageRecorded):
            got.usage = (ev.prompt_tokens, ev.completion_tokens, ev.total_tokens)
        elif isinstance(ev, ToolCallsRequested):
            got.tool_args = [c.arguments for c in ev.calls]
            got.tool_names = [c.name for c in ev.calls]
            got.finish = ev.finish_reason
        elif isinstance(ev, TurnFinalized) and got.finish is None:  # a second iteration's finish is not ours
            got.finish = ev.finish_reason
        elif isinstance(ev, TurnFailed):
            got.error = ev.message
    return got


SEEDS = (1, 2, 3)
#: Error bodies whose status the recording does not store: served as the provider would (400 otherwise).
STATUS = {"moonshot-error-body-not-found-1.sse": 404}


@pytest.mark.skipif(not FILES, reason=f"the recorded-stream corpus is not at {CORPUS}")
@pytest.mark.parametrize("name", FILES)
async def test_recorded_stream(name: str, tmp_path: Path, transcript_snapshot) -> None:
    transcripts = []
    for seed in SEEDS:
        log: EventLog = InMemoryEventLog()
        messages: MessageStore = MemoryMessageStore()
        conv, live = await run_recorded(log, messages, name, seed)
        recs = await check_invariants(log, messages, MemoryMessageStore(), conv, live)
        transcripts.append(render(recs))
    sqlite = await SqliteEventLog.open(tmp_path / "t.db")
    try:
        messages = SqlMessageStore(sqlite.writer)
        conv, live = await run_recorded(sqlite, messages, name, SEEDS[0])
        recs = await check_invariants(sqlite, messages, messages, conv, live)
        transcripts.append(render(recs))
    finally:
        await sqlite.close()
    # Piece boundaries (inside UTF-8 characters, between CR and LF) and the store change nothing.
    assert all(t == transcripts[0] for t in transcripts)
    assert transcripts[0] == transcript_snapshot

    want, got = expected(name), observed(recs)
    terminal = recs[-1].event
    if want.error is not None:
        assert isinstance(terminal, TurnFailed) and terminal.reason == "llm_error"
        assert want.error in terminal.message and terminal.message.startswith("recorded: HTTP ")
        assert live[-1].split(b"\n")[1] == b"event: error"
    else:
        assert isinstance(terminal, TurnFinalized)
        assert got.usage == want.usage
        assert got.finish == want.finish
    assert got.text == want.text
    assert got.reasoning == want.reasoning
    assert got.tool_args == want.tool_args
    assert got.tool_names == want.tool_names


def test_the_corpus_is_complete() -> None:
    """Every recording the manifest lists is here, and nothing unlisted (a vendored copy that
    lost a file would silently test less)."""
    manifest = (CORPUS / "MANIFEST.tsv").read_text().splitlines()
    listed = {line.split("\t")[0] for line in manifest[1:] if line.strip()}
    assert listed == set(FILES) and len(FILES) >= 27
