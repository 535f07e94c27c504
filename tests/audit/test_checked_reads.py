"""Every read is checked: a stored event changed, removed or reordered in the database is refused
by every path that serves or folds it (replay, rows, the engine's history, the command line, the
HTTP service, a live follower), naming the conversation and the version, and its content is
never served. An intact log reads exactly as before."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import msgspec
import pytest
from turnlog.adapters.llm import ScriptedLLM
from turnlog.adapters.server import Principal, ServerConfig, TokenAuth, TurnService
from turnlog.adapters.stores import open_store, parse_pg_url
from turnlog.engine import (
    GENESIS_HASH,
    EventLog,
    FixedClock,
    IntegrityError,
    IterationStarted,
    LogHistory,
    NewEvent,
    Recorded,
    SequentialIds,
    TextDelta,
    TurnEngine,
    TurnRequest,
    TurnStarted,
    chain_hash,
    load,
    recover,
    replay,
    seal,
    verify,
)
from turnlog.engine._log import ChainCheck
from turnlog.projections import MemoryMessageStore, project, rebuild, stream_sse

from ..conftest import StoreUnderTest, turn_started
from ..server.conftest import frames_of, ids_of, serving

# These tests forge the clear bytes of a payload (the word REAL becomes FORGED) to show that every
# read refuses a changed event; an encrypted payload cannot be forged that way (tests/erasure).
pytestmark = pytest.mark.unencrypted

#: One turn of three deltas; "zebra" is in the middle one, and forging flips one bit of it.
ANSWER = [{"text": "alpha zebra gamma", "split": [6, 6, 5]}, {"usage": [1, 2, 3]}]
REAL, FORGED = b"zebra", b"zEbra"
AT = "2026-01-01T00:00:00Z"
#: For what needs a table to write behind the log's back (the memory log has none).
ON_DISK = pytest.mark.parametrize(
    "store", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)


def llm() -> ScriptedLLM:
    return ScriptedLLM([ANSWER])


def engine(log: EventLog, messages: Any = None) -> TurnEngine:
    return TurnEngine(log, llm(), messages=messages, clock=FixedClock(), ids=SequentialIds())


async def one_turn(log: EventLog, messages: Any = None) -> tuple[str, list[bytes]]:
    """A conversation with one finished turn; returns its id and the frames sent live."""
    eng = engine(log, messages)
    conv = await eng.create_conversation(model="m")
    live = [f async for f in stream_sse(eng, conv, TurnRequest("hi"))]
    return conv, live


async def zebra_version(log: EventLog, conv: str) -> int:
    return next(r.version for r in await log.read(conv) if REAL in r.payload)


class Forger:
    """Changes the stored rows of one store behind its back, as someone with database access would."""

    def __init__(self, store: StoreUnderTest, db: str | None) -> None:
        self.store = store
        self.db = db

    # -- the three stores' raw access -------------------------------------------------------------

    async def _sql(self, sql: str, *args: Any) -> list[Any]:
        if self.store.name == "sqlite":
            assert self.db is not None
            db = self.db

            def run() -> list[Any]:
                conn = sqlite3.connect(db, timeout=30)
                try:
                    with conn:
                        # asyncpg's numbered parameters, in order, as SQLite's question marks
                        return conn.execute(re.sub(r"\$\d+", "?", sql), args).fetchall()
                finally:
                    conn.close()

            # In a thread: the server under test shares this event loop, and may hold the write
            # lock while its turn saves its last rows; a blocking call here would wait on itself.
            return await asyncio.to_thread(run)
        target = parse_pg_url(self.db or "")
        conn = await asyncpg.connect(target.dsn, server_settings=target.server_settings)
        try:
            return list(await conn.fetch(sql, *args))
        finally:
            await conn.close()

    def _raw(self, conv: str) -> list[Recorded]:
        return self.store.log._raw(conv)  # type: ignore[attr-defined]

    # -- forgeries ----------------------------------------------------------------------------------

    async def set_payload(self, conv: str, version: int, payload: bytes) -> None:
        if self.store.name == "memory":
            raw = self._raw(conv)
            r = raw[version - 1]
            raw[version - 1] = load(
                r.stream_id,
                r.version,
                r.position,
                r.turn_id,
                r.recorded_at,
                r.type,
                r.schema,
                r.prev_hash,
                r.hash,
                payload,
            )
            return
        await self._sql(
            "UPDATE turnlog_events SET payload = $1 WHERE stream_id = $2 AND version = $3", payload, conv, version
        )

    async def flip(self, conv: str, version: int, old: bytes = REAL, new: bytes = FORGED) -> None:
        """One byte of the stored payload changed (one bit: 'e' -> 'E')."""
        payload = next(r.payload for r in await self.store.log.read(conv, version - 1, 1))
        assert old in payload
        await self.set_payload(conv, version, payload.replace(old, new))

    async def remove(self, conv: str, version: int) -> None:
        if self.store.name == "memory":
            del self._raw(conv)[version - 1]
            return
        await self._sql("DELETE FROM turnlog_events WHERE stream_id = $1 AND version = $2", conv, version)

    async def swap(self, conv: str, version: int) -> None:
        """Events ``version`` and ``version + 1`` trade places (their version numbers swapped)."""
        if self.store.name == "memory":
            raw = self._raw(conv)
            raw[version - 1], raw[version] = raw[version], raw[version - 1]
            return
        update = "UPDATE turnlog_events SET version = $1 WHERE stream_id = $2 AND version = $3"
        await self._sql(update, -1, conv, version)
        await self._sql(update, version, conv, version + 1)
        await self._sql(update, version + 1, conv, -1)

    async def insert(self, rec: Recorded) -> None:
        """A row written straight into the table: no append, so nobody in the process is woken."""
        (row,) = await self._sql("SELECT COALESCE(MAX(position), 0) + 1 FROM turnlog_events")
        await self._sql(
            "INSERT INTO turnlog_events (position, stream_id, version, turn_id, recorded_at, type, schema, "
            "prev_hash, hash, payload) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            row[0],
            rec.stream_id,
            rec.version,
            rec.turn_id,
            rec.recorded_at,
            rec.type,
            rec.schema,
            rec.prev_hash,
            rec.hash,
            rec.payload,
        )


@pytest.fixture
def forger(store: StoreUnderTest, request: pytest.FixtureRequest, tmp_path: Path) -> Forger:
    if store.name == "sqlite":
        return Forger(store, str(tmp_path / "turnlog.db"))  # where the `store` fixture opened it
    if store.name == "postgres":
        return Forger(store, request.getfixturevalue("pg_schema_url"))
    return Forger(store, None)


def refused(exc: pytest.ExceptionInfo[IntegrityError], conv: str, version: int) -> None:
    assert exc.value.code == "integrity_broken"
    assert (exc.value.stream_id, exc.value.version) == (conv, version)
    assert repr(conv) in str(exc.value) and f"version {version}" in str(exc.value)


# -- an intact log ----------------------------------------------------------------------------------


async def test_an_intact_log_reads_exactly_as_before(store: StoreUnderTest) -> None:
    conv, live = await one_turn(store.log)
    checked = [r async for r in store.log.iter_stream(conv)]
    unchecked = [r async for r in store.log.iter_stream(conv, check=False)]
    assert checked == unchecked == await store.log.read(conv)
    replayed = [r async for r in replay(store.log, conv)]
    assert replayed == checked
    assert project(replayed) == live  # the live frames, byte for byte
    assert [r.version async for r in store.log.iter_stream(conv, 3)] == [r.version for r in checked[3:]]
    assert [r.version async for r in store.log.iter_stream(conv, len(checked))] == []
    assert [r.version async for r in store.log.iter_stream(conv, len(checked) + 5)] == []
    assert (await verify(store.log, conv)).ok


def test_the_check_hashes_exactly_as_chain_hash_says() -> None:
    # Stream and turn ids with quotes, backslashes and non-ASCII: the header pieces the check
    # encodes once must be the very bytes chain_hash encodes per event.
    sid, turn = 'conv-"ü"\\', "turn-✨\n"
    events = [NewEvent(TextDelta(1, f'piece {i} "é"\\'), turn) for i in range(5)]
    recs = seal(sid, events[:2], head_version=0, head_hash=GENESIS_HASH, first_position=1, recorded_at=AT)
    recs += seal(sid, events[2:], head_version=2, head_hash=recs[-1].hash, first_position=3, recorded_at=AT + "x")
    for r in recs:
        assert r.hash == chain_hash(r.prev_hash, sid, r.version, r.turn_id, r.recorded_at, r.type, r.schema, r.payload)
    chain = ChainCheck(sid)
    chain.check(recs[:3])
    chain.check(recs[3:])
    assert (chain.version, chain.hash) == (5, recs[-1].hash)
    assert ChainCheck.after(recs[1]).hash == recs[1].hash
    # Each hashed field, changed in one event, breaks the chain at that event.
    for field, value in [
        ("payload", recs[2].payload.replace(b"piece", b"pieCe")),
        ("turn_id", "turn-other"),
        ("recorded_at", AT),
        ("type", "reasoning_delta"),
        ("schema", 2),
        ("prev_hash", recs[0].hash),
        ("version", 4),
    ]:
        forged = [*recs[:2], msgspec.structs.replace(recs[2], **{field: value}), *recs[3:]]
        with pytest.raises(IntegrityError) as exc:
            ChainCheck(sid).check(forged)
        assert exc.value.version == 3, field
    with pytest.raises(IntegrityError, match="version 3: the stored bytes do not hash"):
        ChainCheck.after(msgspec.structs.replace(recs[2], payload=b'{"type":"text_delta"}'))


# -- a changed payload byte -------------------------------------------------------------------------


async def test_a_changed_payload_byte_is_refused_by_every_read(store: StoreUnderTest, forger: Forger) -> None:
    conv, _ = await one_turn(store.log, store.messages)
    v = await zebra_version(store.log, conv)
    await forger.flip(conv, v)
    head = (await store.log.last(conv)).version  # type: ignore[union-attr]

    seen: list[Recorded] = []
    with pytest.raises(IntegrityError) as exc:
        async for rec in replay(store.log, conv):
            seen.append(rec)
    refused(exc, conv, v)
    assert "changed" in str(exc.value)
    assert all(r.version < v for r in seen)
    for after in (0, v - 2, v - 1, v):  # a reader after the forged event's predecessor, or after it
        with pytest.raises(IntegrityError) as exc:
            [r async for r in store.log.iter_stream(conv, after)]
        refused(exc, conv, v)
    # ...and only the check's opt-out (verify's own loop) still hands it over.
    assert FORGED in [r async for r in store.log.iter_stream(conv, check=False)][v - 1].payload

    # The rows cannot be rebuilt from it.
    with pytest.raises(IntegrityError) as exc:
        await rebuild(store.log, store.fresh_messages())
    refused(exc, conv, v)

    # The engine's next turn refuses before writing anything: history folded from the log...
    with pytest.raises(IntegrityError) as exc:
        [r async for r in engine(store.log).run_turn(conv, TurnRequest("again"))]
    refused(exc, conv, v)
    # ...or the rows' catch-up (rows behind the log, as after a crash).
    rows = store.messages if store.name != "memory" else MemoryMessageStore()
    await rows.clear()
    with pytest.raises(IntegrityError) as exc:
        [r async for r in engine(store.log, rows).run_turn(conv, TurnRequest("again"))]
    refused(exc, conv, v)
    assert (await store.log.last(conv)).version == head  # type: ignore[union-attr]


async def test_the_history_port_refuses_a_forged_log(store: StoreUnderTest, forger: Forger) -> None:
    conv, _ = await one_turn(store.log)
    v = await zebra_version(store.log, conv)
    await forger.flip(conv, v)
    with pytest.raises(IntegrityError) as exc:
        await LogHistory().history(store.log, conv, 99)
    refused(exc, conv, v)


@pytest.mark.parametrize("kind", ["removed", "swapped"])
async def test_a_removed_or_reordered_event_is_refused(store: StoreUnderTest, forger: Forger, kind: str) -> None:
    conv, _ = await one_turn(store.log, store.messages)
    v = await zebra_version(store.log, conv)
    if kind == "removed":
        await forger.remove(conv, v)
    else:
        await forger.swap(conv, v)
    with pytest.raises(IntegrityError) as exc:
        [r async for r in replay(store.log, conv)]
    refused(exc, conv, v)
    with pytest.raises(IntegrityError) as exc:
        await rebuild(store.log, store.fresh_messages())
    refused(exc, conv, v)
    with pytest.raises(IntegrityError) as exc:
        [r async for r in engine(store.log).run_turn(conv, TurnRequest("again"))]
    refused(exc, conv, v)


@ON_DISK
async def test_an_undecodable_payload_is_refused_at_its_version(store: StoreUnderTest, forger: Forger) -> None:
    conv, _ = await one_turn(store.log)
    v = await zebra_version(store.log, conv)
    await forger.flip(conv, v, b'"text":"zebra', b'"text"!"zebra')
    with pytest.raises(IntegrityError) as exc:
        [r async for r in replay(store.log, conv)]
    refused(exc, conv, v)
    assert "cannot be decoded" in str(exc.value)


# -- following ------------------------------------------------------------------------------------


async def test_a_follower_that_meets_a_forged_event_raises(store: StoreUnderTest, forger: Forger) -> None:
    conv, _ = await one_turn(store.log)
    v = await zebra_version(store.log, conv)
    await forger.flip(conv, v)
    for after in (0, v - 2, v - 1, v):
        got: list[int] = []
        with pytest.raises(IntegrityError) as exc:
            async with asyncio.timeout(10):
                async for page in store.log.follow(conv, after):
                    got += [r.version for r in page]
        refused(exc, conv, v)
        assert all(g < v for g in got)
        with pytest.raises(IntegrityError) as exc:
            async with asyncio.timeout(10):
                async for _ in store.log.subscribe(conv, after):
                    pass
        refused(exc, conv, v)
    assert not store.log._followers and not store.log._waiters  # every follower was released


@ON_DISK
async def test_a_live_follower_refuses_a_forged_event_written_behind_its_back(
    store: StoreUnderTest, forger: Forger
) -> None:
    store.log.poll_interval = 0.05
    conv, _ = await one_turn(store.log)
    head = await store.log.last(conv)
    assert head is not None
    got: list[int] = []

    async def follow() -> None:
        async for page in store.log.follow(conv, head.version):
            got.extend(r.version for r in page)

    follower = asyncio.create_task(follow())
    await asyncio.sleep(0.1)  # caught up, waiting
    (rec,) = seal(
        conv,
        [NewEvent(TextDelta(1, "zebra"), head.turn_id)],
        head_version=head.version,
        head_hash=head.hash,
        first_position=0,
        recorded_at=AT,
    )
    await forger.insert(msgspec.structs.replace(rec, payload=rec.payload.replace(REAL, FORGED)))
    with pytest.raises(IntegrityError) as exc:
        await asyncio.wait_for(follower, 10)
    refused(exc, conv, head.version + 1)
    assert got == []


# -- the command line -----------------------------------------------------------------------------


def turnlog(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "turnlog.adapters.cli", *args], capture_output=True, timeout=120)


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def test_the_command_line_refuses_a_forged_log(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    db = str(tmp_path / "cli.db") if kind == "sqlite" else request.getfixturevalue("pg_schema_url")
    log, messages = await open_store(db, encryption=False)
    async with log:
        conv, _ = await one_turn(log, messages)
        v = await zebra_version(log, conv)
        (stored,) = await log.read(conv, v - 1, 1)
    intact = turnlog("replay", conv, "--db", db)
    assert intact.returncode == 0 and REAL in intact.stdout
    await Forger(StoreUnderTest(kind, log, messages), db).set_payload(conv, v, stored.payload.replace(REAL, FORGED))

    for fmt in ("sse", "transcript", "events", "messages"):
        proc = turnlog("replay", conv, "--db", db, "--format", fmt)
        assert proc.returncode != 0, fmt
        lines = proc.stderr.decode().strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("turnlog: "), (fmt, lines)
        assert repr(conv) in lines[0] and f"version {v}" in lines[0], (fmt, lines)
        assert proc.stdout == b"", fmt  # nothing at all is printed, so nothing forged
        assert FORGED not in proc.stderr
    proc = turnlog("rebuild", "--db", db)
    assert proc.returncode != 0
    lines = proc.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and repr(conv) in lines[0] and f"version {v}" in lines[0]
    assert FORGED not in proc.stdout + proc.stderr


# -- the HTTP service -----------------------------------------------------------------------------

A = {"authorization": "Bearer tok-a"}


def service(store: StoreUnderTest) -> TurnService:
    auth = TokenAuth({"tok-a": Principal("acme", level=1, subject="ann")})
    return TurnService(store.log, store.messages, llm(), authenticate=auth, config=ServerConfig(recover_grace=0.0))


def error_frame(body: bytes) -> dict[str, Any]:
    """The stream's last block: the error frame, which has no ``id:`` line."""
    last = body.rstrip(b"\n").rsplit(b"\n\n", 1)[-1]
    lines = last.split(b"\n")
    assert lines[0] == b"event: error" and len(lines) == 2 and lines[1].startswith(b"data: "), last
    assert body.endswith(b"\n\n")
    return json.loads(lines[1][len(b"data: ") :])


async def test_the_events_endpoint_ends_a_forged_log_with_an_error_frame(
    store: StoreUnderTest, forger: Forger, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="turnlog.server")
    async with serving(service(store)) as url, httpx.AsyncClient(base_url=url) as client:
        r = await client.post("/conversations", json={}, headers=A)
        conv = r.json()["id"]
        async with client.stream("POST", f"/conversations/{conv}/turns", json={"message": "hi"}, headers=A) as r:
            live = await r.aread()
        assert REAL in live
        v = await zebra_version(store.log, conv)
        await forger.flip(conv, v)

        for mode in ("delta", "full"):
            r = await client.get(f"/conversations/{conv}/events?mode={mode}", headers=A)
            assert r.status_code == 200
            assert FORGED not in r.content
            assert all(i < v for i in ids_of(frames_of(r.content)))  # only checked events got frames
            assert error_frame(r.content) == {
                "content": f"stream {conv!r}: first broken link at version {v}: "
                "the stored bytes do not hash to the stored hash (changed)",
                "reason": "integrity_broken",
            }
        errors = [rec for rec in caplog.records if rec.name == "turnlog.server" and rec.levelno == logging.ERROR]
        assert errors and all(conv in rec.getMessage() and f"version {v}" in rec.getMessage() for rec in errors)
        assert FORGED.decode() not in caplog.text

        # Rows behind the log (a crash): catching them up from the forged log is a JSON error.
        await store.messages.clear()
        r = await client.get(f"/conversations/{conv}/messages", headers=A)
        assert r.status_code == 500
        error = r.json()["error"]
        assert error["code"] == "integrity_broken" and f"version {v}" in error["message"]
        assert FORGED not in r.content


@ON_DISK
async def test_a_live_stream_that_meets_a_forged_event_ends_with_an_error_frame(
    store: StoreUnderTest, forger: Forger, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="turnlog.server")
    store.log.poll_interval = 0.05
    async with serving(service(store)) as url, httpx.AsyncClient(base_url=url) as client:
        r = await client.post("/conversations", json={}, headers=A)
        conv = r.json()["id"]
        # A turn that another server is running: started, streaming, not ended.
        started = TurnStarted(
            user_message="hi",
            user_message_id="u1",
            assistant_message_id="a1",
            provider="scripted",
            model="m",
            temperature=None,
            max_tokens=None,
            thinking=False,
            tools=[],
            system_prompt=None,
            max_iterations=5,
        )
        recs = await store.log.append(
            conv,
            [
                NewEvent(started, "t1"),
                NewEvent(IterationStarted(1, "0" * 64), "t1"),
                NewEvent(TextDelta(1, "alpha "), "t1"),
            ],
            1,
            recorded_at=AT,
        )
        body = b""
        async with client.stream("GET", f"/conversations/{conv}/events", headers=A) as r:
            chunks = r.aiter_raw()
            while b"alpha" not in body:
                body += await anext(chunks)
            # The reader follows the live turn; the next event arrives forged, behind the log's back.
            (rec,) = seal(
                conv,
                [NewEvent(TextDelta(1, "zebra"), "t1")],
                head_version=recs[-1].version,
                head_hash=recs[-1].hash,
                first_position=0,
                recorded_at=AT,
            )
            await forger.insert(msgspec.structs.replace(rec, payload=rec.payload.replace(REAL, FORGED)))
            async with asyncio.timeout(10):
                async for chunk in chunks:
                    body += chunk
    assert FORGED not in body and REAL not in body
    assert ids_of(frames_of(body)) == [recs[-1].version]
    assert error_frame(body)["reason"] == "integrity_broken"
    assert f"version {rec.version}" in error_frame(body)["content"]
    assert f"version {rec.version}" in caplog.text and conv in caplog.text


# -- recovery -----------------------------------------------------------------------------------------


@ON_DISK
async def test_recovery_skips_a_forged_conversation_and_recovers_the_others(
    store: StoreUnderTest, forger: Forger, caplog: pytest.LogCaptureFixture
) -> None:
    """A server must still start (and its sweep go on) when one conversation is forged: that one
    is named in the log and left alone (nothing is appended to a chain that does not hold)."""
    eng = engine(store.log, store.messages)
    convs = []
    for _ in range(2):
        conv = await eng.create_conversation(model="m")
        # A turn whose process died right after it started: live in the log, nobody running it.
        await store.log.append(
            conv, [NewEvent(turn_started(provider="scripted"), "turn-dead")], 1, recorded_at="2026-01-01T00:00:00Z"
        )
        convs.append(conv)
    forged, intact = convs
    await forger.flip(forged, 2, b'"user_message":"hi"', b'"user_message":"hI"')
    done = await recover(store.log, messages=store.messages)
    assert [r.stream_id for r in done] == [intact]
    assert f"recovery skips conversation {forged}" in caplog.text
    assert (await store.log.last(forged)).type == "turn_started"  # type: ignore[union-attr]
