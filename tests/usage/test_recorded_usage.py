"""Must show: the usage ledger against the usage the recorded provider streams report.

Every recorded provider stream of the corpus (``tests/adapters/corpus/openai-streams``) that ends
a turn is played through RecordedLLM (a real HTTP server on 127.0.0.1, the real client) into a
conversation of its own, on each store. What each recording reports (prompt, completion, total,
cached and reasoning tokens: the last usage object of the stream) is read here with plain
``json`` from the raw bytes and compared with the ledger's entries and its reports; the ledger
the turns kept live equals the ledger rebuilt from the log."""

from __future__ import annotations

import json
import os
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

from turnlog.adapters.llm import RecordedLLM, Recording
from turnlog.engine import FixedClock, SequentialIds, TurnEngine, TurnRequest
from turnlog.projections import PriceTable, UsageQuery, rebuild, usage_report

CORPUS = Path(os.environ.get("TURNLOG_CORPUS") or Path(__file__).parents[1] / "adapters" / "corpus" / "openai-streams")
#: The answer to a turn's second model call, after a recording that asked for tools.
FOLLOW_UP = (
    b'data: {"choices":[{"index":0,"delta":{"role":"assistant","content":"Done."},"finish_reason":null}]}\n\n'
    b'data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}],'
    b'"usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7}}\n\n'
    b"data: [DONE]\n\n"
)
FOLLOW_UP_USAGE = (5, 2, 7, 0, 0)


def _chunks(body: bytes) -> list[dict[str, Any]]:
    out = []
    for block in body.decode("utf-8").replace("\r\n", "\n").split("\n\n"):
        data = [line[5:].removeprefix(" ") for line in block.split("\n") if line.startswith("data:")]
        if data and "\n".join(data) != "[DONE]":
            out.append(json.loads("\n".join(data)))
    return out


def reported(body: bytes) -> tuple[tuple[int, int, int, int, int] | None, bool, bool]:
    """(the last usage the stream reports as (prompt, completion, total, cached, reasoning),
    whether it asks for tools, whether it carries an error)."""
    if body.lstrip().startswith(b"{"):
        return None, False, True
    usage, tools, error = None, False, False
    for chunk in _chunks(body):
        error = error or bool(chunk.get("error"))
        for choice in chunk.get("choices") or []:
            tools = tools or bool((choice.get("delta") or {}).get("tool_calls"))
            usage = choice.get("usage") or usage
        usage = chunk.get("usage") or usage
    if usage is None:
        return None, tools, error
    details = usage.get("prompt_tokens_details") or {}
    cached = details.get("cached_tokens", usage.get("prompt_cache_hit_tokens", usage.get("cached_tokens", 0)))
    reasoning = (usage.get("completion_tokens_details") or {}).get("reasoning_tokens", 0)
    totals = (usage["prompt_tokens"], usage["completion_tokens"], usage["total_tokens"], cached, reasoning)
    return totals, tools, error


def manifest_models() -> dict[str, str]:
    models = {}
    for line in (CORPUS / "MANIFEST.tsv").read_text().splitlines()[1:]:
        cols = line.split("\t")
        found = re.search(r"model=([^ ;]+)", cols[-1])
        models[cols[0]] = found.group(1) if found else "unknown"
    return models


def plan() -> list[tuple[str, str, list[tuple[int, int, int, int, int]]]]:
    """(file, model, the usage of each model call of its turn) for every recording that ends a turn."""
    models = manifest_models()
    out = []
    for path in sorted(CORPUS.glob("*.sse")):
        usage, tools, error = reported(path.read_bytes())
        if error or usage is None:
            continue
        out.append((path.name, models[path.name], [usage, FOLLOW_UP_USAGE] if tools else [usage]))
    return out


def test_the_corpus_reports_cached_and_reasoning_tokens() -> None:
    """The recordings do carry what the ledger must keep (else the comparison proves little)."""
    usage = {name: calls[0] for name, _, calls in plan()}
    assert len(usage) >= 20
    assert usage["deepseek-tool-call-1.sse"] == (374, 61, 435, 256, 17)  # DeepSeek: both names for cache hits
    assert usage["moonshot-usage-in-choice-and-chunk-1.sse"][3:] == (90, 33)
    assert sum(u[3] for u in usage.values()) > 0 and sum(u[4] for u in usage.values()) > 0


async def test_the_ledger_equals_the_recorded_usage(store) -> None:
    cases = plan()
    expected: dict[str, list[tuple[int, int, int, int, int]]] = {}
    ids = SequentialIds()
    clock = FixedClock()
    # One provider server answers every call in turn: call N gets reply N.
    replies: list[Recording | bytes] = []
    for name, _, calls in cases:
        replies += [Recording.load(CORPUS / name)] + ([FOLLOW_UP] if len(calls) > 1 else [])
    async with RecordedLLM(replies, seed=1, piece_max=4096) as llm:
        engine = TurnEngine(store.log, llm, messages=store.messages, clock=clock, ids=ids)
        for _, model, calls in cases:
            conv = await engine.create_conversation(model=model, tenant="acme", subject="ann")
            async for _ in engine.run_turn(conv, TurnRequest("Go.", tenant="acme", subject="ann")):
                pass
            expected[conv] = calls

    ledger = store.messages.usage
    live = await ledger.entries()
    # One entry per model call, each carrying exactly what the provider reported.
    got = {}
    for e in live:
        got.setdefault(e.conversation_id, []).append(
            (e.prompt_tokens, e.completion_tokens, e.total_tokens, e.cached_tokens, e.reasoning_tokens)
        )
    assert got == expected
    assert {(e.tenant, e.subject) for e in live} == {("acme", "ann")}

    # The report's totals are the recordings' totals, by conversation and by model.
    by_conv = (await usage_report(ledger, UsageQuery(by="conversation"))).rows
    assert {r.key: (r.prompt_tokens, r.cached_tokens, r.reasoning_tokens, r.calls) for r in by_conv} == {
        conv: (sum(c[0] for c in calls), sum(c[3] for c in calls), sum(c[4] for c in calls), len(calls))
        for conv, calls in expected.items()
    }
    by_model = (await usage_report(ledger, UsageQuery(by="model"))).rows
    want_models: dict[str, int] = {}
    for (_, model, _calls), conv in zip(cases, expected, strict=True):
        want_models[model] = want_models.get(model, 0) + sum(c[2] for c in expected[conv])
    assert {r.key: r.total_tokens for r in by_model} == want_models
    tenant = (await usage_report(ledger, UsageQuery(by="tenant", tenant="acme"))).rows
    assert len(tenant) == 1
    assert tenant[0].total_tokens == sum(c[2] for calls in expected.values() for c in calls)
    assert tenant[0].cached_tokens == sum(c[3] for calls in expected.values() for c in calls)

    # Priced: one model's cost is exactly what its tokens cost at the table's prices.
    prices = PriceTable.parse(
        {"models": {"deepseek-v4-flash": {"input": "0.27", "cached_input": "0.07", "output": "1.10"}}}
    )
    rows = {r.key: r for r in (await usage_report(ledger, UsageQuery(by="model"), prices)).rows}
    flash = [
        call
        for (_, model, _), conv in zip(cases, expected, strict=True)
        if model == "deepseek-v4-flash"
        for call in expected[conv]
    ]
    assert flash
    spent = Decimal(0)
    for prompt, completion, _, cached, _ in flash:
        spent += (prompt - cached) * Decimal("0.27") + cached * Decimal("0.07") + completion * Decimal("1.10")
    want = spent / Decimal(1_000_000)
    assert Decimal(rows["deepseek-v4-flash"].cost) == want
    assert rows["gpt-4o-2024-08-06"].cost is None and rows["gpt-4o-2024-08-06"].unpriced == ["gpt-4o-2024-08-06"]

    # Live == rebuilt from the log.
    fresh = store.fresh_messages()
    await rebuild(store.log, fresh)
    assert await fresh.usage.entries() == live
