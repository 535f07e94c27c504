"""What a fork costs at a turn's start: the earlier messages read for the request, direct vs
through fork links (issue 12). A conversation of T turns (each a tool call, its result and an
answer) on SQLite; the history a new turn would send is read (rows, and links checked) for the
conversation itself, for a fork at its last boundary, and for the end of a chain of D forks.

    .venv/bin/python bench/fork_history.py [--turns 200] [--depth 8] [--runs 20]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from turnlog.adapters.llm import ScriptedLLM
from turnlog.adapters.stores import open_store
from turnlog.engine import ToolRegistry, TurnEngine, TurnRequest
from turnlog.engine._fork import first_event, prior_for_turn


def tools() -> ToolRegistry:
    registry = ToolRegistry()

    def add(a: int, b: int) -> int:
        return a + b

    registry.register(add)
    return registry


async def main(turns: int, depth: int, runs: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        log, messages = await open_store(str(Path(tmp) / "b.db"))
        async with log:
            script = []
            for i in range(turns):
                script += [[{"tool": "add", "arguments": {"a": i, "b": 1}}], [{"text": f"answer {i} " * 10}]]
            engine = TurnEngine(log, ScriptedLLM(script), tools=tools(), messages=messages)
            conv = await engine.create_conversation(model="m", system_prompt="Be brief.")
            for i in range(turns):
                [r async for r in engine.run_turn(conv, TurnRequest(f"question {i}", enabled_tools=["add"]))]
            chain = [conv]
            for _ in range(depth):
                chain.append(await engine.fork(chain[-1], (await log.last(chain[-1])).version))

            async def measure(c: str) -> tuple[float, int]:
                created = await first_event(log, c)
                head = (await log.last(c)).version  # type: ignore[union-attr]
                times = []
                for _ in range(runs):
                    t = time.perf_counter()
                    prior, _ = await prior_for_turn(engine, c, created, head, "next")
                    times.append(time.perf_counter() - t)
                return statistics.median(times) * 1000, len(prior)

            for label, c in (("direct", conv), ("fork (1 link)", chain[1]), (f"chain ({depth} links)", chain[-1])):
                ms, n = await measure(c)
                print(f"{label:>18}: {n} messages, history read in {ms:.2f} ms (median of {runs})")


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--turns", type=int, default=200)
    p.add_argument("--depth", type=int, default=8)
    p.add_argument("--runs", type=int, default=20)
    a = p.parse_args()
    asyncio.run(main(a.turns, a.depth, a.runs))
