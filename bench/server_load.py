"""HTTP service under load: N concurrent turns through `turnlog serve`'s app, on SQLite and PostgreSQL.

    .venv/bin/python bench/server_load.py [--concurrency 10,50,100,200] [--words 100] [--delay 0.005]
                                          [--pg URL] [--quick]

Method:
- The server runs in a child process (uvicorn + the service, scripted ``EchoLLM``: one text delta
  per word, ``--delay`` seconds before each, like a model streaming), so the load generator does
  not share its event loop. On a 2-core machine the two processes still share the cores: the
  figures are for the whole system, client included.
- For each N: N conversations are created, then N turns start at once (one per conversation),
  each a message of ``--words`` words; every SSE stream is read to its end. turns/s = N / wall
  time from the first POST to the last stream's end; events/s = events those turns appended
  (read back from the log) / the same wall time.
- Commit -> frame: each frame's arrival is stamped with the wall clock (``time.time()``) as soon
  as its bytes are parsed; the event it came from (the frame's ``id:`` is its version) carries
  ``recorded_at``, the clock reading the engine takes for its batch just *before* the commit. So
  arrival - recorded_at is commit -> frame plus the commit itself: an upper bound, by the
  commit's duration (sub-millisecond on both stores, see bench/store_throughput.py).
- Correctness, while at it: every client's frames must equal a replay of the log projected to
  SSE; mismatches are counted and printed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import httpx

DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"
FRAME_ID = re.compile(rb"^id: (\d+)$", re.M)


# -- the server (child process) ---------------------------------------------------------------------


async def serve(db: str, delay: float) -> None:
    import uvicorn
    from turnlog.adapters.llm import EchoLLM
    from turnlog.adapters.server import ServerConfig, TurnService, create_app
    from turnlog.adapters.stores import open_store

    log, messages = await open_store(db)
    async with log:
        service = TurnService(log, messages, EchoLLM(delay=delay), config=ServerConfig(recover_grace=0))
        config = uvicorn.Config(
            create_app(service), host="127.0.0.1", port=0, log_level="warning", ws="none", backlog=4096
        )
        server = uvicorn.Server(config)
        task = asyncio.get_running_loop().create_task(server.serve())
        while not server.started:
            if task.done():
                task.result()
                return
            await asyncio.sleep(0.01)
        print(f"PORT {server.servers[0].sockets[0].getsockname()[1]}", flush=True)
        await task


class Child:
    def __init__(self, db: str, delay: float) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--serve", db, "--delay", str(delay)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.startswith("PORT "):
            self.stop()
            raise RuntimeError(f"the server did not start (it printed {line!r})")
        self.url = f"http://127.0.0.1:{int(line.split()[1])}"

    def cpu_seconds(self) -> float:
        """User + system CPU time the server process has used (Linux /proc)."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# -- the load (parent process) ----------------------------------------------------------------------


@dataclass
class Turn:
    conv: str
    frames: list[bytes] = field(default_factory=list)
    #: frame id (event version) -> wall-clock arrival
    arrived: dict[int, float] = field(default_factory=dict)


@dataclass
class Row:
    store: str
    n: int
    turns_s: float
    events_s: float
    p50_ms: float
    p99_ms: float
    wall_s: float
    mismatches: int
    per_commit: float
    server_cpu: float
    client_cpu: float


async def run_turn(client: httpx.AsyncClient, turn: Turn, message: str) -> None:
    buffer = b""
    async with client.stream("POST", f"/conversations/{turn.conv}/turns", json={"message": message}) as r:
        if r.status_code != 200:
            raise RuntimeError(f"turn refused: {r.status_code} {await r.aread()!r}")
        async for chunk in r.aiter_raw():
            now = time.time()
            buffer += chunk
            *blocks, buffer = buffer.split(b"\n\n")
            for block in blocks:
                m = FRAME_ID.search(block)
                if m is not None:
                    turn.frames.append(block + b"\n\n")
                    turn.arrived[int(m.group(1))] = now


def _epoch(recorded_at: str) -> float:
    return datetime.fromisoformat(recorded_at.replace("Z", "+00:00")).timestamp()


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def measure(store: str, db: str, child: Child, n: int, words: int) -> Row:
    from turnlog.adapters.stores import open_store
    from turnlog.engine import replay
    from turnlog.projections import project

    message = " ".join(f"w{i}" for i in range(words))
    limits = httpx.Limits(max_connections=n + 10, max_keepalive_connections=n + 10)
    async with httpx.AsyncClient(base_url=child.url, limits=limits, timeout=120) as client:
        convs = [(await client.post("/conversations", json={})).json()["id"] for _ in range(n)]
        turns = [Turn(c) for c in convs]
        start, server0, client0 = time.perf_counter(), child.cpu_seconds(), _own_cpu()
        await asyncio.gather(*(run_turn(client, t, message) for t in turns))
        wall = time.perf_counter() - start
        # Share of one core each process used during the run (2 cores: 2.0 is the whole machine).
        server_cpu, client_cpu = (child.cpu_seconds() - server0) / wall, (_own_cpu() - client0) / wall

    latencies: list[float] = []
    events = 0
    commits = 0
    mismatches = 0
    log, _ = await open_store(db, create=False)
    async with log:
        for t in turns:
            recs = [rec async for rec in replay(log, t.conv)]
            events += len(recs) - 1  # all but ConversationCreated
            if project(recs) != t.frames:
                mismatches += 1
            committed = {rec.version: _epoch(rec.recorded_at) for rec in recs}
            # One clock reading per group commit: distinct recorded_at values count the commits.
            commits += len({rec.recorded_at for rec in recs[1:]})
            latencies += [(at - committed[v]) * 1000 for v, at in t.arrived.items()]
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    return Row(
        store,
        n,
        n / wall,
        events / wall,
        statistics.median(latencies),
        p99,
        wall,
        mismatches,
        events / commits,
        server_cpu,
        client_cpu,
    )


async def pg_reachable(url: str) -> str | None:
    import asyncpg
    from turnlog.adapters.stores import parse_pg_url

    try:
        conn = await asyncpg.connect(parse_pg_url(url).dsn, timeout=3)
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        return f"{type(exc).__name__}: {exc}"
    await conn.close()
    return None


async def drop_schema(url: str, schema: str) -> None:
    import asyncpg
    from turnlog.adapters.stores import parse_pg_url

    conn = await asyncpg.connect(parse_pg_url(url).dsn, timeout=5)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


async def bench_store(store: str, db: str, counts: list[int], words: int, delay: float) -> list[Row]:
    child = Child(db, delay)
    try:
        rows = []
        for n in counts:
            row = await measure(store, db, child, n, words)
            print(
                f"  {store:<8} N={n:<4} {row.turns_s:8.1f} turns/s {row.events_s:10,.0f} events/s "
                f"p50 {row.p50_ms:7.1f} ms p99 {row.p99_ms:7.1f} ms, {row.per_commit:.1f} events/commit, "
                f"CPU server {row.server_cpu:.2f} client {row.client_cpu:.2f} cores",
                flush=True,
            )
            rows.append(row)
        return rows
    finally:
        child.stop()


async def main(args: argparse.Namespace) -> None:
    from turnlog.adapters.stores import upgrade

    counts = [int(x) for x in args.concurrency.split(",")]
    print(
        f"server_load: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}; each turn {args.words} words "
        f"(one delta each), model delay {args.delay * 1000:g} ms per delta; server in a child process",
        flush=True,
    )
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        rows += await bench_store("sqlite", str(Path(tmp) / "load.db"), counts, args.words, args.delay)
    why = await pg_reachable(args.pg)
    if why is not None:
        print(f"PostgreSQL skipped: unreachable at {args.pg} ({why})")
    else:
        schema = f"bench_{uuid.uuid4().hex[:12]}"
        url = f"{args.pg}{'&' if '?' in args.pg else '?'}schema={schema}"
        try:
            await upgrade(url)
            rows += await bench_store("postgres", url, counts, args.words, args.delay)
        finally:
            await drop_schema(args.pg, schema)

    print()
    print(
        f"{'store':<9}{'N':>5}{'turns/s':>10}{'events/s':>11}{'p50 ms':>9}{'p99 ms':>9}{'wall s':>8}{'ev/commit':>10}{'mismatch':>10}"
    )
    for r in rows:
        print(
            f"{r.store:<9}{r.n:>5}{r.turns_s:>10.1f}{r.events_s:>11,.0f}{r.p50_ms:>9.1f}{r.p99_ms:>9.1f}"
            f"{r.wall_s:>8.2f}{r.per_commit:>10.1f}{r.mismatches:>10}"
        )
    for store in ("sqlite", "postgres"):
        mine = [r for r in rows if r.store == store]
        if len(mine) >= 2:
            lo, hi = mine[0], mine[-1]
            print(
                f"{store}: N {lo.n} -> {hi.n} ({hi.n / lo.n:g}x): turns/s x{hi.turns_s / lo.turns_s:.2f}, "
                f"events/s x{hi.events_s / lo.events_s:.2f}, p50 x{hi.p50_ms / lo.p50_ms:.1f}, "
                f"p99 x{hi.p99_ms / lo.p99_ms:.1f}"
            )
    if any(r.mismatches for r in rows):
        sys.exit("some clients received frames that differ from the replay")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--concurrency", default="10,50,100,200", help="comma-separated N")
    parser.add_argument("--words", type=int, default=100, help="words per answer (one text delta each)")
    parser.add_argument("--delay", type=float, default=0.005, help="model delay before each delta (seconds)")
    parser.add_argument("--pg", default=os.environ.get("TURNLOG_TEST_PG_URL", DEFAULT_PG))
    parser.add_argument("--quick", action="store_true", help="N=10,20 and 20 words: checks the script works")
    parser.add_argument("--serve", metavar="DB", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(serve(args.serve, args.delay))
    else:
        if args.quick:
            args.concurrency, args.words = "10,20", 20
        asyncio.run(main(args))
