"""Erasure by crypto-shredding, on SQLite and PostgreSQL: verify and a signed export pass before
and after; afterwards replay, rows, transcript and summary show the content as erased while the
metadata stays; no turn may start; the refusals say why; a subject's conversations go in one
call; a server that cached the key stops decrypting once its ttl is up."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from turnlog.adapters.crypto import ERASED, ERASED_CONTENT, erase, erase_subject
from turnlog.adapters.llm import EchoLLM
from turnlog.adapters.signing import load_verifier, write_keypair
from turnlog.adapters.stores import Store, open_store
from turnlog.engine import (
    ConversationErased,
    ConversationErasedError,
    NotEncrypted,
    TurnEngine,
    TurnInProgress,
    TurnRequest,
    TurnStarted,
    create_checkpoint,
    export_conversation,
    replay,
    verify,
    verify_export,
    verify_log,
)
from turnlog.projections import fold_rows, render

from ._scenario import CANARIES, CANARY_TOOL, CANARY_USER, run_turn


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    return tmp_path / "erase.db" if request.param == "sqlite" else request.getfixturevalue("pg_schema_url")


async def exported(store: Store, conv: str) -> list[bytes]:
    return [line async for line in export_conversation(store.log, conv)]


async def test_verify_and_export_hold_before_and_after_erasure(db: Any, tmp_path: Path) -> None:
    signer = write_keypair(tmp_path / "k")
    keys = [load_verifier(tmp_path / "k.pub")]
    store = await open_store(db)
    try:
        conv, _ = await run_turn(store)
        await create_checkpoint(store.log, signer)
        before = await exported(store, conv)
        assert (await verify(store.log, conv)).ok and verify_export(before, keys).ok
        assert (await verify_log(store.log, keys=keys)).ok
        assert not any(c.encode() in b"".join(before) for c in CANARIES)  # the export holds ciphertext

        await erase(store.log, store.messages, [conv], reason="art. 17", tenant="t", subject="dpo")
        assert (await verify(store.log, conv)).ok
        assert (await verify_log(store.log, keys=keys)).ok
        # The old export still verifies, and a new one (the same stored bytes, one event more).
        assert verify_export(before, keys).ok
        after = await exported(store, conv)
        report = verify_export(after, keys)
        assert report.ok and report.events == len(before) - 3 + 1
        assert after[1:-3] == before[1:-2]  # every event line unchanged
    finally:
        await store.close()


async def test_after_erasure_content_reads_erased_and_metadata_stays(db: Any) -> None:
    store = await open_store(db)
    try:
        conv, _ = await run_turn(store, tenant="t", subject="alice")
        rows_before = await store.messages.rows(conv)
        await erase(store.log, store.messages, [conv], reason="asked by alice", tenant="t", subject="alice")
        events = [rec async for rec in replay(store.log, conv)]
        last = events[-1].event
        assert isinstance(last, ConversationErased) and (last.subject, last.reason) == ("alice", "asked by alice")
        started = next(r.event for r in events if isinstance(r.event, TurnStarted))
        assert started.user_message == ERASED and started.system_prompt == ERASED
        # Rows: rebuilt, content erased; times, tokens, tool names, statuses kept.
        rows = await store.messages.rows(conv)
        assert rows == fold_rows(conv, events)
        assert [(r.id, r.role, r.status, r.created_at, r.token_count, r.usage) for r in rows] == [
            (r.id, r.role, r.status, r.created_at, r.token_count, r.usage) for r in rows_before
        ]
        assert '"text": "[erased]"' in rows[0].content and '"text": "[erased]"' in rows[1].content
        assert '"name": "lookup"' in rows[1].content and '"success": true' in rows[1].content
        assert not any(c in r.content for r in rows for c in CANARIES)
        text = render(events)
        assert 'tool_result c1 lookup ok: "[erased]"' in text and 'system: "[erased]"' in text
        assert 'deltas): "[erased]"\n' in text  # a run of erased deltas shows once
        assert "erased v" in text and 'reason="asked by alice"' in text
        assert not any(c in text for c in CANARIES)
        summary = await store.conversations.get(conv)  # type: ignore[union-attr]
        assert summary is not None and summary.title == ERASED and summary.turns == 1
        assert summary.last_status == "finalized"
    finally:
        await store.close()


async def test_an_erased_conversation_refuses_turns_and_a_second_erase(db: Any) -> None:
    store = await open_store(db)
    try:
        conv, _ = await run_turn(store)
        await erase(store.log, store.messages, [conv], reason="r")
        engine = TurnEngine(store.log, EchoLLM(), messages=store.messages)
        with pytest.raises(ConversationErasedError) as refused:
            async for _ in engine.run_turn(conv, TurnRequest("again")):
                pass
        assert refused.value.code == "conversation_erased"
        with pytest.raises(ConversationErasedError):
            await erase(store.log, store.messages, [conv], reason="r")
        assert (await verify(store.log, conv)).ok
    finally:
        await store.close()


async def test_a_live_turn_is_not_erased(tmp_path: Path) -> None:
    store = await open_store(tmp_path / "live.db")
    try:
        engine = TurnEngine(store.log, EchoLLM(), messages=store.messages)
        conv = await engine.create_conversation()
        turn = engine.run_turn(conv, TurnRequest("hello"))
        await anext(turn)  # TurnStarted is written: the turn is live
        with pytest.raises(TurnInProgress):
            await erase(store.log, store.messages, [conv], reason="r")
        async for _ in turn:
            pass
        done = await erase(store.log, store.messages, [conv], reason="r")
        assert done.erased == [conv]
    finally:
        await store.close()


async def test_a_conversation_written_before_encryption_stays_readable_and_is_not_erased(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    old = await open_store(db, encryption=False)
    conv, _ = await run_turn(old)
    await old.close()
    store = await open_store(db)
    try:
        (started,) = [r.event async for r in replay(store.log, conv) if isinstance(r.event, TurnStarted)]
        assert started.user_message == CANARY_USER
        assert CANARY_TOOL in (await store.messages.rows(conv))[1].content
        with pytest.raises(NotEncrypted):
            await erase(store.log, store.messages, [conv], reason="r")
        assert (await store.log.last(conv)).type != "conversation_erased"  # type: ignore[union-attr]
        new, _ = await run_turn(store)  # a new conversation on the old database gets a key
        assert (await erase(store.log, store.messages, [new], reason="r")).erased == [new]
    finally:
        await store.close()


async def test_a_subjects_conversations_are_erased_in_one_call(db: Any) -> None:
    store = await open_store(db)
    try:
        mine = [(await run_turn(store, tenant="t", subject="bob"))[0] for _ in range(3)]
        other, _ = await run_turn(store, tenant="t", subject="carol")
        elsewhere, _ = await run_turn(store, tenant="u", subject="bob")
        done = await erase_subject(store.log, store.messages, tenant="t", subject="bob", reason="bob left")
        assert sorted(done.erased) == sorted(mine) and done.skipped == {}
        for conv in mine:
            assert (await store.log.last(conv)).type == "conversation_erased"  # type: ignore[union-attr]
        for conv in (other, elsewhere):
            assert CANARY_USER in (await store.messages.rows(conv))[0].content
    finally:
        await store.close()


@pytest.mark.postgres
async def test_a_server_that_cached_the_key_stops_decrypting_after_its_ttl(pg_schema_url: str) -> None:
    now = [0.0]
    one = await open_store(pg_schema_url)
    two = await open_store(pg_schema_url)
    one.keys.clock = lambda: now[0]  # type: ignore[union-attr]
    try:
        conv, _ = await run_turn(one)
        assert (await one.messages.rows(conv))[0].content.count(CANARY_USER) == 1  # cached on server one
        await erase(two.log, two.messages, [conv], reason="r")
        now[0] += one.keys.ttl + 0.001  # type: ignore[union-attr]
        (started,) = [r.event async for r in replay(one.log, conv) if isinstance(r.event, TurnStarted)]
        assert started.user_message == ERASED
        rows = await one.messages.rows(conv)
        assert not any(CANARY_USER in r.content for r in rows)
    finally:
        await one.close()
        await two.close()


async def test_rows_read_between_the_keys_destruction_and_their_rebuild_show_erased(tmp_path: Path) -> None:
    store = await open_store(tmp_path / "gap.db")
    try:
        conv, _ = await run_turn(store)
        await store.keys.destroy([conv], "2026-01-01T00:00:00Z")  # type: ignore[union-attr]
        rows = await store.messages.rows(conv)
        assert [r.content for r in rows] == [ERASED_CONTENT, ERASED_CONTENT]
    finally:
        await store.close()
