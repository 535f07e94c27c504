"""What checking every read costs: replay of an N-delta conversation on SQLite with and without the
hash-chain check, in one run.

    .venv/bin/python bench/replay_check.py [--deltas 100000] [--rounds 5]

The conversation is one turn of N text deltas written through the engine (group commit, as
``bench/turn_throughput.py`` writes it). Each round replays it both ways, in alternating order:
read (``iter_stream`` in 10k pages) + fold (``ConversationFold``, the state machine's checks) +
SSE frames (``SseProjector``, delta mode), which is what ``replay()`` and the server's
``GET .../events`` do. ``check=True`` recomputes each event's sha256 from its stored bytes and
checks its link (``ChainCheck``); ``check=False`` is the opt-out. The best round of each is
reported, and the check alone (``ChainCheck.check`` timed on each 10k page as it is read).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

from turnlog.adapters.llm import ScriptedLLM
from turnlog.adapters.stores import SqliteEventLog, SqlMessageStore
from turnlog.engine import ConversationFold, FinishChunk, TextChunk, TurnEngine, TurnRequest, UsageChunk
from turnlog.engine._log import BULK_PAGE, ChainCheck
from turnlog.projections import SseProjector


async def write(db: Path, n: int) -> str:
    chunks = [TextChunk("tok ") for _ in range(n)] + [UsageChunk(10, n, n + 10), FinishChunk("stop")]
    async with await SqliteEventLog.open(db) as log:
        engine = TurnEngine(log, ScriptedLLM([chunks]), messages=SqlMessageStore(log.writer))
        conv = await engine.create_conversation(model="bench")
        async for _ in engine.run_turn(conv, TurnRequest("go")):
            pass
        return conv


async def replay_once(log: SqliteEventLog, conv: str, check: bool) -> tuple[float, int, int]:
    """Seconds, events and frame bytes of one read + fold + SSE pass."""
    fold = ConversationFold()
    frame = SseProjector("delta").frame
    n = size = 0
    start = time.perf_counter()
    async for rec in log.iter_stream(conv, check=check):
        fold.apply(rec)
        f = frame(rec)
        if f is not None:
            size += len(f)
        n += 1
    return time.perf_counter() - start, n, size


async def measure(db: Path, conv: str, rounds: int) -> dict[str, float]:
    async with await SqliteEventLog.open(db, create=False) as log:
        await replay_once(log, conv, True)  # warm the page cache and the code paths
        best = {True: float("inf"), False: float("inf")}
        sizes = set()
        n = 0
        for i in range(rounds):
            for check in (True, False) if i % 2 == 0 else (False, True):
                seconds, n, size = await replay_once(log, conv, check)
                best[check] = min(best[check], seconds)
                sizes.add(size)
        assert len(sizes) == 1, "the check changed what was served"
        # The check alone, page by page as iter_stream runs it (each page just read, so in cache).
        alone = float("inf")
        for _ in range(rounds):
            chain = ChainCheck(conv)
            spent = 0.0
            while page := await log.read(conv, chain.version, BULK_PAGE):
                start = time.perf_counter()
                chain.check(page)
                spent += time.perf_counter() - start
            alone = min(alone, spent)
    return {"events": n, "checked": best[True], "unchecked": best[False], "alone": alone}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--deltas", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bench.db"
        conv = asyncio.run(write(db, args.deltas))
        r = asyncio.run(measure(db, conv, args.rounds))
    n = r["events"]
    checked, unchecked = n / r["checked"], n / r["unchecked"]
    rows = [
        ("replay, check=True (read + hash check + fold + SSE)", f"{checked:,.0f} events/s", f"{r['checked']:.3f} s"),
        ("replay, check=False (read + fold + SSE)", f"{unchecked:,.0f} events/s", f"{r['unchecked']:.3f} s"),
        ("ratio checked / unchecked", f"{checked / unchecked:.3f}", ""),
        ("check's cost within replay", f"{(r['checked'] - r['unchecked']) / n * 1e6:.2f} µs/event", ""),
        ("check alone (ChainCheck.check on each page as read)", f"{r['alone'] / n * 1e6:.2f} µs/event", ""),
    ]
    width = max(len(name) for name, _, _ in rows)
    print(
        f"replay_check: {n:,} events on SQLite, best of {args.rounds} rounds "
        f"(python {sys.version.split()[0]}, {os.cpu_count()} cores)"
    )
    print(f"| {'measure'.ljust(width)} | value | time |")
    print(f"|{'-' * (width + 2)}|---|---|")
    for name, value, note in rows:
        print(f"| {name.ljust(width)} | {value} | {note} |")


if __name__ == "__main__":
    main()
