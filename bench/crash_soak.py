"""Crash soak: SIGKILL ``turnlog serve`` (SQLite, PostgreSQL) and ``turnlog demo`` at random
instants, restart each time, and check that the log kept its promises (issue 13).

    .venv/bin/python bench/crash_soak.py [--kills 200] [--seed N] [--quick]
                                         [--targets serve-sqlite,serve-postgres,demo] [--pg URL]
                                         [--turns 4] [--window 1.0] [--jobs 3] [--max-minutes 60]

The targets run at once, each in a process of its own (``--jobs``); each is seeded from
``--seed`` and its name, so ``--targets T --seed S`` replays T's kill instants and turns.

Method, ``serve-sqlite`` and ``serve-postgres`` (one log per target: a SQLite file, or a
PostgreSQL schema of its own made by ``turnlog db upgrade`` and dropped at the end):

- Each round the server is up (``turnlog serve --llm scripted --echo-delay 0.005
  --recover-grace 0``, a child process, up once GET /health answers 200) and ``--turns``
  conversations each get a turn: half are new, half were left by earlier rounds (their last turn
  often interrupted). A turn echoes 10-300 words (one delta each, 5 ms apart) or calls
  ``get_weather`` (``/call``), a quarter of them with thinking. Each turn's POST stream is read
  (``mode=delta``); for half of the turns a second client follows the conversation with GET
  /events (from the start or from the round's first version). At a uniform random instant in
  0-``--window`` s (1.0) after the POSTs went out the server gets SIGKILL. Only complete frames count
  as received: a frame the kill cut in half was never shown.
- The server is started again; the restart time is spawn to /health's first 200, recovery of the
  orphaned turns included. Then, per conversation of the round:
  (a) durable before visible: every frame a client received has a frame of the same id in the
      log (read here with ``open_store`` + ``replay``, projected with ``project``), byte for byte
      (``missing``, ``differ``), and each client's frames are exactly the log's from its first
      id on (``gaps``: nothing skipped, repeated or reordered);
  (b) the log verifies: ``verify_log`` after every kill, and ``turnlog verify --db`` (exit 0)
      every ``--cli-verify-every`` kills and at the end (``verify``);
  (c) every turn is terminal: each TurnStarted in the log has its TurnFinalized or TurnFailed,
      and the server's replay (GET /events) ends, on ``done`` or ``error`` (``live``);
  (d) resume: the server's replay equals the log's frames; GET /events with ``Last-Event-ID``
      set to each client's last id, and to one random id, gives exactly the log's frames after
      it (``resume``).

``demo``: ``turnlog demo --db FILE`` (one SQLite file for every round) is killed at a random
instant of one of its phases, measured on a first whole run: one kill in six while it starts
(uniform over the time to its first line, the conversation's id), four during its turns (0-20
ms after its k-th printed frame, k uniform over the run's frames: timed by its own progress, so
a loaded machine does not push the kills past the turns, which take ~70 ms of a ~1 s run), one after them (uniform over the time
from its replay to its verify, at least 50 ms); a run that ends before its instant is not a
kill, and another run follows. The frames it printed (flushed one by one) are checked as a
client's (a); then ``turnlog recover --db`` and ``turnlog verify --db`` must both return 0
(b; the two commands run through ``turnlog.adapters.cli.main`` in one interpreter, as a start
is most of either's time; the restart time is spawn to recover's end), and every conversation
of the log must end with a terminal event or have no turn (c).

Prints a table per target and exits 1 if any must-be-zero column (``missing differ gaps verify
live resume crashed``) is not 0; a violation is printed as it is found, with the conversation's
events saved under the work directory (kept, and named, when there was one). ``crashed``: a
process that died before its kill or did not come back (a server that does not start, a recover
that fails). Every wait is bounded; past ``--max-minutes`` a target stops and the run fails.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"
CLI = [sys.executable, "-m", "turnlog.adapters.cli"]
TARGETS = ("serve-sqlite", "serve-postgres", "demo")
FRAME_ID = re.compile(rb"\Aid: (\d+)\n")
FRAME_EVENT = re.compile(rb"^event: (\w+)$", re.M)
#: A complete frame in the demo's stdout (its other lines are headings and reports).
DEMO_FRAME = re.compile(rb"^id: (\d+)\nevent: \w+\ndata: [^\n]*\n\n", re.M)
DEMO_CONV = re.compile(rb"^conversation (\S+) in ", re.M)
WORDS = ["alpha", "beta", "gamma", "delta", "café", "naïve", "東京", "Zürich", "🙂", "x" * 40, "'q'", '"dq"', "a\\b"]
#: ``turnlog recover --db DB`` then ``turnlog verify --db DB``, both through the command's own
#: ``main`` in one interpreter (one start, not two: a start is most of either command's time).
RECOVER_THEN_VERIFY = """
import sys, time
from turnlog.adapters.cli import main
recovered = main(["recover", "--db", sys.argv[1]])
at = time.time()
verified = main(["verify", "--db", sys.argv[1]])
print(f"soak: recover {recovered} at {at!r} verify {verified}", file=sys.stderr)
sys.exit(0 if recovered == verified == 0 else 1)
"""
#: A conversation is continued by later rounds until it has this many turns (its history grows).
MAX_TURNS_PER_CONVERSATION = 8


# -- bookkeeping ------------------------------------------------------------------------------------


@dataclass
class Tally:
    target: str
    kills: int = 0
    turns: int = 0  # TurnStarted events the rounds wrote (read from the log after the restart)
    done: int = 0  # of those, finalized before the kill
    interrupted: int = 0  # of those, ended by recovery (TurnFailed "interrupted")
    frames: int = 0  # complete frames the clients received
    missing: int = 0
    differ: int = 0
    gaps: int = 0
    verify: int = 0
    live: int = 0
    resume: int = 0
    resumes: int = 0  # resumes checked
    crashed: int = 0  # the process died before its kill, or did not come back
    finished_first: int = 0  # demo runs that ended before their kill instant (not kills)
    restart_s: list[float] = field(default_factory=list)
    wall_s: float = 0.0
    stopped: str = ""

    MUST_BE_ZERO = ("missing", "differ", "gaps", "verify", "live", "resume", "crashed")

    def bad(self) -> bool:
        return any(getattr(self, name) for name in self.MUST_BE_ZERO) or bool(self.stopped)


class Soak:
    """What every target shares: the options, the random source, the work directory, the clock."""

    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.rng = random.Random(args.seed)  # per target: run_target seeds it with the target's name
        self.workdir = workdir
        self.deadline = time.monotonic() + args.max_minutes * 60
        self.violations = 0

    def violation(self, tally: Tally, kill: int, what: str) -> None:
        self.violations += 1
        print(f"VIOLATION {tally.target} kill {kill}: {what}", flush=True)

    async def save_events(self, db: str, conv: str, tag: str) -> Path:
        """The conversation as the log holds it (``turnlog replay --format events``), for the report."""
        path = self.workdir / f"violation-{tag}-{conv}.jsonl"
        with path.open("wb") as out:
            await run_cli(["replay", conv, "--db", db, "--format", "events"], stdout=out)
        return path


async def run_cli(
    argv: list[str], stdout: Any = subprocess.DEVNULL, timeout: float = 120, python: bool = False
) -> tuple[int, bytes]:
    """``turnlog ARGV`` (``python ARGV`` with ``python``) in a child process: (exit status, stderr)."""
    program = [sys.executable] if python else CLI
    proc = await asyncio.create_subprocess_exec(*program, *argv, stdout=stdout, stderr=subprocess.PIPE)
    try:
        _, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return -9, f"timed out after {timeout:g} s".encode()
    return proc.returncode or 0, err


# -- frames ---------------------------------------------------------------------------------------


def frame_id(frame: bytes) -> int | None:
    m = FRAME_ID.match(frame)
    return int(m.group(1)) if m else None


def blocks(buffer: bytes) -> tuple[list[bytes], bytes]:
    """Complete SSE blocks (each with its blank line) and the incomplete rest; ``retry:`` and
    ``: keep-alive`` are left out, an id-less ``error`` frame is kept (it is not of the log)."""
    *done, rest = buffer.split(b"\n\n")
    return [b + b"\n\n" for b in done if b and not b.startswith((b"retry:", b":"))], rest


@dataclass
class Reader:
    """One client's stream: the frames it received, in order, and where its stream begins."""

    conv: str
    kind: str  # "turn" (the POST's response) or "follow" (GET /events)
    after: int = 0  # frames with ids above this are the stream's (the turn's TurnStarted version)
    frames: list[bytes] = field(default_factory=list)
    status: int | None = None

    async def read(self, client: httpx.AsyncClient, method: str, url: str, **kw: Any) -> None:
        buffer = b""
        try:
            async with client.stream(method, url, **kw) as r:
                self.status = r.status_code
                if r.status_code != 200:
                    await r.aread()
                    return
                if self.kind == "turn":
                    self.after = int(r.headers["turnlog-version"])
                async for chunk in r.aiter_raw():
                    done, buffer = blocks(buffer + chunk)
                    self.frames += done
        except httpx.TransportError:
            pass  # the kill: what arrived complete is kept, the cut frame in ``buffer`` is not


async def sse(client: httpx.AsyncClient, conv: str, after: int | None, timeout: float = 20) -> list[bytes] | None:
    """GET /events (with ``Last-Event-ID: after``): its frames, or None if it did not end in time."""
    headers = {} if after is None else {"last-event-id": str(after)}
    out: list[bytes] = []
    buffer = b""

    async def read() -> None:
        nonlocal buffer
        async with client.stream("GET", f"/conversations/{conv}/events", headers=headers) as r:
            r.raise_for_status()
            async for chunk in r.aiter_raw():
                done, buffer = blocks(buffer + chunk)
                out.extend(done)

    try:
        await asyncio.wait_for(read(), timeout)
    except TimeoutError:
        return None
    return out


# -- the server --------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``turnlog serve`` as a child process, its output appended to ``log_path``."""

    def __init__(self, db: str, log_path: Path) -> None:
        self.db = db
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""

    async def start(self, timeout: float = 60) -> float:
        """Spawn and wait for GET /health's first 200; returns the seconds it took."""
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        args = ["serve", "--db", self.db, "--port", str(port), "--llm", "scripted"]
        args += ["--echo-delay", "0.005", "--recover-grace", "0"]
        start = time.perf_counter()
        with self.log_path.open("ab") as out:
            self.proc = subprocess.Popen([*CLI, *args], stdout=out, stderr=subprocess.STDOUT)
        async with httpx.AsyncClient(base_url=self.url, timeout=2) as client:
            while time.perf_counter() - start < timeout:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"the server exited ({self.proc.returncode}) while starting: {self.log_path}")
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get("/health")).status_code == 200:
                        return time.perf_counter() - start
                await asyncio.sleep(0.02)
        self.kill()
        raise RuntimeError(f"the server did not answer /health within {timeout:g} s: {self.log_path}")

    def kill(self) -> bool:
        """SIGKILL; True if it was running until then."""
        assert self.proc is not None
        alive = self.proc.poll() is None
        if alive:
            self.proc.kill()
        self.proc.wait()
        return alive

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.kill()


# -- checks against the log -------------------------------------------------------------------------


async def log_frames(log: Any, conv: str) -> tuple[list[Any], list[bytes]]:
    """The conversation's events (checked replay) and their SSE frames, read from the log here."""
    from turnlog.engine import replay
    from turnlog.projections import project

    events = [rec async for rec in replay(log, conv)]
    return events, project(events, "delta")


def count_turns(tally: Tally, events: list[Any], head: int) -> bool:
    """Add the turns after version ``head`` to the tally; True if every turn of the log ended."""
    from turnlog.engine import TurnFailed, TurnFinalized, TurnStarted

    started = ended = 0
    for rec in events:
        kind = type(rec.event)
        started += kind is TurnStarted
        ended += kind in (TurnFinalized, TurnFailed)
        if rec.version > head:
            tally.turns += kind is TurnStarted
            tally.done += kind is TurnFinalized
            tally.interrupted += kind is TurnFailed and rec.event.reason == "interrupted"
    return started == ended


def check_received(soak: Soak, tally: Tally, kill: int, reader: Reader, frames: list[bytes]) -> bool:
    """(a): the reader's frames against the log's; True if they hold."""
    by_id = {frame_id(f): f for f in frames}
    ok = True
    tally.frames += len(reader.frames)
    for got in reader.frames:
        fid = frame_id(got)
        if fid not in by_id:
            tally.missing += 1
            ok = False
            soak.violation(tally, kill, f"{reader.conv} ({reader.kind}): frame not in the log: {got!r}")
        elif by_id[fid] != got:
            tally.differ += 1
            ok = False
            soak.violation(tally, kill, f"{reader.conv} ({reader.kind}) id {fid}: got {got!r}, log {by_id[fid]!r}")
    if ok:
        expected = [f for f in frames if (frame_id(f) or 0) > reader.after][: len(reader.frames)]
        if reader.frames != expected:
            tally.gaps += 1
            ok = False
            ids = [frame_id(f) for f in reader.frames]
            soak.violation(
                tally, kill, f"{reader.conv} ({reader.kind}): ids {ids}, the log's {[frame_id(f) for f in expected]}"
            )
    return ok


# -- serve-sqlite, serve-postgres ----------------------------------------------------------------


def turn_body(rng: random.Random) -> dict[str, Any]:
    if rng.random() < 0.2:
        city = rng.choice(["Paris", "Tokyo", "Berlin"])  # Berlin has no station: a failed result
        body: dict[str, Any] = {"message": f'/call get_weather {{"city": "{city}"}}', "enabled_tools": ["get_weather"]}
    else:
        body = {"message": " ".join(rng.choice(WORDS) for _ in range(rng.randint(10, 300)))}
    if rng.random() < 0.25:
        body["thinking"] = True
    return body


async def serve_round(soak: Soak, tally: Tally, server: Server, pool: dict[str, tuple[int, int]]) -> list[Reader]:
    """Start the round's turns with clients reading, SIGKILL the server at a random instant;
    returns the readers. ``pool``: conversation -> (its last version, its turns)."""
    rng, args = soak.rng, soak.args
    limits = httpx.Limits(max_connections=4 * args.turns + 10)
    async with httpx.AsyncClient(base_url=server.url, timeout=httpx.Timeout(10, read=60), limits=limits) as client:
        old = [c for c, (_, turns) in pool.items() if turns < MAX_TURNS_PER_CONVERSATION]
        convs: list[str] = []
        for _ in range(args.turns):
            if old and rng.random() < 0.5:
                convs.append(old.pop(rng.randrange(len(old))))
            else:
                r = await client.post("/conversations", json={})
                r.raise_for_status()
                convs.append(r.json()["id"])
                pool[convs[-1]] = (1, 0)
        readers: list[Reader] = []
        tasks: list[asyncio.Task[None]] = []

        async def follow(reader: Reader, delay: float) -> None:
            await asyncio.sleep(delay)
            headers = {"last-event-id": str(reader.after)} if reader.after else {}
            await reader.read(client, "GET", f"/conversations/{reader.conv}/events", headers=headers)

        for conv in convs:
            turn = Reader(conv, "turn")
            url = f"/conversations/{conv}/turns?mode=delta"
            tasks.append(asyncio.create_task(turn.read(client, "POST", url, json=turn_body(rng))))
            readers.append(turn)
            if rng.random() < 0.5:
                follower = Reader(conv, "follow", after=rng.choice([0, pool[conv][0]]))
                tasks.append(asyncio.create_task(follow(follower, rng.uniform(0, 0.3))))
                readers.append(follower)
        await asyncio.sleep(rng.uniform(0, args.window))
        if not server.kill():
            tally.crashed += 1
            soak.violation(tally, tally.kills + 1, f"the server had exited before its kill: {server.log_path}")
        tally.kills += 1
        _, pending = await asyncio.wait(tasks, timeout=15)
        for t in pending:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return readers


async def check_serve_round(
    soak: Soak, tally: Tally, db: str, server: Server, readers: list[Reader], pool: dict[str, tuple[int, int]]
) -> None:
    """(a)-(d) for the conversations of the round, over the restarted server and the log."""
    from turnlog.adapters.stores import open_store
    from turnlog.engine import TurnStarted, verify_log

    rng, kill = soak.rng, tally.kills
    convs = list(dict.fromkeys(r.conv for r in readers))
    log, _ = await open_store(db, create=False)
    async with log, httpx.AsyncClient(base_url=server.url, timeout=httpx.Timeout(10, read=30)) as client:
        for conv in convs:
            ok = True
            head = pool[conv][0]
            events, frames = await log_frames(log, conv)
            if not count_turns(tally, events, head):
                tally.live += 1
                ok = False
                soak.violation(tally, kill, f"{conv}: a turn is still live in the log after the restart")
            for reader in (r for r in readers if r.conv == conv):
                ok &= check_received(soak, tally, kill, reader, frames)
            served = await sse(client, conv, None)
            if served is None:
                tally.live += 1
                ok = False
                soak.violation(tally, kill, f"{conv}: the server's replay did not end (a live turn)")
            elif served != frames:
                tally.resume += 1
                ok = False
                soak.violation(tally, kill, f"{conv}: the server's replay differs from the log's frames")
            elif frames and FRAME_EVENT.search(frames[-1]).group(1) not in (b"done", b"error"):  # type: ignore[union-attr]
                tally.live += 1
                ok = False
                soak.violation(tally, kill, f"{conv}: the replay ends with {frames[-1]!r}")
            points = {r.frames[-1] for r in readers if r.conv == conv and r.frames}
            resume_at = {frame_id(f) or 0 for f in points}
            if frames:
                resume_at.add(frame_id(rng.choice(frames)) or 0)
            for after in sorted(resume_at):
                tally.resumes += 1
                got = await sse(client, conv, after)
                want = [f for f in frames if (frame_id(f) or 0) > after]
                if got != want:
                    tally.resume += 1
                    ok = False
                    n = "did not end" if got is None else f"{len(got)} frames, ids {[frame_id(f) for f in got][:5]}..."
                    soak.violation(tally, kill, f"{conv}: Last-Event-ID {after}: {n}; the log has {len(want)} after it")
            pool[conv] = (events[-1].version, sum(type(e.event) is TurnStarted for e in events))
            if not ok:
                print(f"  events saved: {await soak.save_events(db, conv, f'{tally.target}-{kill}')}", flush=True)
        report = await verify_log(log)
        if not report.ok:
            tally.verify += 1
            soak.violation(tally, kill, f"verify_log: {report.summary()}")
    if kill % soak.args.cli_verify_every == 0:
        await cli_verify(soak, tally, db)


async def cli_verify(soak: Soak, tally: Tally, db: str) -> None:
    code, err = await run_cli(["verify", "--db", db])
    if code != 0:
        tally.verify += 1
        soak.violation(tally, tally.kills, f"turnlog verify exited {code}: {err.decode(errors='replace').strip()}")


async def soak_serve(soak: Soak, tally: Tally, db: str) -> None:
    server = Server(db, soak.workdir / f"{tally.target}.log")
    pool: dict[str, tuple[int, int]] = {}
    await server.start()
    try:
        while tally.kills < soak.args.kills:
            if time.monotonic() > soak.deadline:
                tally.stopped = f"time limit after {tally.kills} kills"
                break
            try:
                readers = await serve_round(soak, tally, server, pool)
                tally.restart_s.append(await server.start())
                await check_serve_round(soak, tally, db, server, readers, pool)
            except (RuntimeError, httpx.HTTPError) as exc:
                # A server that does not come back, or does not answer outside its kill.
                tally.crashed += 1
                tally.stopped = f"the server failed after {tally.kills} kills"
                soak.violation(tally, tally.kills, f"{type(exc).__name__}: {exc} (server output: {server.log_path})")
                return
            if tally.kills % 25 == 0:
                print(f"  {tally.target}: {tally.kills} kills, {tally.turns} turns, {tally.frames} frames", flush=True)
    finally:
        server.stop()
    if tally.kills % soak.args.cli_verify_every:
        await cli_verify(soak, tally, db)


# -- demo -------------------------------------------------------------------------------------------


@dataclass
class DemoRun:
    out: bytes
    killed: bool
    marks: dict[bytes, float]  # s from spawn to the first output containing each mark


#: Points of the demo's output: its first line (the conversation exists), the end of its turns
#: (its replay begins), its verify (its last step before exiting).
MARKS = (b"\n", b"=== replay", b"=== verify")


async def demo_run(soak: Soak, db: str, when: Callable[[bytes], bool] | None, delay: float | None) -> DemoRun:
    """One ``turnlog demo``, killed ``delay`` s after its output first satisfies ``when`` (None:
    after spawn); ``delay`` None: let it finish."""
    start = time.perf_counter()
    with (soak.workdir / "demo.log").open("ab") as err:
        proc = await asyncio.create_subprocess_exec(*CLI, "demo", "--db", db, stdout=subprocess.PIPE, stderr=err)
    out = bytearray()
    reached = asyncio.Event()
    marks = dict.fromkeys(MARKS, 0.0)

    async def drain() -> None:
        assert proc.stdout is not None
        while chunk := await proc.stdout.read(65536):
            out.extend(chunk)
            for mark, at in marks.items():
                if not at and mark in out:
                    marks[mark] = time.perf_counter() - start
            if when is None or when(bytes(out)):
                reached.set()
        reached.set()

    reader = asyncio.create_task(drain())
    if delay is not None:
        if when is not None:
            await asyncio.wait_for(reached.wait(), 60)
        await asyncio.sleep(delay)
    killed = proc.returncode is None and delay is not None
    if killed:
        proc.kill()
    await asyncio.wait_for(proc.wait(), 120)
    await asyncio.wait_for(reader, 30)
    # A run that exited by itself between our check and the signal was not killed.
    return DemoRun(bytes(out), killed and proc.returncode == -9, marks)


def printed_frames(at_least: int) -> Callable[[bytes], bool]:
    return lambda out: b"\n" in out and len(DEMO_FRAME.findall(out)) >= at_least


async def soak_demo(soak: Soak, tally: Tally, db: str) -> None:
    from turnlog.adapters.stores import open_store

    # Calibrate: one whole run gives its start time, its frames and the time after its turns.
    run = await demo_run(soak, db, None, None)
    if b"IDENTICAL" not in run.out:
        raise RuntimeError(f"the demo's calibration run failed: {run.out[-500:]!r}")
    start_s, n_frames = run.marks[b"\n"], len(DEMO_FRAME.findall(run.out))
    after_s = max(0.05, run.marks[b"=== verify"] - run.marks[b"=== replay"])  # often one write: 0
    print(
        f"  demo: {start_s:.2f} s to its first line, {n_frames} frames, then {after_s:.2f} s to its verify", flush=True
    )
    rng, rounds = soak.rng, 0
    while tally.kills < soak.args.kills and rounds < 3 * soak.args.kills:
        if time.monotonic() > soak.deadline:
            tally.stopped = f"time limit after {tally.kills} kills"
            break
        rounds += 1
        # One kill in six while it starts; four during its turns, timed by its own progress (after
        # its k-th frame, k uniform) so that load on the machine cannot push them past the turns;
        # one after its turns, before its verify.
        phase = rng.randrange(6)
        if phase == 0:
            run = await demo_run(soak, db, None, rng.uniform(0, start_s))
        elif phase < 5:
            run = await demo_run(soak, db, printed_frames(rng.randint(0, n_frames)), rng.uniform(0, 0.02))
        else:
            run = await demo_run(soak, db, lambda out: b"=== replay" in out, rng.uniform(0, after_s))
        out, killed = run.out, run.killed
        if not killed:
            tally.finished_first += 1
        else:
            tally.kills += 1
        kill = tally.kills
        spawned = time.time()
        code, err = await run_cli(["-c", RECOVER_THEN_VERIFY, db], python=True)
        m = re.search(rb"soak: recover (-?\d+) at (\S+) verify (-?\d+)", err)
        if m is None or m.group(1) != b"0":
            tally.crashed += 1
            soak.violation(tally, kill, f"turnlog recover failed ({code}): {err.decode(errors='replace').strip()}")
        elif m.group(3) != b"0":
            tally.verify += 1
            soak.violation(tally, kill, f"turnlog verify failed: {err.decode(errors='replace').strip()}")
        if m is not None and killed:
            tally.restart_s.append(float(m.group(2)) - spawned)
        m = DEMO_CONV.search(out)
        conv = m.group(1).decode() if m else None
        printed = Reader(conv or "", "demo", frames=[f.group(0) for f in DEMO_FRAME.finditer(out)])
        if conv is None and printed.frames:
            soak.violation(tally, kill, f"frames printed before the conversation's id: {out[:300]!r}")
        log, _ = await open_store(db, create=False)
        async with log:
            if conv is not None and await log.last(conv) is not None:
                events, frames = await log_frames(log, conv)
                count_turns(tally, events, 0)
                if not check_received(soak, tally, kill, printed, frames):
                    print(f"  events saved: {await soak.save_events(db, conv, f'demo-{kill}')}", flush=True)
            elif printed.frames:
                tally.missing += len(printed.frames)
                soak.violation(tally, kill, f"{conv}: printed {len(printed.frames)} frames, not in the log")
            for sid in await log.streams():
                last = await log.last(sid)
                if last is not None and last.type not in ("conversation_created", "turn_finalized", "turn_failed"):
                    tally.live += 1
                    soak.violation(tally, kill, f"{sid}: ends with {last.type} (version {last.version}) after recover")
        if killed and kill % 25 == 0:
            print(f"  demo: {kill} kills, {tally.turns} turns, {tally.frames} frames", flush=True)
    if tally.kills < soak.args.kills and not tally.stopped:
        tally.stopped = f"only {tally.kills} of {rounds} runs were killed before they ended"


# -- main -------------------------------------------------------------------------------------------


async def pg_schema(url: str, drop: str | None = None) -> str | None:
    """None if PostgreSQL answers (and ``drop`` is dropped), else why not."""
    import asyncpg
    from turnlog.adapters.stores import parse_pg_url

    try:
        conn = await asyncpg.connect(parse_pg_url(url).dsn, timeout=5)
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        return f"{type(exc).__name__}: {exc}"
    try:
        if drop is not None:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{drop}" CASCADE')
    finally:
        await conn.close()
    return None


async def run_target(soak: Soak, target: str) -> Tally:
    tally = Tally(target)
    start = time.perf_counter()
    # Seeded per target: a target replays the same way alone, with others, or in a child process.
    soak.rng = random.Random(f"{soak.args.seed}:{target}")
    print(f"{target}: {soak.args.kills} kills", flush=True)
    try:
        if target == "serve-sqlite":
            await soak_serve(soak, tally, str(soak.workdir / "serve.db"))
        elif target == "demo":
            await soak_demo(soak, tally, str(soak.workdir / "demo.db"))
        else:
            why = await pg_schema(soak.args.pg)
            if why is not None:
                tally.stopped = f"PostgreSQL unreachable at {soak.args.pg} ({why})"
                return tally
            schema = f"soak_{uuid.uuid4().hex[:12]}"
            url = f"{soak.args.pg}{'&' if '?' in soak.args.pg else '?'}schema={schema}"
            try:
                code, err = await run_cli(["db", "upgrade", "--db", url])
                if code != 0:
                    raise RuntimeError(f"turnlog db upgrade exited {code}: {err.decode(errors='replace')}")
                await soak_serve(soak, tally, url)
            finally:
                await pg_schema(soak.args.pg, drop=schema)
    finally:
        tally.wall_s = time.perf_counter() - start
    return tally


async def run_children(args: argparse.Namespace, targets: list[str], workdir: Path) -> list[Tally]:
    """Each target in a child process of its own (``--jobs`` at once): one target's checks never
    hold up another's clients or its kill instant. Their output is this one's."""
    gate = asyncio.Semaphore(args.jobs)

    async def child(target: str) -> Tally:
        report = workdir / f"{target}.json"
        argv = [__file__, "--targets", target, "--jobs", "1", "--report", str(report), "--seed", str(args.seed)]
        for name in ("kills", "turns", "window", "cli_verify_every", "max_minutes", "pg"):
            argv += [f"--{name.replace('_', '-')}", str(getattr(args, name))]
        async with gate:
            proc = await asyncio.create_subprocess_exec(sys.executable, *argv)
            code = await proc.wait()
        if not report.exists():
            return Tally(target, stopped=f"its process exited {code} without a report")
        return Tally(**json.loads(report.read_text())[0])

    return list(await asyncio.gather(*(child(t) for t in targets)))


def table(tallies: list[Tally]) -> None:
    cols = ["kills", "turns", "done", "intr", "frames", "missing", "differ", "gaps", "verify", "live"]
    cols += ["resume", "resumes", "crashed", "restart s", "wall s"]
    print(f"\n{'target':<15}" + "".join(f"{c:>10}" for c in cols))
    for t in tallies:
        values = [t.kills, t.turns, t.done, t.interrupted, t.frames, t.missing, t.differ, t.gaps, t.verify]
        values += [t.live, t.resume if t.target != "demo" else "-", t.resumes if t.target != "demo" else "-"]
        restart = f"{statistics.fmean(t.restart_s):.2f}" if t.restart_s else "-"
        values += [t.crashed, restart, f"{t.wall_s:.0f}"]
        print(f"{t.target:<15}" + "".join(f"{v:>10}" for v in values))
    for t in tallies:
        if t.finished_first:
            print(f"{t.target}: {t.finished_first} runs ended before their kill instant (not counted as kills)")
        if t.stopped:
            print(f"{t.target}: STOPPED: {t.stopped}")


async def main(args: argparse.Namespace) -> int:
    targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    unknown = set(targets) - set(TARGETS)
    if unknown:
        raise SystemExit(f"unknown targets {sorted(unknown)}; choose from {', '.join(TARGETS)}")
    workdir = Path(tempfile.mkdtemp(prefix="crash_soak_"))
    soak = Soak(args, workdir)
    print(
        f"crash_soak: seed {args.seed}, {os.cpu_count()} CPUs, Python {sys.version.split()[0]}; serve: "
        f"{args.turns} turns a round, kill 0-{args.window:g} s after they start; work dir {workdir}",
        flush=True,
    )
    if args.jobs > 1 and len(targets) > 1:
        tallies = await run_children(args, targets, workdir)
    else:
        tallies = [await run_target(soak, t) for t in targets]
    if args.report:  # a child of run_children: its parent prints the table
        Path(args.report).write_text(json.dumps([asdict(t) for t in tallies]))
    else:
        table(tallies)
    bad = [t.target for t in tallies if t.bad()]
    if bad or soak.violations:
        print(f"FAILED: {', '.join(bad) or 'violations'}; logs, databases and saved events kept in {workdir}")
        return 1
    shutil.rmtree(workdir, ignore_errors=True)
    print("ok: every must-be-zero count is 0")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=200, help="SIGKILLs per target (default 200)")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: a random one, printed)")
    parser.add_argument("--quick", action="store_true", help="10 kills per target: checks the script works")
    parser.add_argument("--targets", default=",".join(TARGETS), help=f"comma-separated, of {', '.join(TARGETS)}")
    parser.add_argument("--turns", type=int, default=4, help="concurrent turns per serve round")
    parser.add_argument("--window", type=float, default=1.0, help="the kill instant: uniform in 0..WINDOW s")
    parser.add_argument(
        "--cli-verify-every", type=int, default=10, help="serve: run `turnlog verify` every N kills (and at the end)"
    )
    parser.add_argument("--max-minutes", type=float, default=60, help="stop (and fail) past this wall time")
    parser.add_argument("--jobs", type=int, default=3, help="targets run at once, each in its own process")
    parser.add_argument("--report", help=argparse.SUPPRESS)
    parser.add_argument("--pg", default=os.environ.get("TURNLOG_TEST_PG_URL", DEFAULT_PG))
    args = parser.parse_args()
    if args.quick:
        args.kills = 10
    if args.seed is None:
        args.seed = random.SystemRandom().randrange(1 << 32)
    sys.exit(asyncio.run(main(args)))
