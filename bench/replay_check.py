"""Replay against the floor of the same SQLite rows, and what checking every read costs, in one run.

    .venv/bin/python bench/replay_check.py [--deltas 100000] [--rounds 5] [--json]

The conversation is one turn of N text deltas written through the engine (group commit, as
``bench/turn_throughput.py`` writes it). Each round measures, in alternating order:

- ``floor``: the same rows read with the standard library's ``sqlite3`` (one SELECT of every
  column, in version order) and each payload decoded with a msgspec ``Decoder`` of the event
  union, nothing else: what any reader of these rows pays before doing anything with them;
- ``replay``: read (the log's checked pages: ``iter_pages`` where the build has it, else
  ``iter_stream``) + hash check (``ChainCheck``) + fold (``ConversationFold``, the state
  machine's checks) + SSE frames (``SseProjector``, delta mode): what ``turnlog replay`` and the
  server's ``GET .../events`` do;
- ``unchecked``: the same with ``check=False`` (what the hash check costs).

The best round of each is reported, and the ratio replay / floor (the issue's target: >= 0.6).
``--json`` prints one JSON object (bench/before_after.py runs this against two trees).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

import msgspec
from turnlog.adapters.llm import ScriptedLLM
from turnlog.adapters.stores import SqliteEventLog, SqlMessageStore
from turnlog.engine import ConversationFold, FinishChunk, TextChunk, TurnEngine, TurnRequest, UsageChunk
from turnlog.engine._events import AnyEvent
from turnlog.engine._log import BULK_PAGE, ChainCheck
from turnlog.projections import SseProjector

COLUMNS = "stream_id, version, position, turn_id, recorded_at, type, schema, prev_hash, hash, payload"


async def write(db: Path, n: int) -> str:
    chunks = [TextChunk("tok ") for _ in range(n)] + [UsageChunk(10, n, n + 10), FinishChunk("stop")]
    async with await SqliteEventLog.open(db) as log:
        engine = TurnEngine(log, ScriptedLLM([chunks]), messages=SqlMessageStore(log.writer))
        conv = await engine.create_conversation(model="bench")
        async for _ in engine.run_turn(conv, TurnRequest("go")):
            pass
        return conv


def floor_once(db: Path, conv: str) -> tuple[float, float, int]:
    """Seconds (wall, CPU) and rows of one SELECT of the stream + a decode of each payload."""
    decode = msgspec.json.Decoder(AnyEvent).decode
    con = sqlite3.connect(db)
    try:
        start, cpu = time.perf_counter(), time.process_time()
        n = 0
        for row in con.execute(f"SELECT {COLUMNS} FROM turnlog_events WHERE stream_id = ? ORDER BY version", (conv,)):
            decode(row[9])
            n += 1
        return time.perf_counter() - start, time.process_time() - cpu, n
    finally:
        con.close()


async def replay_once(log: SqliteEventLog, conv: str, check: bool) -> tuple[float, float, int, int]:
    """Seconds (wall, CPU of the process: every thread), events and frame bytes of one read +
    (check) + fold + SSE pass."""
    fold = ConversationFold()
    apply = fold.apply
    frame = SseProjector("delta").frame
    n = size = 0
    start, cpu = time.perf_counter(), time.process_time()
    if hasattr(log, "iter_pages"):
        async for page in log.iter_pages(conv, check=check):
            for rec in page:
                apply(rec)
                f = frame(rec)
                if f is not None:
                    size += len(f)
            n += len(page)
    else:
        async for rec in log.iter_stream(conv, check=check):
            apply(rec)
            f = frame(rec)
            if f is not None:
                size += len(f)
            n += 1
    return time.perf_counter() - start, time.process_time() - cpu, n, size


async def measure(db: Path, conv: str, rounds: int) -> dict[str, float]:
    async with await SqliteEventLog.open(db, create=False) as log:
        await replay_once(log, conv, True)  # warm the page cache and the code paths
        floor_once(db, conv)
        best = {k: float("inf") for k in ("replay", "unchecked", "floor")}
        best_cpu = dict(best)
        sizes = set()
        n = 0
        for i in range(rounds):
            order = ("floor", "replay", "unchecked") if i % 2 == 0 else ("unchecked", "replay", "floor")
            for what in order:
                if what == "floor":
                    seconds, cpu, rows = floor_once(db, conv)
                else:
                    seconds, cpu, n, size = await replay_once(log, conv, what == "replay")
                    sizes.add(size)
                best[what] = min(best[what], seconds)
                best_cpu[what] = min(best_cpu[what], cpu)
        assert len(sizes) == 1, "the check changed what was served"
        assert rows == n, "the floor read other rows"
        # The check alone, page by page (each page just read, so in cache).
        alone = float("inf")
        for _ in range(rounds):
            chain = ChainCheck(conv)
            spent = 0.0
            while page := await log.read(conv, chain.version, BULK_PAGE):
                start = time.perf_counter()
                chain.check(page)
                spent += time.perf_counter() - start
            alone = min(alone, spent)
    cpu = {f"{k}_cpu": v for k, v in best_cpu.items()}
    return {"events": n, **best, **cpu, "alone": alone, "paged": hasattr(log, "iter_pages")}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--deltas", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bench.db"
        conv = asyncio.run(write(db, args.deltas))
        r = asyncio.run(measure(db, conv, args.rounds))
    n = r["events"]
    rates = {k: n / r[k] for k in ("floor", "replay", "unchecked")}
    ratio = rates["replay"] / rates["floor"]
    # CPU time (every thread of the process): the steadier figure on a shared machine, where
    # the wall clock measures the other processes too.
    cpu_ratio = r["floor_cpu"] / r["replay_cpu"]
    if args.json:
        rates_s = {f"{k}_events_s": round(v) for k, v in rates.items()}
        cpu_s = {f"{k}_cpu_events_s": round(n / r[f"{k}_cpu"]) for k in ("floor", "replay")}
        print(json.dumps({"events": n, **rates_s, "ratio": ratio, **cpu_s, "ratio_cpu": cpu_ratio}))
        return
    rows = [
        (
            "floor: sqlite3 SELECT + msgspec decode of each payload",
            f"{rates['floor']:,.0f} events/s",
            f"{r['floor']:.3f} s",
        ),
        ("replay: read + hash check + fold + SSE frames", f"{rates['replay']:,.0f} events/s", f"{r['replay']:.3f} s"),
        ("ratio replay / floor (wall clock)", f"{ratio:.3f}", "target >= 0.6"),
        ("ratio replay / floor (CPU time, all threads)", f"{cpu_ratio:.3f}", f"floor {n / r['floor_cpu']:,.0f}/s"),
        ("replay, check=False (read + fold + SSE)", f"{rates['unchecked']:,.0f} events/s", f"{r['unchecked']:.3f} s"),
        ("check's cost within replay", f"{(r['replay'] - r['unchecked']) / n * 1e6:.2f} µs/event", ""),
        ("check alone (ChainCheck.check on each page as read)", f"{r['alone'] / n * 1e6:.2f} µs/event", ""),
    ]
    width = max(len(name) for name, _, _ in rows)
    print(
        f"replay_check: {n:,} events on SQLite, best of {args.rounds} rounds, "
        f"{'paged' if r['paged'] else 'per-event'} reads (python {sys.version.split()[0]}, {os.cpu_count()} cores)"
    )
    print(f"| {'measure'.ljust(width)} | value | time |")
    print(f"|{'-' * (width + 2)}|---|---|")
    for name, value, note in rows:
        print(f"| {name.ljust(width)} | {value} | {note} |")


if __name__ == "__main__":
    main()
