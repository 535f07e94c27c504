"""HTTP service under load: N concurrent turns through `turnlog serve`, on SQLite and PostgreSQL, against
a bare SSE relay of the same frames, and against an older build of turnlog, in one run.

    .venv/bin/python bench/server_load.py [--concurrency 200] [--words 100] [--delay 0.005]
                                          [--before /tmp/before] [--workers 1,2] [--latency-delay 0.02]
                                          [--pg URL] [--quick]

Method:
- Every server runs in child processes of its own (``turnlog serve`` of the tree it measures, its
  scripted ``EchoLLM``: one text delta per word, ``--delay`` seconds before each, like a model
  streaming), so the load generator does not share its event loop. ``--before DIR`` names a
  worktree of an older build with its own venv (``DIR/.venv``): its rows are measured in the same
  run, by the same client, on the same machine. On a 2-core machine the server and the client
  share the cores: the figures are for the whole system, client included.
- The yardstick is ``bench/relay_baseline.py``: a bare Starlette SSE relay of the same frames
  (the frames turnlog sends for the same answer) with no persistence. "x relay" is turnlog's
  events/s over the relay's, where the relay's events/s is its turns/s times the events turnlog
  records per turn of that answer (the same answer, the same work for the client).
- For each N: N conversations are created, then N turns start at once (one per conversation),
  each a message of ``--words`` words; every SSE stream is read to its end. turns/s = N / wall
  time from the first POST to the last stream's end; events/s = events those turns appended
  (read back from the log) / the same wall time; per process = events/s / workers.
- Commit -> frame: each frame's arrival is stamped with the wall clock (``time.time()``) as soon
  as its bytes are parsed; the event it came from (the frame's ``id:`` is its version) carries
  ``recorded_at``, the clock reading the engine takes for its batch just *before* it hands the
  batch to the log. So arrival - recorded_at is commit -> frame plus the commit itself and any
  wait for the group in flight: an upper bound. ``--latency-delay`` runs the turns again at a
  realistic pace (20 ms between deltas: 50 tokens/s) on PostgreSQL, where the p99 is the figure.
- Correctness, while at it: every client's frames must equal a replay of the log projected to
  SSE (checked by the tree that wrote the log); mismatches are counted and printed.
- ``--workers 1,2``: this build's ``turnlog serve --workers N`` over one PostgreSQL.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import resource
import socket
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
HERE = Path(__file__).resolve().parent
THIS_TREE = HERE.parent


# -- the servers (child processes) ------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _python(tree: Path) -> str:
    return str(tree / ".venv" / "bin" / "python")


def _tree_cpu(pid: int) -> float:
    """User + system CPU seconds of a process and its live descendants (Linux /proc)."""
    total = 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        for task in Path(f"/proc/{pid}/task").iterdir():
            for child in (task / "children").read_text().split():
                total += _tree_cpu(int(child))
    except (FileNotFoundError, ProcessLookupError):
        pass
    return total


class Child:
    """A server in child processes: ``turnlog serve`` of a tree, or the relay."""

    def __init__(self, argv: list[str], port: int, env: dict[str, str] | None = None) -> None:
        # The server's stderr goes to a file, never an unread pipe: a server that logs a lot
        # would block on a full pipe and the bench would measure that. What it logged at ERROR
        # is printed when it stops.
        self.log = tempfile.TemporaryFile("w+")
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=self.log, text=True, env=env)
        self.url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server did not start: {self.logged()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the server did not answer /health within 60 s")
            time.sleep(0.1)

    @classmethod
    def turnlog(cls, tree: Path, db: str, delay: float, workers: int = 1) -> Child:
        port = _free_port()
        argv = [_python(tree), "-m", "turnlog.adapters.cli", "serve", "--db", db, "--port", str(port)]
        argv += ["--echo-delay", str(delay), "--recover-grace", "0", "--max-connections", "0", "--keep-alive", "60"]
        if workers > 1:
            argv += ["--workers", str(workers)]
        return cls(argv, port, env={**os.environ, "PYTHONWARNINGS": "ignore"})

    @classmethod
    def relay(cls, words: int, delay: float) -> Child:
        port = _free_port()
        argv = [sys.executable, str(HERE / "relay_baseline.py"), "--port", str(port)]
        return cls([*argv, "--words", str(words), "--delay", str(delay)], port)

    def cpu_seconds(self) -> float:
        return _tree_cpu(self.proc.pid)

    def logged(self) -> str:
        self.log.seek(0)
        return self.log.read()

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        errors = [line for line in self.logged().splitlines() if "ERROR" in line or "Traceback" in line]
        if errors:
            print(f"  (the server logged {len(errors)} error lines; the first: {errors[0][:300]})", file=sys.stderr)
        self.log.close()


# -- the load (parent process) ----------------------------------------------------------------------


@dataclass
class Turn:
    conv: str
    frames: list[bytes] = field(default_factory=list)
    #: frame id (event version) -> wall-clock arrival
    arrived: dict[int, float] = field(default_factory=dict)


@dataclass
class Row:
    label: str
    store: str
    workers: int
    n: int
    delay_ms: float
    turns_s: float
    wall_s: float
    server_cpu: float
    client_cpu: float
    events: int = 0
    p50_ms: float = float("nan")
    p99_ms: float = float("nan")
    per_commit: float = float("nan")
    mismatches: int = 0

    @property
    def events_s(self) -> float:
        return self.events / self.wall_s

    @property
    def per_process(self) -> float:
        return self.events_s / self.workers

    @property
    def per_cpu(self) -> float:
        """Events per CPU-second of the server's processes: what one process does with a core of
        its own (robust to other load on the machine, which stretches the wall time)."""
        return self.events / max(self.server_cpu * self.wall_s, 1e-9)


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


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def load(child: Child, n: int, words: int) -> tuple[list[Turn], float, float, float]:
    """N turns at once; returns them, the wall time and the server's and the client's CPU share."""
    message = " ".join(f"w{i}" for i in range(words))
    limits = httpx.Limits(max_connections=n + 10, max_keepalive_connections=n + 10)
    async with httpx.AsyncClient(base_url=child.url, limits=limits, timeout=300) as client:
        convs = [(await client.post("/conversations", json={})).json()["id"] for _ in range(n)]
        turns = [Turn(c) for c in convs]
        start, server0, client0 = time.perf_counter(), child.cpu_seconds(), _own_cpu()
        await asyncio.gather(*(run_turn(client, t, message) for t in turns))
        wall = time.perf_counter() - start
        # Share of one core each side used during the run (2 cores: 2.0 is the whole machine).
        return turns, wall, (child.cpu_seconds() - server0) / wall, (_own_cpu() - client0) / wall


def check(tree: Path, db: str, turns: list[Turn]) -> dict[str, float]:
    """Read the log back with the tree that wrote it (``--verify``, a child process)."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(
            [
                {"conv": t.conv, "frames": [fr.decode() for fr in t.frames], "arrived": list(t.arrived.items())}
                for t in turns
            ],
            f,
        )
    try:
        out = subprocess.run(
            [_python(tree), __file__, "--verify", db, "--dump", f.name], capture_output=True, text=True, check=False
        )
    finally:
        os.unlink(f.name)
    if out.returncode != 0:
        raise RuntimeError(f"reading the log back failed: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


async def verify(db: str, dump: str) -> None:
    """In the tree that wrote ``db``: events, commits, mismatches and commit -> frame percentiles."""
    from turnlog.adapters.stores import open_store
    from turnlog.engine import replay
    from turnlog.projections import project

    def epoch(recorded_at: str) -> float:
        return datetime.fromisoformat(recorded_at.replace("Z", "+00:00")).timestamp()

    turns = json.loads(Path(dump).read_text())
    latencies: list[float] = []
    events = commits = mismatches = 0
    log, _ = await open_store(db, create=False)
    async with log:
        for t in turns:
            recs = [rec async for rec in replay(log, t["conv"])]
            events += len(recs) - 1  # all but ConversationCreated
            if project(recs) != [fr.encode() for fr in t["frames"]]:
                mismatches += 1
            committed = {rec.version: epoch(rec.recorded_at) for rec in recs}
            # One clock reading per turn's group commit: distinct recorded_at values count them.
            commits += len({rec.recorded_at for rec in recs[1:]})
            latencies += [(at - committed[v]) * 1000 for v, at in t["arrived"]]
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    result = {"events": events, "commits": commits, "mismatches": mismatches, "p50": statistics.median(latencies)}
    print(json.dumps({**result, "p99": p99}))


async def pg_reachable(url: str) -> str | None:
    import asyncpg

    try:
        conn = await asyncpg.connect(url.split("?")[0], timeout=3)
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        return f"{type(exc).__name__}: {exc}"
    await conn.close()
    return None


async def drop_schema(url: str, schema: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(url.split("?")[0], timeout=5)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


def _print(row: Row) -> None:
    print(
        f"  {row.label:<7} {row.store:<8} w={row.workers} N={row.n:<4} delay {row.delay_ms:g} ms: "
        f"{row.turns_s:7.1f} turns/s {row.events_s:9,.0f} events/s ({row.per_process:,.0f}/process) "
        f"p50 {row.p50_ms:7.1f} ms p99 {row.p99_ms:7.1f} ms, {row.per_commit:.1f} events/commit, "
        f"CPU server {row.server_cpu:.2f} client {row.client_cpu:.2f} cores, mismatches {row.mismatches}",
        flush=True,
    )


async def bench_turnlog(
    label: str, tree: Path, store: str, n: int, args: argparse.Namespace, *, delay: float, workers: int = 1
) -> Row:
    """One row: a fresh database, a fresh server of ``tree``, N turns, the log read back."""
    with tempfile.TemporaryDirectory() as tmp:
        if store == "sqlite":
            db, schema = str(Path(tmp) / "load.db"), None
        else:
            schema = f"bench_{uuid.uuid4().hex[:12]}"
            db = f"{args.pg}{'&' if '?' in args.pg else '?'}schema={schema}"
            subprocess.run(
                [_python(tree), "-m", "turnlog.adapters.cli", "db", "upgrade", "--db", db],
                check=True,
                capture_output=True,
            )
        try:
            child = Child.turnlog(tree, db, delay, workers)
            try:
                turns, wall, server_cpu, client_cpu = await load(child, n, args.words)
            finally:
                child.stop()
            got = check(tree, db, turns)
        finally:
            if schema is not None:
                await drop_schema(args.pg, schema)
    row = Row(label, store, workers, n, delay * 1000, n / wall, wall, server_cpu, client_cpu)
    row.events, row.p50_ms, row.p99_ms = int(got["events"]), got["p50"], got["p99"]
    row.per_commit, row.mismatches = got["events"] / got["commits"], int(got["mismatches"])
    _print(row)
    return row


async def bench_relay(n: int, args: argparse.Namespace) -> Row:
    child = Child.relay(args.words, args.delay)
    try:
        turns, wall, server_cpu, client_cpu = await load(child, n, args.words)
    finally:
        child.stop()
    row = Row("relay", "none", 1, n, args.delay * 1000, n / wall, wall, server_cpu, client_cpu)
    expected = len(turns[0].frames)
    row.mismatches = sum(len(t.frames) != expected for t in turns)
    return row


async def main(args: argparse.Namespace) -> None:
    counts = [int(x) for x in args.concurrency.split(",")]
    trees = [("after", THIS_TREE)]
    for extra in reversed(args.tree):
        label, _, where = extra.partition("=")
        trees.insert(0, (label, Path(where).resolve()))
    if args.before:
        trees.insert(0, ("before", Path(args.before).resolve()))
    workers = [int(x) for x in args.workers.split(",")] if args.workers else [1]
    print(
        f"server_load: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}; each turn {args.words} words "
        f"(one delta each), model delay {args.delay * 1000:g} ms per delta; servers in child processes",
        flush=True,
    )
    why = await pg_reachable(args.pg)
    stores = ["sqlite"] + (["postgres"] if why is None else [])
    if why is not None:
        print(f"PostgreSQL skipped: unreachable at {args.pg} ({why})")
    rows: list[Row] = []
    relays: dict[int, Row] = {}
    for n in counts:
        relays[n] = await bench_relay(n, args)
        for label, tree in trees:
            for store in stores:
                rows.append(await bench_turnlog(label, tree, store, n, args, delay=args.delay))
        if "postgres" in stores:
            for w in workers:
                if w > 1:
                    rows.append(
                        await bench_turnlog("after", THIS_TREE, "postgres", n, args, delay=args.delay, workers=w)
                    )
            if args.latency_delay:
                for label, tree in trees:
                    rows.append(await bench_turnlog(label, tree, "postgres", n, args, delay=args.latency_delay))
                for w in workers:
                    if w > 1:
                        rows.append(
                            await bench_turnlog(
                                "after", THIS_TREE, "postgres", n, args, delay=args.latency_delay, workers=w
                            )
                        )
    # The relay's events/s: its turns/s times the events turnlog records for the same answer.
    per_turn = next(r.events / r.n for r in rows)
    for relay in relays.values():
        relay.events = round(per_turn * relay.n)
        _print(relay)

    print()
    print(
        f"{'build':<8}{'store':<10}{'workers':>8}{'N':>5}{'delay ms':>9}{'turns/s':>9}{'events/s':>10}"
        f"{'per proc':>10}{'ev/CPU-s':>10}{'x relay':>8}{'x before':>9}{'p50 ms':>8}{'p99 ms':>8}{'ev/commit':>10}{'mismatch':>9}"
    )
    for r in [*relays.values(), *rows]:
        relay = relays[r.n]
        before = next(
            (b for b in rows if b.label == "before" and b.store == r.store and b.n == r.n and b.delay_ms == r.delay_ms),
            None,
        )
        x_before = ""
        if before is not None and r.label != "before":
            x_before = f"{r.per_process / before.per_process:.2f}"
        print(
            f"{r.label:<8}{r.store:<10}{r.workers:>8}{r.n:>5}{r.delay_ms:>9g}{r.turns_s:>9.1f}{r.events_s:>10,.0f}"
            f"{r.per_process:>10,.0f}{r.per_cpu:>10,.0f}{r.events_s / relay.events_s:>8.2f}{x_before:>9}{r.p50_ms:>8.1f}{r.p99_ms:>8.1f}"
            f"{r.per_commit:>10.1f}{r.mismatches:>9}"
        )
    if any(r.mismatches for r in rows):
        sys.exit("some clients received frames that differ from the replay")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--concurrency", default="200", help="comma-separated N")
    parser.add_argument("--words", type=int, default=100, help="words per answer (one text delta each)")
    parser.add_argument("--delay", type=float, default=0.005, help="model delay before each delta (seconds)")
    parser.add_argument(
        "--latency-delay", type=float, default=0.02, help="PostgreSQL latency run's delay per delta (0: none)"
    )
    parser.add_argument("--before", metavar="DIR", help="a worktree of an older build, with DIR/.venv")
    parser.add_argument(
        "--tree", action="append", default=[], metavar="LABEL=DIR", help="another build to measure (DIR/.venv)"
    )
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts over PostgreSQL")
    parser.add_argument("--pg", default=os.environ.get("TURNLOG_TEST_PG_URL", DEFAULT_PG))
    parser.add_argument("--quick", action="store_true", help="N=10 and 20 words: checks the script works")
    parser.add_argument("--verify", metavar="DB", help=argparse.SUPPRESS)
    parser.add_argument("--dump", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.verify:
        asyncio.run(verify(args.verify, args.dump))
    else:
        if args.quick:
            args.concurrency, args.words = "10", 20
        asyncio.run(main(args))
