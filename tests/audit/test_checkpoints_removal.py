"""Nothing is removed unseen: each way of removing events from a real log (SQLite and PostgreSQL,
changed with plain SQL behind turnlog's back) makes ``turnlog verify`` exit 1 naming it; a sound
log with checkpoints verifies; signatures are checked; the private key never reaches the log."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import sqlite3
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from turnlog.adapters.cli import main
from turnlog.adapters.llm import EchoLLM
from turnlog.adapters.stores import open_store, parse_pg_url
from turnlog.engine import FixedClock, SequentialIds, TurnEngine, TurnRequest


def turnlog(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    rc = main(list(args))
    out, err = capsys.readouterr()
    return rc, out, err


async def _build(db: str) -> None:
    """conv-1, conv-2, conv-3, two turns each, interleaved: every conversation has others after it."""
    log, _ = await open_store(db)
    async with log:
        engine = TurnEngine(log, EchoLLM(), clock=FixedClock(), ids=SequentialIds())
        convs = [await engine.create_conversation(model="m") for _ in range(3)]
        for turn in range(2):
            for conv in convs:
                async for _ in engine.run_turn(conv, TurnRequest(f"turn {turn} of {conv} says hello")):
                    pass


def sql(db: str, statement: str) -> list[Any]:
    """Run one statement on the log's database behind turnlog's back (the tamperer's view)."""
    if db.startswith("postgresql"):

        async def go() -> list[Any]:
            target = parse_pg_url(db)
            conn = await asyncpg.connect(target.dsn, server_settings=target.server_settings)
            try:
                return [tuple(r) for r in await conn.fetch(statement)]
            finally:
                await conn.close()

        return asyncio.run(go())
    with sqlite3.connect(db) as conn:
        rows = conn.execute(statement).fetchall()
    conn.close()
    return rows


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    url = str(tmp_path / "log.db") if request.param == "sqlite" else request.getfixturevalue("pg_schema_url")
    asyncio.run(_build(url))
    return url


@pytest.fixture
def key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    path = tmp_path / "log.key"
    assert turnlog(capsys, "keygen", str(path))[0] == 0
    return path


def checkpoint(capsys: pytest.CaptureFixture[str], db: str, key: Path, save: Path | None = None) -> dict[str, Any]:
    rc, out, err = turnlog(capsys, "checkpoint", "--db", db, "--key", str(key))
    assert rc == 0, err
    if save is not None:
        save.write_text(out)
    return json.loads(out)


def verify(capsys: pytest.CaptureFixture[str], db: str, *extra: str) -> tuple[int, str]:
    rc, out, err = turnlog(capsys, "verify", "--db", db, *extra)
    if rc:
        assert out == "" and err.count("\n") == 1, err  # one line naming the first problem
        return rc, err
    return rc, out


def count(db: str) -> int:
    return sql(db, "SELECT count(*) FROM turnlog_events")[0][0]


def test_a_sound_log_with_checkpoints_verifies(db: str, key: Path, tmp_path: Path, capsys) -> None:
    first = checkpoint(capsys, db, key, save=tmp_path / "cp.json")
    assert first["size"] == count(db) and set(first) == {"origin", "size", "root", "timestamp", "key_id", "signature"}
    asyncio.run(_build_more(db))
    second = checkpoint(capsys, db, key)
    assert second["size"] == count(db) > first["size"]
    rc, out = verify(capsys, db, "--public-key", f"{key}.pub", "--checkpoint", str(tmp_path / "cp.json"))
    assert rc == 0, out
    assert out.startswith(f"ok: 4 conversation(s), {second['size']} events, hash chain intact; ")
    assert "2 checkpoint(s) match, signatures valid; the given checkpoint" in out
    rc, out = verify(capsys, db, "conv-2")
    assert rc == 0 and out.startswith("ok: 1 conversation(s)") and "signatures not checked" in out
    assert verify(capsys, db, "conv-99") == (1, "turnlog: error: unknown conversation 'conv-99' in " + db + "\n")


async def _build_more(db: str, conv: str = "conv-4") -> None:
    log, _ = await open_store(db)
    async with log:
        engine = TurnEngine(log, EchoLLM(), clock=FixedClock(), ids=SequentialIds())
        await engine.create_conversation(conv, model="m")
        async for _ in engine.run_turn(conv, TurnRequest("later words")):
            pass


def _last_turn(db: str, conv: str) -> str:
    return sql(db, f"SELECT turn_id FROM turnlog_events WHERE stream_id = '{conv}' ORDER BY version DESC LIMIT 1")[0][0]


def _renumber(db: str) -> None:
    """Close every gap in positions (in two steps: positions are a primary key)."""
    rows = sql(db, "SELECT position FROM turnlog_events ORDER BY position")
    for new, (old,) in enumerate(rows, 1):
        if new != old:
            sql(db, f"UPDATE turnlog_events SET position = {-new} WHERE position = {old}")
    sql(db, "UPDATE turnlog_events SET position = -position WHERE position < 0")


def remove_middle_event(db: str) -> None:
    sql(db, "DELETE FROM turnlog_events WHERE stream_id = 'conv-2' AND version = 5")


def remove_conversation_tail(db: str) -> None:
    sql(db, f"DELETE FROM turnlog_events WHERE stream_id = 'conv-1' AND turn_id = '{_last_turn(db, 'conv-1')}'")


def remove_conversation(db: str) -> None:
    sql(db, "DELETE FROM turnlog_events WHERE stream_id = 'conv-2'")


def _and_renumber(remove):
    """Remove, close the gap in positions, and let the log go on past the checkpoint's size (the
    service keeps appending): every chain and every position now looks sound."""

    def tamper(db: str) -> None:
        size = count(db)
        remove(db)
        _renumber(db)
        n = 10
        while count(db) <= size:
            n += 1
            asyncio.run(_build_more(db, f"conv-{n}"))

    tamper.__name__ = f"{remove.__name__}_and_renumber"
    return tamper


@pytest.mark.parametrize(
    ("tamper", "named"),
    [
        (
            remove_middle_event,
            "stream 'conv-2': first broken link at version 6: it follows version 4: 1 event(s) removed",
        ),
        (remove_conversation_tail, "is missing (the log jumps to"),
        (remove_conversation, "is missing (the log jumps to"),
        # Only the stored checkpoint's root can tell.
        (_and_renumber(remove_conversation), "events at positions 1.."),
        (_and_renumber(remove_conversation_tail), "events at positions 1.."),
    ],
)
def test_each_removal_is_detected(db: str, key: Path, capsys, tamper, named: str) -> None:
    checkpoint(capsys, db, key)
    assert verify(capsys, db)[0] == 0
    tamper(db)
    rc, err = verify(capsys, db, "--public-key", f"{key}.pub")
    assert rc == 1 and named in err, err
    assert "removed" in err, err


def test_a_log_rolled_back_with_its_checkpoints_is_caught_by_the_checkpoint_kept_outside(
    db: str, key: Path, tmp_path: Path, capsys
) -> None:
    kept = tmp_path / "kept.json"
    old = checkpoint(capsys, db, key, save=kept)
    asyncio.run(_build_more(db))
    checkpoint(capsys, db, key)
    back_to = old["size"] - 5
    sql(db, f"DELETE FROM turnlog_events WHERE position > {back_to}")
    sql(db, f"DELETE FROM turnlog_checkpoints WHERE size > {back_to}")
    assert verify(capsys, db, "--public-key", f"{key}.pub")[0] == 0  # nothing inside the log can tell
    rc, err = verify(capsys, db, "--public-key", f"{key}.pub", "--checkpoint", str(kept))
    assert rc == 1
    assert f"the given checkpoint (size {old['size']}" in err
    assert f"covers {old['size']} events, the log holds {back_to}: events were removed from the end" in err


def test_events_removed_from_the_end_behind_a_stored_checkpoint_are_caught_by_it(db: str, key: Path, capsys) -> None:
    cp = checkpoint(capsys, db, key)
    sql(db, f"DELETE FROM turnlog_events WHERE position > {cp['size'] - 3}")
    rc, err = verify(capsys, db)
    assert rc == 1 and f"checkpoint of size {cp['size']}" in err and "events were removed from the end" in err
    # And no new checkpoint is signed over the shortened log.
    rc, _, err = turnlog(capsys, "checkpoint", "--db", db, "--key", str(key))
    assert rc == 1 and "events were removed from its end" in err and err.count("\n") == 1


def test_a_bad_signature_or_another_key_fails(db: str, key: Path, tmp_path: Path, capsys) -> None:
    cp = checkpoint(capsys, db, key)
    assert verify(capsys, db, "--public-key", f"{key}.pub")[0] == 0
    other = tmp_path / "other.key"
    assert turnlog(capsys, "keygen", str(other))[0] == 0
    rc, err = verify(capsys, db, "--public-key", f"{other}.pub")
    assert rc == 1 and "signed by another key" in err

    forged = base64.b64encode(bytes(64)).decode()
    sql(db, f"UPDATE turnlog_checkpoints SET signature = '{forged}'")
    rc, err = verify(capsys, db, "--public-key", f"{key}.pub")
    assert rc == 1 and f"checkpoint of size {cp['size']}" in err and "bad signature" in err

    # A checkpoint file changed by hand: another root under the old signature.
    sql(db, f"UPDATE turnlog_checkpoints SET signature = '{cp['signature']}'")
    changed = dict(cp, root="00" * 32)
    (tmp_path / "changed.json").write_text(json.dumps(changed))
    rc, err = verify(capsys, db, "--checkpoint", str(tmp_path / "changed.json"), "--public-key", f"{key}.pub")
    assert rc == 1 and "the given checkpoint" in err and "bad signature" in err


def test_keygen_writes_0600_and_the_private_key_never_reaches_the_database(tmp_path: Path, capsys) -> None:
    db = str(tmp_path / "log.db")
    asyncio.run(_build(db))
    path = tmp_path / "k.key"
    rc, out, _ = turnlog(capsys, "keygen", str(path))
    assert rc == 0 and "key id " in out
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert b"PRIVATE KEY" in path.read_bytes() and b"PUBLIC KEY" in Path(f"{path}.pub").read_bytes()
    rc, _, err = turnlog(capsys, "keygen", str(path))
    assert rc == 1 and "never overwritten" in err

    from cryptography.hazmat.primitives import serialization

    private = serialization.load_pem_private_key(path.read_bytes(), password=None)
    raw = private.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    pem_body = b"".join(path.read_bytes().splitlines()[1:-1])
    for _ in range(3):
        checkpoint(capsys, db, path)
    stored = b"".join(p.read_bytes() for p in tmp_path.glob("log.db*"))
    assert stored and raw not in stored and pem_body not in stored and b"PRIVATE" not in stored
