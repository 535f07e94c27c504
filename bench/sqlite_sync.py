"""SQLite durability levels: what ``synchronous=FULL`` (or EXTRA) costs against NORMAL, in one run.

    .venv/bin/python bench/sqlite_sync.py [--deltas 50000] [--turns 100] [--turn-deltas 1000]
                                          [--appends 2000] [--repeat 3] [--dir .]

The trade (WAL mode): NORMAL syncs the WAL only at checkpoints, so a commit survives a killed
process but the last commits before a power loss or an OS crash can be lost; FULL syncs the WAL
at every commit (a commit that returned is on the disk); EXTRA also syncs the directory after a
journal is unlinked (nothing more in WAL mode but a sync at checkpoint). Group commit is what
makes FULL affordable: one sync per batch of events, not per event.

Sections, each under every level, levels interleaved within each repetition (the median of
``--repeat`` runs is reported, so the levels see the same machine load):
- durable turn: one turn of N text deltas through the whole engine (SQLite log with group commit,
  message rows, every delta committed before its ``delta``-mode frame is yielded and consumed),
  as bench/turn_throughput.py's durable section; with the events per commit it saw;
- concurrent turns: T turns of D deltas at once in one process on one SQLite file;
- paced turns: T turns at once whose model streams a delta every X ms (a real model's pace, as
  bench/server_load.py's EchoLLM): the time from a delta leaving the model to its event being
  committed and yielded (p50, p99), the latency a sync adds to what a client sees;
- appends: one event per commit, one writer (the worst case: a slow model whose every delta is
  its own batch), which is the cost of one sync.

The databases are created in a temporary folder under ``--dir`` (default: the current folder,
so the disk measured is the one a log would use; a tmpfs would make every sync free).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

from turnlog.adapters.llm import ScriptedLLM
from turnlog.adapters.stores import SqliteEventLog, SqlMessageStore
from turnlog.engine import (
    FinishChunk,
    LLMChunk,
    LLMRequest,
    NewEvent,
    TextChunk,
    TextDelta,
    TurnEngine,
    TurnRequest,
    UsageChunk,
)
from turnlog.projections import stream_sse

LEVELS = ("NORMAL", "FULL", "EXTRA")
TOKEN = "tok "


def chunks(n: int) -> list[object]:
    return [TextChunk(TOKEN) for _ in range(n)] + [UsageChunk(10, n, n + 10), FinishChunk("stop")]


class Counted:
    """Counts the log's commits (group commits) without changing what they do."""

    def __init__(self, log: SqliteEventLog) -> None:
        self.commits = 0
        self.events = 0
        append = log.append

        async def counted(stream_id, events, expected_version, *, recorded_at):  # type: ignore[no-untyped-def]
            self.commits += 1
            self.events += len(events)
            return await append(stream_id, events, expected_version, recorded_at=recorded_at)

        log.append = counted  # type: ignore[method-assign]


async def durable_turn(db: Path, level: str, n: int) -> tuple[float, float]:
    """(deltas/s, events per commit)."""
    async with await SqliteEventLog.open(db, synchronous=level) as log:
        counted = Counted(log)
        engine = TurnEngine(log, ScriptedLLM([chunks(n)]), messages=SqlMessageStore(log.writer))
        conv = await engine.create_conversation(model="bench")
        frames = 0
        start = time.perf_counter()
        async for _ in stream_sse(engine, conv, TurnRequest("go"), "delta"):
            frames += 1
        rate = n / (time.perf_counter() - start)
        assert frames == n + 1, frames
        return rate, counted.events / max(counted.commits, 1)


async def concurrent_turns(db: Path, level: str, turns: int, per_turn: int) -> tuple[float, float]:
    """(deltas/s over all turns, events per commit)."""
    async with await SqliteEventLog.open(db, synchronous=level) as log:
        messages = SqlMessageStore(log.writer)
        convs = []
        for _ in range(turns):
            engine = TurnEngine(log, ScriptedLLM([chunks(per_turn)]), messages=messages)
            convs.append((engine, await engine.create_conversation(model="bench")))
        counted = Counted(log)

        async def one(engine: TurnEngine, conv: str) -> int:
            return sum([1 async for _ in stream_sse(engine, conv, TurnRequest("go"), "delta")])

        start = time.perf_counter()
        counts = await asyncio.gather(*(one(e, c) for e, c in convs))
        elapsed = time.perf_counter() - start
        assert all(c == per_turn + 1 for c in counts), counts
        return turns * per_turn / elapsed, counted.events / max(counted.commits, 1)


class PacedLLM:
    """A model that streams ``n`` deltas ``delay`` seconds apart, each naming its index, and
    remembers when it produced each one."""

    provider = "bench"
    round_trip_reasoning = False

    def __init__(self, n: int, delay: float) -> None:
        self.n, self.delay = n, delay
        self.produced: list[float] = []

    def render(self, request: LLMRequest) -> bytes:
        return b"{}"

    async def stream(self, body: bytes) -> AsyncIterator[LLMChunk]:
        for k in range(self.n):
            await asyncio.sleep(self.delay)
            self.produced.append(time.perf_counter())
            yield TextChunk(f"{k} ")
        yield FinishChunk("stop")


async def paced_turns(db: Path, level: str, turns: int, per_turn: int, delay: float) -> tuple[float, float, float]:
    """(p50 ms, p99 ms from a delta leaving the model to its committed event, events per commit)."""
    async with await SqliteEventLog.open(db, synchronous=level) as log:
        messages = SqlMessageStore(log.writer)
        runs = []
        for _ in range(turns):
            llm = PacedLLM(per_turn, delay)
            engine = TurnEngine(log, llm, messages=messages)
            runs.append((llm, engine, await engine.create_conversation(model="bench")))
        counted = Counted(log)
        waits: list[float] = []

        async def one(llm: PacedLLM, engine: TurnEngine, conv: str) -> None:
            async for rec in engine.run_turn(conv, TurnRequest("go")):
                if type(rec.event) is TextDelta:
                    waits.append(time.perf_counter() - llm.produced[int(rec.event.text)])

        await asyncio.gather(*(one(*run) for run in runs))
        assert len(waits) == turns * per_turn, len(waits)
        q = statistics.quantiles(waits, n=100)
        return q[49] * 1e3, q[98] * 1e3, counted.events / max(counted.commits, 1)


async def single_appends(db: Path, level: str, n: int) -> float:
    """Commits/s with one event per commit: the price of one commit, sync included."""
    async with await SqliteEventLog.open(db, synchronous=level) as log:
        event = TextDelta(1, TOKEN)
        start = time.perf_counter()
        for version in range(n):
            await log.append("s", [NewEvent(event, "t")], version, recorded_at="2026-01-01T00:00:00Z")
        return n / (time.perf_counter() - start)


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--deltas", type=int, default=50_000)
    ap.add_argument("--turns", type=int, default=100)
    ap.add_argument("--turn-deltas", type=int, default=1000)
    ap.add_argument("--paced-turns", type=int, default=20)
    ap.add_argument("--paced-deltas", type=int, default=100)
    ap.add_argument("--paced-ms", type=float, default=5.0, help="milliseconds between a paced model's deltas")
    ap.add_argument("--appends", type=int, default=2000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--dir", default=".", help="where the temporary databases go (the disk measured)")
    args = ap.parse_args()
    results: dict[tuple[str, str], list[float]] = {}

    def keep(section: str, level: str, value: float) -> None:
        results.setdefault((section, level), []).append(value)

    with tempfile.TemporaryDirectory(prefix="turnlog-sync-", dir=args.dir) as tmp:
        for rep in range(args.repeat):
            for level in LEVELS:
                base = Path(tmp) / f"{level}-{rep}"
                rate, per_commit = asyncio.run(durable_turn(base.with_suffix(".turn.db"), level, args.deltas))
                keep("turn", level, rate)
                keep("turn/commit", level, per_commit)
                rate, per_commit = asyncio.run(
                    concurrent_turns(base.with_suffix(".conc.db"), level, args.turns, args.turn_deltas)
                )
                keep("concurrent", level, rate)
                keep("concurrent/commit", level, per_commit)
                p50, p99, per_commit = asyncio.run(
                    paced_turns(
                        base.with_suffix(".paced.db"), level, args.paced_turns, args.paced_deltas, args.paced_ms / 1e3
                    )
                )
                keep("paced/p50", level, p50)
                keep("paced/p99", level, p99)
                keep("paced/commit", level, per_commit)
                keep("appends", level, asyncio.run(single_appends(base.with_suffix(".app.db"), level, args.appends)))
                print(f"repetition {rep + 1}/{args.repeat}: {level} done", file=sys.stderr)

    def cell(section: str, level: str, fmt: str) -> str:
        values = results[(section, level)]
        return fmt.format(median(values)) + f" ({fmt.format(min(values))}–{fmt.format(max(values))})"

    rows = [
        (f"durable turn, {args.deltas:,} deltas (deltas/s)", "turn", "{:,.0f}"),
        ("  events per commit", "turn/commit", "{:.1f}"),
        (f"concurrent: {args.turns} turns x {args.turn_deltas} deltas, one file (deltas/s)", "concurrent", "{:,.0f}"),
        ("  events per commit", "concurrent/commit", "{:.1f}"),
        (
            f"paced: {args.paced_turns} turns x {args.paced_deltas} deltas {args.paced_ms:g} ms apart, "
            "delta -> committed event, p50 (ms)",
            "paced/p50",
            "{:,.1f}",
        ),
        ("  p99 (ms)", "paced/p99", "{:,.1f}"),
        ("  events per commit", "paced/commit", "{:.1f}"),
        ("appends, 1 event per commit, 1 writer (commits/s)", "appends", "{:,.0f}"),
    ]
    print(
        f"sqlite_sync (python {sys.version.split()[0]}, {os.cpu_count()} cores, median of {args.repeat} "
        f"(min–max), databases under {Path(args.dir).resolve()})"
    )
    print("| measure | " + " | ".join(LEVELS) + " | FULL / NORMAL |")
    print("|---|" + "---|" * (len(LEVELS) + 1))
    for name, section, fmt in rows:
        ratio = median(results[(section, "FULL")]) / median(results[(section, "NORMAL")])
        cells = " | ".join(cell(section, level, fmt) for level in LEVELS)
        print(f"| {name} | {cells} | {ratio:.2f} |")


if __name__ == "__main__":
    main()
