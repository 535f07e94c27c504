"""Turn throughput: durable turnlog against the seed's non-durable per-delta work, in one run.

    .venv/bin/python bench/turn_throughput.py [--deltas 100000] [--turns 100] [--turn-deltas 1000]

Sections (one table at the end):
- durable vs seed: one turn of N text deltas through the whole engine (state machine, SQLite log
  with group commit, every delta committed before its `delta`-mode frame is yielded and consumed),
  against the seed's per-delta work reimplemented here (``process_delta`` + ``_sse_event``, fed
  the same chunks as dicts, emitting delta frames, no persistence). The seed as written
  accumulates with ``state.full_content += content`` on an attribute, which CPython cannot do in
  place: it copies the whole answer on every delta. Both that and a linear variant (the same
  work with the accumulation fixed) are measured, and both ratios reported.
- concurrency: T turns of D deltas at once in one process on one SQLite file.
- replay: read + fold (state-machine checks) + SSE-project the N-delta turn from the log.
- memory and bytes: peak RSS of a process that runs only the N-delta turn; SSE bytes per answer
  size in `delta` mode (linear) and `full` mode (the seed's quadratic growth, shown up to 10k).
- machine: cost of building a transitions Machine per turn against the one shared definition.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from turnlog.adapters.llm import ScriptedLLM
from turnlog.adapters.stores import SqliteEventLog, SqlMessageStore
from turnlog.engine import FinishChunk, TextChunk, TurnEngine, TurnRequest, UsageChunk, replay
from turnlog.engine._machine import MACHINE, STATES, TRANSITIONS, Turn
from turnlog.projections import SseProjector, stream_sse

TOKEN = "tok "


def chunks(n: int) -> list[object]:
    return [TextChunk(TOKEN) for _ in range(n)] + [UsageChunk(10, n, n + 10), FinishChunk("stop")]


# -- the seed's per-delta work, reimplemented (behaviour of seed_chat_service.txt) -----------------


def _sse_event(event: str, data: dict) -> str:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


class _SeedState:
    def __init__(self) -> None:
        self.full_content = ""
        self.full_thinking = ""
        self.step_index = 0
        self.text_step_id: str | None = None
        self.text_step_idx: int | None = None
        self.thinking_step_id: str | None = None
        self.thinking_step_idx: int | None = None
        self.tool_calls_list: list[dict] = []


def seed_process_delta(state: _SeedState, delta: dict, linear_parts: list[str] | None) -> list[str]:
    events = []
    reasoning = delta.get("reasoning_content", "")
    if reasoning:
        if not state.full_thinking:
            state.thinking_step_idx = state.step_index
            state.thinking_step_id = f"step-{state.step_index}"
            state.step_index += 1
        state.full_thinking += reasoning
        events.append(
            _sse_event(
                "process_step",
                {
                    "step": {
                        "id": state.thinking_step_id,
                        "index": state.thinking_step_idx,
                        "type": "thinking",
                        "content": reasoning,
                    }
                },
            )
        )
    content = delta.get("content", "")
    if content:
        if state.text_step_id is None:
            state.text_step_idx = state.step_index
            state.text_step_id = f"step-{state.step_index}"
            state.step_index += 1
        if linear_parts is None:
            state.full_content += content  # the seed's accumulation: a copy of the answer per delta
        else:
            linear_parts.append(content)
        events.append(
            _sse_event(
                "process_step",
                {"step": {"id": state.text_step_id, "index": state.text_step_idx, "type": "text", "content": content}},
            )
        )
    for tc in delta.get("tool_calls", []):
        state.tool_calls_list.append(tc)
    return events


def seed_run(n: int, *, linear: bool) -> tuple[float, int]:
    dict_chunks = [{"choices": [{"index": 0, "delta": {"content": TOKEN}}]} for _ in range(n)]
    state = _SeedState()
    parts: list[str] | None = [] if linear else None
    sent = 0
    start = time.perf_counter()
    for chunk in dict_chunks:
        if "usage" in chunk or "error" in chunk:
            continue
        choices = chunk.get("choices", [])
        delta = choices[0].get("delta", {}) if choices else None
        if delta:
            for frame in seed_process_delta(state, delta, parts):
                sent += len(frame)
    return n / (time.perf_counter() - start), sent


# -- turnlog -----------------------------------------------------------------------------------------


async def durable_turn(db: Path, n: int) -> tuple[float, int, str]:
    async with await SqliteEventLog.open(db) as log:
        engine = TurnEngine(log, ScriptedLLM([chunks(n)]), messages=SqlMessageStore(log.writer))
        conv = await engine.create_conversation(model="bench")
        frames = sent = 0
        start = time.perf_counter()
        async for frame in stream_sse(engine, conv, TurnRequest("go"), "delta"):
            frames += 1
            sent += len(frame)
        rate = n / (time.perf_counter() - start)
        assert frames == n + 1, frames
        return rate, sent, conv


async def concurrent_turns(db: Path, turns: int, per_turn: int) -> float:
    async with await SqliteEventLog.open(db) as log:
        messages = SqlMessageStore(log.writer)
        convs = []
        for _ in range(turns):
            engine = TurnEngine(log, ScriptedLLM([chunks(per_turn)]), messages=messages)
            convs.append((engine, await engine.create_conversation(model="bench")))

        async def one(engine: TurnEngine, conv: str) -> int:
            return sum([1 async for _ in stream_sse(engine, conv, TurnRequest("go"), "delta")])

        start = time.perf_counter()
        counts = await asyncio.gather(*(one(e, c) for e, c in convs))
        elapsed = time.perf_counter() - start
        assert all(c == per_turn + 1 for c in counts), counts
        return turns * per_turn / elapsed


async def replay_rate(db: Path, conv: str) -> tuple[float, int]:
    async with await SqliteEventLog.open(db, create=False) as log:
        proj = SseProjector("delta")
        n = 0
        start = time.perf_counter()
        async for rec in replay(log, conv):
            proj.frame(rec)
            n += 1
        return n / (time.perf_counter() - start), n


def sse_bytes(n: int, mode: str) -> int:
    """Bytes a client receives for an answer of n deltas, projected from the same events a live
    turn records (in memory: the byte count does not depend on the store)."""
    from turnlog.engine import InMemoryEventLog

    async def run() -> int:
        log = InMemoryEventLog()
        engine = TurnEngine(log, ScriptedLLM([chunks(n)]))
        conv = await engine.create_conversation(model="bench")
        return sum([len(f) async for f in stream_sse(engine, conv, TurnRequest("go"), mode)])  # type: ignore[arg-type]

    return asyncio.run(run())


def machine_cost(turns: int = 2000) -> tuple[float, float]:
    from transitions import Machine

    class Model:  # a plain object: a per-turn Machine attaches trigger methods to its model
        pass

    start = time.perf_counter()
    for _ in range(turns):
        model = Model()
        Machine(model=model, states=STATES, transitions=TRANSITIONS, initial="init", auto_transitions=False)
        model.iteration_started()  # type: ignore[attr-defined]
    per_turn = (time.perf_counter() - start) / turns
    start = time.perf_counter()
    for _ in range(turns):
        model = Turn("t")
        MACHINE.events["iteration_started"].trigger(model)
    shared = (time.perf_counter() - start) / turns
    return per_turn * 1e3, shared * 1e3


def child(db: str, n: int) -> None:
    """Runs only the N-delta turn, so its peak RSS is the whole process's for that turn."""
    rate, sent, conv = asyncio.run(durable_turn(Path(db), n))
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"rate": rate, "sent": sent, "conv": conv, "peak_mb": peak_mb}))


def quick(n: int) -> None:
    """The durable turn (in its own process) and the seed's two variants, as one JSON object
    (bench/before_after.py compares two trees with it)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.run(
            [sys.executable, __file__, "--child", str(Path(tmp) / "bench.db"), "--deltas", str(n)],
            check=True,
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONHASHSEED": "0"},
        )
    durable = json.loads(out.stdout.strip().splitlines()[-1])
    seed_quadratic, _ = seed_run(n, linear=False)
    seed_linear, _ = seed_run(n, linear=True)
    print(
        json.dumps(
            {
                "durable_deltas_s": round(durable["rate"]),
                "seed_as_written_deltas_s": round(seed_quadratic),
                "seed_linear_deltas_s": round(seed_linear),
                "ratio_vs_seed_as_written": durable["rate"] / seed_quadratic,
                "ratio_vs_seed_linear": durable["rate"] / seed_linear,
                "peak_mb": round(durable["peak_mb"]),
            }
        )
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--deltas", type=int, default=100_000)
    ap.add_argument("--turns", type=int, default=100)
    ap.add_argument("--turn-deltas", type=int, default=1000)
    ap.add_argument("--child", metavar="DB", help=argparse.SUPPRESS)
    ap.add_argument("--json", action="store_true", help="only the durable turn and the seed: one JSON object")
    args = ap.parse_args()
    if args.child:
        child(args.child, args.deltas)
        return
    if args.json:
        quick(args.deltas)
        return
    n = args.deltas
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bench.db"
        out = subprocess.run(
            [sys.executable, __file__, "--child", str(db), "--deltas", str(n)],
            check=True,
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONHASHSEED": "0"},
        )
        durable = json.loads(out.stdout.strip().splitlines()[-1])
        seed_quadratic, _ = seed_run(n, linear=False)
        seed_linear, _ = seed_run(n, linear=True)
        replay_eps, replay_n = asyncio.run(replay_rate(db, durable["conv"]))
        concurrent = asyncio.run(concurrent_turns(Path(tmp) / "concurrent.db", args.turns, args.turn_deltas))
    per_turn_ms, shared_ms = machine_cost()
    sizes = [s for s in (1_000, 10_000, 100_000) if s <= n]
    delta_bytes = {s: sse_bytes(s, "delta") for s in sizes}
    full_bytes = {s: sse_bytes(s, "full") for s in sizes if s <= 10_000}

    rows = [
        ("durable turn (SQLite, group commit, delta frames)", f"{durable['rate']:,.0f} deltas/s", ""),
        ("seed per-delta work as written (no persistence)", f"{seed_quadratic:,.0f} deltas/s", ""),
        ("seed per-delta work, accumulation made linear", f"{seed_linear:,.0f} deltas/s", ""),
        ("ratio turnlog / seed as written", f"{durable['rate'] / seed_quadratic:.2f}x", "target >= 1.0x (issue 14)"),
        ("ratio turnlog / seed made linear", f"{durable['rate'] / seed_linear:.2f}x", "(stricter than the target)"),
        (
            f"concurrency: {args.turns} turns x {args.turn_deltas} deltas, one SQLite file",
            f"{concurrent:,.0f} deltas/s",
            "target >= 30,000",
        ),
        (f"replay: read + fold + SSE-project {replay_n:,} events", f"{replay_eps:,.0f} events/s", "target >= 500,000"),
        (f"peak RSS, process running the {n:,}-delta turn", f"{durable['peak_mb']:.0f} MB", "target < 150 MB"),
        *[(f"SSE bytes, delta mode, {s:,} deltas", f"{b:,}", "linear") for s, b in delta_bytes.items()],
        *[(f"SSE bytes, full mode, {s:,} deltas", f"{b:,}", "quadratic (seed)") for s, b in full_bytes.items()],
        ("transitions Machine built per turn", f"{per_turn_ms:.3f} ms/turn", ""),
        ("one shared Machine, trigger per phase change", f"{shared_ms:.4f} ms/turn", ""),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"turn_throughput (python {sys.version.split()[0]}, {os.cpu_count()} cores)")
    print(f"| {'measure'.ljust(width)} | value | note |")
    print(f"|{'-' * (width + 2)}|---|---|")
    for name, value, note in rows:
        print(f"| {name.ljust(width)} | {value} | {note} |")


if __name__ == "__main__":
    main()
