"""``turnlog play`` and ``RecordedLLM`` on a large recording: deltas per second.

    .venv/bin/python bench/play_throughput.py [--deltas 250000] [--rounds 2] [--json]

Writes one OpenAI-style recording of N text deltas (then a finish reason, a usage chunk and
``[DONE]``), then measures, best of ``--rounds``:

- ``RecordedLLM.stream``: the recording served by the local provider server and read by the real
  client (httpx, the SSE reader, the normaliser), every chunk counted, nothing stored;
- ``turnlog play REC.sse --db NEW.db``: the whole command in its own process (a durable turn on
  SQLite, its SSE frames written to /dev/null), from start to exit.

Both count the recording's deltas over the seconds taken (the issue's target: >= 50,000/s). The
default stays under the engine's limit of one turn (``max_turn_deltas``, 262,144): a larger
recording plays until the limit and the turn ends ``too_large``, which the bench refuses.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from turnlog.adapters.llm import RecordedLLM
from turnlog.engine import TextChunk


def recording(n: int) -> bytes:
    delta = b'data: {"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"tok "}}]}\n\n'
    tail = (
        b'data: {"id":"c1","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n'
        b'data: {"id":"c1","choices":[],"usage":{"prompt_tokens":10,"completion_tokens":%d,"total_tokens":%d}}\n\n'
        b"data: [DONE]\n\n"
    ) % (n, n + 10)
    return delta * n + tail


async def stream_once(path: Path) -> tuple[float, int]:
    async with RecordedLLM([path]) as llm:
        start = time.perf_counter()
        texts = 0
        async for chunk in llm.stream(b"{}"):
            texts += type(chunk) is TextChunk
        return time.perf_counter() - start, texts


def play_once(path: Path, tmp: Path, i: int) -> float:
    db = tmp / f"play{i}.db"
    cmd = [sys.executable, "-m", "turnlog.adapters.cli", "play", str(path), "--db", str(db)]
    start = time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
    seconds = time.perf_counter() - start
    if proc.returncode:
        raise SystemExit(f"turnlog play failed: {proc.stderr.decode()[-1000:]}")
    return seconds


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--deltas", type=int, default=250_000)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    n = args.deltas
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        path = tmp / "big.sse"
        path.write_bytes(recording(n))
        stream_s = float("inf")
        play_s = float("inf")
        for i in range(args.rounds):
            seconds, texts = asyncio.run(stream_once(path))
            assert texts == n, f"{texts} text chunks, {n} expected"
            stream_s = min(stream_s, seconds)
            play_s = min(play_s, play_once(path, tmp, i))
    result = {"deltas": n, "recorded_stream_deltas_s": round(n / stream_s), "play_deltas_s": round(n / play_s)}
    if args.json:
        print(json.dumps(result))
        return
    print(f"play_throughput: a recording of {n:,} deltas, best of {args.rounds} ({os.cpu_count()} cores)")
    print("| measure | deltas/s | seconds |")
    print("|---|---|---|")
    print(f"| RecordedLLM.stream (server + client + parser) | {n / stream_s:,.0f} | {stream_s:.2f} |")
    print(f"| turnlog play (whole command, durable turn on SQLite) | {n / play_s:,.0f} | {play_s:.2f} |")


if __name__ == "__main__":
    main()
