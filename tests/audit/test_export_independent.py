"""Proof for a third party: ``turnlog export`` writes one conversation with its checkpoint and
inclusion proof; a verifier written here from docs/architecture.md's recipe alone (the standard
library, and ``cryptography`` for the Ed25519 signature) accepts it, and refuses, as ``turnlog
verify --file`` does, every tampered copy. On SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from turnlog.adapters.cli import main
from turnlog.adapters.llm import EchoLLM
from turnlog.adapters.stores import open_store
from turnlog.engine import FixedClock, SequentialIds, TurnEngine, TurnRequest

# -- the independent verifier: docs/architecture.md, "Audit: the log-wide tree, checkpoints, exports"


def _sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def independent_verify(lines: list[bytes], public_key_pem: bytes) -> tuple[int, int]:
    """(the version the checkpoint proves, the events after it); AssertionError or the signature
    library's InvalidSignature when the export does not hold."""
    items = [json.loads(line) for line in lines if line.strip()]
    header, rest = items[0], items[1:]
    assert header["kind"] == "header" and header["format"] == "turnlog-export/1"
    events = [i for i in rest if i["kind"] == "event"]
    (cp,) = [i for i in rest if i["kind"] == "checkpoint"]
    (proof,) = [i for i in rest if i["kind"] == "proof"]
    assert len(events) + 2 == len(rest)

    # 1. the chain: hash = sha256(compact JSON header + "\n" + the stored payload bytes)
    prev = "0" * 64
    for expected, e in enumerate(events, 1):
        assert e["stream_id"] == header["conversation"] and e["version"] == expected and e["prev_hash"] == prev
        head = [e["prev_hash"], e["stream_id"], e["version"], e["turn_id"], e["recorded_at"], e["type"], e["schema"]]
        encoded = json.dumps(head, separators=(",", ":"), ensure_ascii=False).encode()
        digest = hashlib.sha256(encoded + b"\n" + base64.b64decode(e["payload"], validate=True)).hexdigest()
        assert digest == e["hash"], f"version {expected} changed"
        prev = digest

    # 2. the checkpoint: Ed25519 over "{origin}\n{size}\n{base64 root}\n{timestamp}\n"
    public = serialization.load_pem_public_key(public_key_pem)
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert cp["key_id"] == hashlib.sha256(raw).hexdigest()
    root = bytes.fromhex(cp["root"])
    body = f"{cp['origin']}\n{cp['size']}\n{base64.b64encode(root).decode()}\n{cp['timestamp']}\n".encode()
    public.verify(base64.b64decode(cp["signature"]), body)  # type: ignore[union-attr]

    # 3. the proof: RFC 9162 §2.1.3.2 from leaf SHA-256(0x00 || chain hash) to the signed root
    (anchored,) = [e for e in events if e["position"] == proof["position"]]
    assert anchored["version"] == proof["version"] and anchored["position"] <= cp["size"]
    assert all(e["position"] > cp["size"] for e in events if e["version"] > anchored["version"])
    index, size = proof["leaf_index"], proof["tree_size"]
    assert index == anchored["position"] - 1 and size == cp["size"] and index < size
    fn, sn, r = index, size - 1, _sha256(b"\x00" + bytes.fromhex(anchored["hash"]))
    for p in (bytes.fromhex(h) for h in proof["path"]):
        assert sn != 0
        if fn & 1 or fn == sn:
            r = _sha256(b"\x01" + p + r)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = _sha256(b"\x01" + r + p)
        fn, sn = fn >> 1, sn >> 1
    assert sn == 0 and r == root, "the proof does not reach the checkpoint's root"
    return anchored["version"], len(events) - anchored["version"]


# -- a log, a key, the commands --------------------------------------------------------------------


def turnlog(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    rc = main(list(args))
    out, err = capsys.readouterr()
    return rc, out, err


async def _turns(db: str, conv: str, *messages: str, create: bool = False) -> None:
    log, _ = await open_store(db)
    async with log:
        engine = TurnEngine(log, EchoLLM(), clock=FixedClock(), ids=SequentialIds())
        if create:
            await engine.create_conversation(conv, model="m")
        for message in messages:
            async for _ in engine.run_turn(conv, TurnRequest(message)):
                pass


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    url = str(tmp_path / "log.db") if request.param == "sqlite" else request.getfixturevalue("pg_schema_url")

    async def build() -> None:
        for conv in ("alpha", "beta", "gamma"):
            await _turns(url, conv, create=True)
        for round_ in range(3):
            for conv in ("alpha", "beta", "gamma"):
                await _turns(url, conv, f'round {round_}: tell {conv} about naïve café ☕ and "quotes"')

    asyncio.run(build())
    return url


@pytest.fixture
def key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    assert turnlog(capsys, "keygen", str(tmp_path / "k.key"))[0] == 0
    return tmp_path / "k.key"


def export(capsys: pytest.CaptureFixture[str], db: str, conv: str) -> list[bytes]:
    rc, out, err = turnlog(capsys, "export", conv, "--db", db)
    assert rc == 0, err
    return out.encode().splitlines(keepends=True)


def verify_file(capsys: pytest.CaptureFixture[str], lines: list[bytes], key: Path, tmp_path: Path) -> tuple[int, str]:
    path = tmp_path / "conv.jsonl"
    path.write_bytes(b"".join(lines))
    rc, out, err = turnlog(capsys, "verify", "--file", str(path), "--public-key", f"{key}.pub")
    return rc, out if rc == 0 else err


# -- tampering -----------------------------------------------------------------------------------


def _edit(lines: list[bytes], kind: str, change, which: int = 0) -> list[bytes]:
    out, seen = [], 0
    for line in lines:
        item: dict[str, Any] = json.loads(line)
        if item["kind"] == kind:
            if seen == which:
                change(item)
                line = json.dumps(item, separators=(",", ":")).encode() + b"\n"
            seen += 1
        out.append(line)
    return out


def one_payload_byte(lines: list[bytes]) -> list[bytes]:
    def change(e: dict[str, Any]) -> None:
        payload = bytearray(base64.b64decode(e["payload"]))
        payload[len(payload) // 2] ^= 0x01
        e["payload"] = base64.b64encode(bytes(payload)).decode()

    return _edit(lines, "event", change, which=7)


def a_removed_event(lines: list[bytes]) -> list[bytes]:
    return [*lines[:5], *lines[6:]]


def the_anchored_event_removed(lines: list[bytes]) -> list[bytes]:
    return [*lines[:-3], *lines[-2:]]  # the last event (the anchored one when all are covered)


def a_changed_proof_hash(lines: list[bytes]) -> list[bytes]:
    def change(p: dict[str, Any]) -> None:
        h = p["path"][1]
        p["path"][1] = ("0" if h[0] != "0" else "1") + h[1:]

    return _edit(lines, "proof", change)


def a_changed_checkpoint_root(lines: list[bytes]) -> list[bytes]:
    def change(cp: dict[str, Any]) -> None:
        cp["root"] = hashlib.sha256(b"another log").hexdigest()

    return _edit(lines, "checkpoint", change)


def test_an_export_is_proven_by_the_independent_verifier_and_by_turnlog(db: str, key: Path, tmp_path, capsys) -> None:
    rc, _, err = turnlog(capsys, "export", "beta", "--db", db)
    assert rc == 1 and "the log has no checkpoint yet; run `turnlog checkpoint" in err and err.count("\n") == 1
    assert turnlog(capsys, "checkpoint", "--db", db, "--key", str(key))[0] == 0
    lines = export(capsys, db, "beta")
    events = sum(b'"kind":"event"' in line for line in lines)
    assert independent_verify(lines, Path(f"{key}.pub").read_bytes()) == (events, 0)
    rc, out = verify_file(capsys, lines, key, tmp_path)
    assert rc == 0 and out.startswith(
        f"ok: conversation 'beta', {events} events, hash chain intact; versions 1..{events}"
    )
    # No other conversation's event is in the file.
    assert all(b'"stream_id":"beta"' in line for line in lines if b'"kind":"event"' in line)


@pytest.mark.parametrize(
    "tamper",
    [one_payload_byte, a_removed_event, the_anchored_event_removed, a_changed_proof_hash, a_changed_checkpoint_root],
)
def test_a_tampered_export_is_refused_by_both(db: str, key: Path, tmp_path, capsys, tamper) -> None:
    assert turnlog(capsys, "checkpoint", "--db", db, "--key", str(key))[0] == 0
    lines = export(capsys, db, "alpha")
    public = Path(f"{key}.pub").read_bytes()
    independent_verify(lines, public)
    forged = tamper(lines)
    assert forged != lines
    with pytest.raises(Exception):  # noqa: B017 (an assertion, or cryptography's InvalidSignature)
        independent_verify(forged, public)
    rc, err = verify_file(capsys, forged, key, tmp_path)
    assert rc == 1 and err.startswith("turnlog: verify: ") and err.count("\n") == 1, err


def test_events_after_the_checkpoint_are_exported_and_not_anchored(db: str, key: Path, tmp_path, capsys) -> None:
    assert turnlog(capsys, "checkpoint", "--db", db, "--key", str(key))[0] == 0
    asyncio.run(_turns(db, "gamma", "a later question", "and one more"))
    asyncio.run(_turns(db, "delta", "too late for the checkpoint", create=True))
    lines = export(capsys, db, "gamma")
    anchored, later = independent_verify(lines, Path(f"{key}.pub").read_bytes())
    assert anchored > 1 and later > 0
    rc, out = verify_file(capsys, lines, key, tmp_path)
    assert rc == 0 and f"versions 1..{anchored} proven" in out and f"{later} later event(s) not anchored" in out
    rc, _, err = turnlog(capsys, "export", "delta", "--db", db)
    assert rc == 1 and "began after the latest checkpoint" in err and "run `turnlog checkpoint" in err
    rc, _, err = turnlog(capsys, "export", "nobody", "--db", db)
    assert rc == 1 and "unknown conversation 'nobody'" in err
    rc, _, err = turnlog(capsys, "verify", "--file", str(tmp_path / "x.jsonl"))
    assert rc == 1 and "needs --public-key" in err
