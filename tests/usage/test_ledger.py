"""The usage ledger's parts: the provider usage shapes it reads cached and reasoning tokens from,
the fold (who asked, which model), the price table, and the SQL ledger's reports against the
in-memory reference on every grouping and time range."""

from __future__ import annotations

import itertools
import json
from decimal import Decimal
from pathlib import Path

import msgspec
import pytest
from turnlog.adapters.llm import ScriptedLLM
from turnlog.engine import (
    ConfigError,
    FixedClock,
    IterationStarted,
    Recorded,
    SequentialIds,
    ToolRegistry,
    TurnEngine,
    TurnFinalized,
    TurnRequest,
    Usage,
    UsageRecorded,
)
from turnlog.projections import (
    USAGE_DIMENSIONS,
    MemoryUsageLedger,
    PriceTable,
    UsageEntry,
    UsageQuery,
    catch_up,
    fold_usage,
    group_entries,
    rebuild,
    token_details,
    usage_report,
)

from ..conftest import turn_started


@pytest.mark.parametrize(
    ("raw", "want"),
    [
        (None, (0, 0)),
        ({"prompt_tokens": 9}, (0, 0)),
        # OpenAI (and most compatible servers)
        (
            {"prompt_tokens_details": {"cached_tokens": 256}, "completion_tokens_details": {"reasoning_tokens": 97}},
            (256, 97),
        ),
        # DeepSeek sends both names; Moonshot a top-level cached_tokens
        ({"prompt_cache_hit_tokens": 64, "prompt_cache_miss_tokens": 10}, (64, 0)),
        ({"cached_tokens": 90}, (90, 0)),
        # the Responses API's names, an Anthropic-compatible gateway's
        ({"input_tokens_details": {"cached_tokens": 5}, "output_tokens_details": {"reasoning_tokens": 7}}, (5, 7)),
        ({"cache_read_input_tokens": 11}, (11, 0)),
        # junk is not a count
        ({"prompt_tokens_details": {"cached_tokens": "many"}, "completion_tokens_details": None}, (0, 0)),
        ({"prompt_tokens_details": {"cached_tokens": True}, "reasoning_tokens": -3}, (0, 0)),
    ],
)
def test_token_details_of_each_providers_shape(raw, want) -> None:
    assert token_details(raw) == want


def _rec(event, version: int, at: str = "2026-03-01T10:00:00.000000Z", turn: str = "t1") -> Recorded:
    return Recorded("c1", version, version, turn, at, "", 1, "", "", event, b"")


def test_the_fold_says_who_asked_and_which_model() -> None:
    started = turn_started(model="conv-model", tenant="acme", subject="ann", provider="deepseek")
    raw = {"prompt_tokens": 10, "prompt_tokens_details": {"cached_tokens": 4}}
    events = [
        _rec(started, 2),
        _rec(IterationStarted(1, "x" * 64, model="req-model"), 3),
        _rec(UsageRecorded(1, 10, 2, 12, raw), 4),
        _rec(IterationStarted(2, "y" * 64), 5),  # an old log: no model in the request digest event
        _rec(UsageRecorded(2, 3, 1, 4), 6, at="2026-03-02T00:00:00.000000Z"),
        _rec(TurnFinalized("m2", 3, Usage(13, 3, 16)), 7),
    ]
    entries = fold_usage("c1", events)
    assert [(e.version, e.model, e.day, e.cached_tokens) for e in entries] == [
        (4, "req-model", "2026-03-01", 4),
        (6, "conv-model", "2026-03-02", 0),
    ]
    assert {(e.tenant, e.subject, e.provider, e.turn_id) for e in entries} == {("acme", "ann", "deepseek", "t1")}


def test_usage_recorded_encodes_as_before() -> None:
    """The ledger changed no event: a UsageRecorded is the same bytes (and hash) as logs written
    before it (the log's encoder is msgspec's default one), and the cached and reasoning counts
    come from the ``raw`` old logs already keep."""
    raw = {"prompt_tokens": 3, "prompt_tokens_details": {"cached_tokens": 2}}
    assert msgspec.json.encode(UsageRecorded(1, 3, 1, 4, raw)) == (
        b'{"type":"usage_recorded","iteration":1,"prompt_tokens":3,"completion_tokens":1,"total_tokens":4,'
        b'"raw":{"prompt_tokens":3,"prompt_tokens_details":{"cached_tokens":2}}}'
    )
    assert msgspec.json.encode(TurnFinalized("m", 1, Usage(3, 1, 4))) == (
        b'{"type":"turn_finalized","message_id":"m","token_count":1,'
        b'"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4},"finish_reason":"stop"}'
    )


def test_queries_are_checked() -> None:
    with pytest.raises(ConfigError, match="group by"):
        UsageQuery(by="week")
    for bad in ("yesterday", "2026-3-1", "2026-03-01 10:00", "2026-03-01T10"):
        with pytest.raises(ConfigError, match="not a UTC day or time"):
            UsageQuery(since=bad)
    UsageQuery(since="2026-03-01", until="2026-03-01T10:00:00.123456Z")


def test_the_price_table(tmp_path: Path) -> None:
    doc = {
        "currency": "EUR",
        "models": {"a": {"input": "2.50", "cached_input": "1.25", "output": 10}, "b": {"input": 0.1, "output": "0.4"}},
    }
    (tmp_path / "p.json").write_text(json.dumps(doc))
    (tmp_path / "p.toml").write_text(
        'currency = "EUR"\n[models.a]\ninput = "2.50"\ncached_input = "1.25"\noutput = 10\n'
        '[models.b]\ninput = 0.1\noutput = "0.4"\n'
    )
    table = PriceTable.load(tmp_path / "p.json")
    assert table == PriceTable.load(tmp_path / "p.toml") == PriceTable.parse(doc)
    assert table.models["b"].input == "0.1"  # a float read through its text: exact
    # 1M prompt tokens, 400k of them cached, 200k completion: 0.6*2.5 + 0.4*1.25 + 0.2*10
    assert table.models["a"].cost(1_000_000, 400_000, 200_000) == Decimal("4.0")
    assert table.models["b"].cost(3, 0, 7) == Decimal("0.0000031")  # cached_input defaults to input
    for bad, match in [
        ({"models": {"a": {"input": "1"}}}, "missing"),
        ({"models": {"a": {"input": "1", "output": "x"}}}, "must be a number"),
        ({"models": {"a": {"input": "-1", "output": "1"}}}, "non-negative"),
        ({"models": {"a": {"input": "1", "output": "1", "cache": "1"}}}, "unknown"),
        ({"models": {"a": {"input": True, "output": "1"}}}, "must be a number"),
        ({"price": {}}, "unknown keys"),
        ({"models": []}, "must map"),
    ]:
        with pytest.raises(ConfigError, match=match):
            PriceTable.parse(bad)
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(ConfigError, match="not valid JSON"):
        PriceTable.load(tmp_path / "broken.json")
    with pytest.raises(ConfigError, match="cannot read"):
        PriceTable.load(tmp_path / "missing.toml")


def _entries() -> list[UsageEntry]:
    out = []
    tenants, subjects, models = ("acme", "globex"), ("ann", "bob", ""), ("m1", "m2", "m3")
    for i, (tenant, subject, model) in enumerate(itertools.product(tenants, subjects, models)):
        day = f"2026-03-0{1 + i % 3}"
        at = f"{day}T{i % 24:02d}:00:00.000000Z"
        conv = f"conv-{i % 4}-{tenant}"
        out.append(
            UsageEntry(conv, i + 2, "t", 1, tenant, subject, "p", model, day, at, 10 + i, i, 10 + 2 * i, i // 2, i // 3)
        )
    return out


async def test_sql_reports_equal_the_reference(store) -> None:
    entries = _entries()
    ledger = store.messages.usage
    await ledger.save(entries)
    await ledger.save(entries[:5])  # saved twice: nothing changes
    reference = MemoryUsageLedger()
    await reference.save(entries)
    assert await ledger.entries() == await reference.entries()
    assert await ledger.entries("conv-1-acme") == [
        e for e in await reference.entries() if e.conversation_id == "conv-1-acme"
    ]
    prices = PriceTable.parse({"models": {"m1": {"input": "1", "output": "2"}, "m2": {"input": "3", "output": "4"}}})
    ranges = [(None, None), ("2026-03-02", None), (None, "2026-03-02"), ("2026-03-01T05:00:00Z", "2026-03-03")]
    for by, tenant, (since, until) in itertools.product(USAGE_DIMENSIONS, (None, "acme"), ranges):
        query = UsageQuery(by=by, tenant=tenant, since=since, until=until)
        assert await ledger.groups(query) == group_entries(entries, query), query
        assert await usage_report(ledger, query, prices) == await usage_report(reference, query, prices)
    report = await usage_report(ledger, UsageQuery(by="model"), prices)
    assert [(r.key, r.cost is None, r.unpriced) for r in report.rows] == [
        ("m1", False, []),
        ("m2", False, []),
        ("m3", True, ["m3"]),
    ]
    await ledger.clear()
    assert await ledger.entries() == []


async def test_a_crash_before_the_ledger_is_caught_up(store) -> None:
    """The ledger is saved with the batch that ends a turn; one lost to a crash (here: cleared)
    comes back by the catch-up the next turn (or recovery) runs, identical."""
    script = [[{"text": "hi"}, {"usage": [7, 2, 9]}], [{"text": "again"}, {"usage": [11, 3, 14]}]]
    engine = TurnEngine(
        store.log, ScriptedLLM(script), messages=store.messages, clock=FixedClock(), ids=SequentialIds()
    )
    conv = await engine.create_conversation(model="m1", tenant="acme", subject="ann")
    async for _ in engine.run_turn(conv, TurnRequest("one", tenant="acme", subject="ann")):
        pass
    first = await store.messages.usage.entries(conv)
    assert [(e.prompt_tokens, e.model, e.tenant) for e in first] == [(7, "m1", "acme")]
    await store.messages.usage.clear()
    await catch_up(store.log, store.messages, conv)
    assert await store.messages.usage.entries(conv) == first
    async for _ in engine.run_turn(conv, TurnRequest("two", tenant="acme", subject="ann")):
        pass
    assert [e.total_tokens for e in await store.messages.usage.entries(conv)] == [9, 14]


async def test_a_parked_turn_is_in_the_ledger_before_and_after_its_decision(store) -> None:
    """A turn that parks for an approval saves what its model calls used with the park; the turn
    taken up again after the decision (another sink, which never saw the turn start) is brought
    in by catch-up, as the log says: who asked included."""
    registry = ToolRegistry()

    def transfer(amount: int) -> str:
        return f"sent {amount}"

    registry.register(transfer, requires_approval=True)
    script = [
        [{"tool": "transfer", "arguments": {"amount": 5}, "id": "c1"}, {"usage": [20, 4, 24]}],
        [{"text": "done"}, {"usage": [30, 2, 32]}],
    ]
    engine = TurnEngine(
        store.log, ScriptedLLM(script), tools=registry, messages=store.messages, clock=FixedClock(), ids=SequentialIds()
    )
    conv = await engine.create_conversation(model="m1", tenant="acme", subject="ann")
    async for _ in engine.run_turn(conv, TurnRequest("pay", enabled_tools=["transfer"], tenant="acme", subject="ann")):
        pass
    parked = await store.messages.usage.entries(conv)
    assert [(e.total_tokens, e.subject) for e in parked] == [(24, "ann")]
    async for _ in engine.decide(conv, "c1", "approve", tenant="acme", subject="bob"):
        pass
    live = await store.messages.usage.entries(conv)
    assert [(e.total_tokens, e.subject, e.model) for e in live] == [(24, "ann", "m1"), (32, "ann", "m1")]
    fresh = store.fresh_messages()
    await rebuild(store.log, fresh)
    assert await fresh.usage.entries(conv) == live
