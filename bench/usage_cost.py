"""What the usage ledger and the span projection cost.

    .venv/bin/python bench/usage_cost.py [--turns 200] [--entries 100000] [--db-url postgresql://...] [--json]

1. Turns on SQLite (synchronous=FULL, the default) with the ledger kept (one extra write
   transaction per turn, at its end) and without (``messages.usage = None``), and with the
   OpenTelemetry observer on (spans to a no-op exporter): turns per second of each.
2. ``usage_report`` (what ``GET /usage`` runs) over ``--entries`` ledger rows of 50 tenants and
   90 days, on SQLite (and PostgreSQL with ``--db-url``): one tenant by subject, one tenant by
   day over a month, and every tenant by model; milliseconds each (the median of 5).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path

from turnlog.adapters.llm import EchoLLM
from turnlog.adapters.stores import open_store, upgrade
from turnlog.engine import TurnEngine, TurnRequest
from turnlog.projections import UsageEntry, UsageQuery, usage_report


async def turns_per_second(db: Path, turns: int, *, ledger: bool, otel: bool) -> float:
    async with await open_store(db) as store:
        if not ledger:
            store.messages.usage = None
        if otel:
            from opentelemetry.sdk.trace import TracerProvider
            from turnlog.adapters.otel import OtelObserver

            store.messages.observers = [OtelObserver(TracerProvider())]
        engine = TurnEngine(store.log, EchoLLM(), messages=store.messages)
        conv = await engine.create_conversation(model="m")
        start = time.perf_counter()
        for i in range(turns):
            async for _ in engine.run_turn(conv, TurnRequest(f"message {i} with a few words in it")):
                pass
        return turns / (time.perf_counter() - start)


def entries(n: int) -> list[UsageEntry]:
    out = []
    for i in range(n):
        day = f"2026-{1 + (i // 30) % 3:02d}-{1 + i % 28:02d}"
        out.append(
            UsageEntry(
                f"conv-{i // 10}",
                i % 10 + 2,
                f"turn-{i}",
                1,
                f"tenant-{i % 50}",
                f"user-{i % 500}",
                "p",
                f"model-{i % 4}",
                day,
                f"{day}T12:00:00.000000Z",
                100 + i % 900,
                50 + i % 300,
                150 + i % 1200,
                i % 64,
                i % 32,
            )
        )
    return out


async def report_ms(db: str | Path, n: int) -> dict[str, float]:
    async with await open_store(db) as store:
        ledger = store.usage
        batch = entries(n)
        for i in range(0, n, 5000):
            await ledger.save(batch[i : i + 5000])
        queries = {
            "tenant_by_subject": UsageQuery(by="subject", tenant="tenant-7"),
            "tenant_by_day_month": UsageQuery(by="day", tenant="tenant-7", since="2026-02-01", until="2026-03-01"),
            "all_by_model": UsageQuery(by="model"),
        }
        out = {}
        for name, query in queries.items():
            times = []
            for _ in range(5):
                t = time.perf_counter()
                await usage_report(ledger, query)
                times.append((time.perf_counter() - t) * 1000)
            out[name] = round(statistics.median(times), 2)
        return out


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--turns", type=int, default=200)
    ap.add_argument("--entries", type=int, default=100_000)
    ap.add_argument("--db-url", default=None)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    result: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, ledger, otel in (("no_ledger", False, False), ("ledger", True, False), ("ledger_otel", True, True)):
            result[f"turns_per_s_{name}"] = round(
                await turns_per_second(Path(tmp) / f"{name}.db", args.turns, ledger=ledger, otel=otel), 1
            )
        result["sqlite_report_ms"] = await report_ms(Path(tmp) / "report.db", args.entries)
    if args.db_url:
        await upgrade(args.db_url)
        result["postgres_report_ms"] = await report_ms(args.db_url, args.entries)
    print(json.dumps(result) if args.json else json.dumps(result, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
