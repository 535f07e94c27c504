"""Peak memory of the reading commands on a large conversation: they must stream.

    .venv/bin/python bench/memory_profile.py [--events 1000000] [--db PATH] [--skip NAMES] [--json]

``--db PATH`` keeps the built conversation in PATH and reuses it on the next run (building 1M
events takes a while); without it the file is temporary.

Builds one conversation of N events in a SQLite file (a turn of N - 5 text deltas, appended in
batches of 10,000 through the log's own ``append``, so every hash is real), then runs each reading
command in its own process and reports its peak RSS (``ru_maxrss`` of the finished child, or the
server's ``VmHWM`` from /proc for ``GET /events``):

- ``turnlog replay CONV`` (SSE frames to /dev/null), ``--format events``, ``--format transcript``
- ``turnlog verify CONV`` and ``turnlog verify`` (the whole log: chains, positions, tree)
- ``turnlog export CONV`` (after ``turnlog checkpoint``, which the bench runs once)
- ``turnlog rebuild``
- ``GET /conversations/{id}/events`` from ``turnlog serve`` (the client counts the bytes)

A baseline (``python -c 'import turnlog.adapters.cli'``) shows what the interpreter and the
imports take before any event is read. Run it against an older tree with
``PYTHONPATH=/path/to/site`` (see bench/before_after.py) to compare.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

BATCH = 10_000


async def build(db: Path, n: int) -> str:
    from turnlog.adapters.stores import SqliteEventLog
    from turnlog.engine import (
        ConversationCreated,
        IterationStarted,
        NewEvent,
        TextDelta,
        TurnFinalized,
        TurnStarted,
        Usage,
        UsageRecorded,
    )

    conv, turn = "conv-big", "turn-1"
    started = TurnStarted(
        user_message="go",
        user_message_id="m1",
        assistant_message_id="m2",
        provider="scripted",
        model="bench",
        temperature=None,
        max_tokens=None,
        thinking=False,
        tools=[],
        system_prompt=None,
        max_iterations=5,
    )
    deltas = n - 5
    async with await SqliteEventLog.open(db, synchronous="NORMAL") as log:
        at = "2026-01-01T00:00:00.000000Z"
        version = 0
        head = [
            NewEvent(ConversationCreated(model="bench")),
            NewEvent(started, turn),
            NewEvent(IterationStarted(1, "0" * 64, "bench"), turn),
        ]
        version = len(await log.append(conv, head, version, recorded_at=at))
        delta = NewEvent(TextDelta(1, "tok "), turn)
        left = deltas
        while left:
            k = min(BATCH, left)
            version += len(await log.append(conv, [delta] * k, version, recorded_at=at))
            left -= k
        tail = [
            NewEvent(UsageRecorded(1, 10, deltas, deltas + 10), turn),
            NewEvent(TurnFinalized("m2", deltas, Usage(10, deltas, deltas + 10)), turn),
        ]
        version += len(await log.append(conv, tail, version, recorded_at=at))
    return conv


def measure(cmd: list[str], env: dict[str, str]) -> tuple[float, float, int]:
    """Run ``cmd`` from a fresh intermediate process so its ``RUSAGE_CHILDREN`` is this one's alone."""
    probe = (
        "import resource, subprocess, sys, time, json\n"
        "t = time.perf_counter()\n"
        "p = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)\n"
        "t = time.perf_counter() - t\n"
        "sys.stderr.write(p.stderr.decode()[-300:])\n"
        "print(json.dumps([resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, t, p.returncode]))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe, *cmd], env=env, capture_output=True, check=True)
    if out.stderr:
        print(f"  {' '.join(cmd[3:])}: {out.stderr.decode().strip()}", file=sys.stderr)
    peak, seconds, code = json.loads(out.stdout)
    return peak, seconds, code


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_events(db: Path, conv: str, env: dict[str, str]) -> tuple[float, float, int]:
    """Peak RSS (VmHWM) of ``turnlog serve`` while one client reads the whole conversation."""
    port = free_port()
    cmd = [sys.executable, "-m", "turnlog.adapters.cli", "serve", "--db", str(db), "--port", str(port)]
    server = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(300):
            try:
                urllib.request.urlopen(base + "/health", timeout=1).read()
                break
            except OSError:
                time.sleep(0.1)
        start = time.perf_counter()
        size = 0
        with urllib.request.urlopen(f"{base}/conversations/{conv}/events?mode=delta", timeout=600) as r:
            while chunk := r.read(1 << 16):
                size += len(chunk)
        seconds = time.perf_counter() - start
        status = Path(f"/proc/{server.pid}/status").read_text()
        hwm = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM"))
        return hwm / 1024, seconds, 0 if size else 1
    finally:
        server.terminate()
        server.wait(10)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--db", type=Path, help="reuse (or create) this file instead of a temporary one")
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    ap.add_argument("--skip", default="", help="comma-separated command names to skip")
    args = ap.parse_args()
    tmp = tempfile.TemporaryDirectory()
    db = args.db or Path(tmp.name) / "big.db"
    if not db.exists():
        t = time.perf_counter()
        conv = asyncio.run(build(db, args.events))
        print(f"built {args.events:,} events in {time.perf_counter() - t:.1f} s ({db})", file=sys.stderr)
    else:
        conv = "conv-big"
    env = dict(os.environ)
    cli = [sys.executable, "-m", "turnlog.adapters.cli"]
    dbarg = ["--db", str(db)]
    # export needs a checkpoint: sign the log's head once (a key in the temporary directory).
    key = Path(tmp.name) / "bench.key"
    subprocess.run([*cli, "keygen", str(key)], env=env, check=True, stdout=subprocess.DEVNULL)
    subprocess.run([*cli, "checkpoint", "--key", str(key), *dbarg], env=env, check=True, stdout=subprocess.DEVNULL)
    runs = {
        "baseline (imports only)": [sys.executable, "-c", "import turnlog.adapters.cli, turnlog.adapters.server"],
        "replay (sse)": [*cli, "replay", conv, *dbarg],
        "replay --format events": [*cli, "replay", conv, "--format", "events", *dbarg],
        "replay --format transcript": [*cli, "replay", conv, "--format", "transcript", *dbarg],
        "verify CONV": [*cli, "verify", conv, *dbarg],
        "verify (whole log)": [*cli, "verify", *dbarg],
        "export CONV": [*cli, "export", conv, *dbarg],
        "rebuild": [*cli, "rebuild", *dbarg],
    }
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    results: dict[str, list[float]] = {}
    for name, cmd in runs.items():
        if name in skip:
            continue
        peak, seconds, code = measure(cmd, env)
        results[name] = [round(peak, 1), round(seconds, 2), code]
    if "GET /events" not in skip:
        peak, seconds, code = serve_events(db, conv, env)
        results["GET /events (server VmHWM)"] = [round(peak, 1), round(seconds, 2), code]
    if args.json:
        print(json.dumps({"events": args.events, "peak_mb": results}))
        return
    print(f"memory_profile: one conversation of {args.events:,} events (python {sys.version.split()[0]})")
    print("| command | peak RSS | seconds | exit |")
    print("|---|---|---|---|")
    for name, (peak, seconds, code) in results.items():
        print(f"| {name} | {peak:.0f} MB | {seconds:.1f} | {code} |")


if __name__ == "__main__":
    main()
