"""The port contracts hold through the encrypting decorators: ``EventLogContract`` over
``EncryptedLog`` and ``MessageStoreContract`` over ``EncryptedMessages``, in memory, on SQLite and
on PostgreSQL (opened by ``open_store``, encryption on, as the CLI and the server open them).

One contract test is replaced, not skipped: the event log's pinned payload bytes are the clear
encoding, which an encrypted log never stores by design. Its replacement checks what the pin
protects (the stored bytes chain and verify) and that the bytes are ciphertext."""

from __future__ import annotations

import pytest
from turnlog.adapters.crypto import PREFIX, EncryptedLog, EncryptedMessages, KeyCache, MemoryKeyProvider
from turnlog.adapters.stores import open_store
from turnlog.engine import (
    GENESIS_HASH,
    ConversationCreated,
    EventLog,
    InMemoryEventLog,
    NewEvent,
    TextDelta,
    ToolCall,
    ToolCallsRequested,
    chain_hash,
    verify,
)
from turnlog.engine.testing import EventLogContract
from turnlog.projections import MemoryMessageStore, MessageStore
from turnlog.projections.testing import MessageStoreContract


class _EncryptedContract(EventLogContract):
    async def test_hash_chain_bytes_are_identical_on_every_store(self, log: EventLog) -> None:
        events = [
            NewEvent(ConversationCreated(system_prompt="Sé breve ✨", model="m", tenant="t1")),
            *[NewEvent(TextDelta(iteration=1, text="Grüße 👋 "), "turn-1") for _ in range(3)],
            NewEvent(ToolCallsRequested(iteration=1, calls=[ToolCall("c1", "get_weather", '{"city":"Zürich"}')])),
        ]
        await log.append("conv-ü", events[:2], 0, recorded_at="2026-01-01T00:00:00Z")
        await log.append("conv-ü", events[2:], 2, recorded_at="2026-01-01T00:00:01Z")
        stored = await log.read("conv-ü")
        assert [r.event for r in stored] == [e.event for e in events]
        prev = GENESIS_HASH
        for r in stored:
            assert r.prev_hash == prev
            assert r.hash == chain_hash(
                prev, r.stream_id, r.version, r.turn_id, r.recorded_at, r.type, r.schema, r.payload
            )
            prev = r.hash
        assert all(PREFIX.encode() in r.payload for r in stored)
        assert not any(b"Gr\xc3\xbc\xc3\x9fe" in r.payload or b"Z\xc3\xbcrich" in r.payload for r in stored)
        assert (await verify(log, "conv-ü")).ok

    async def test_large_payloads(self, log: EventLog) -> None:
        big = "x" * 4_000_000 + "é"
        batch = [
            NewEvent(TextDelta(iteration=1, text=big)),
            *[NewEvent(TextDelta(iteration=1, text="t")) for _ in range(500)],
        ]
        await log.append("a", batch, 0, recorded_at="2026-01-01T00:00:00Z")
        got = await log.read("a")
        assert got[0].event.text == big and len(got) == 501  # type: ignore[attr-defined]
        # The stored bytes are the ciphertext (base64 of it: a third larger), never the clear text.
        assert PREFIX.encode() in got[0].payload and b"x" * 1000 not in got[0].payload
        assert len(got[0].payload) > len(big) * 4 // 3


class TestEncryptedMemoryLog(_EncryptedContract):
    async def open_log(self) -> EventLog:
        return EncryptedLog(InMemoryEventLog(), KeyCache(MemoryKeyProvider()))


class TestEncryptedSqliteLog(_EncryptedContract):
    async def open_log(self) -> EventLog:
        return (await open_store(self.tmp_path / "enc.db")).log

    async def open_again(self, log: EventLog) -> EventLog:
        return (await open_store(self.tmp_path / "enc.db")).log


@pytest.mark.postgres
class TestEncryptedPostgresLog(_EncryptedContract):
    wakes_other_instances = True

    @pytest.fixture(autouse=True)
    def _schema(self, pg_schema_url: str) -> None:
        self.url = pg_schema_url

    async def open_log(self) -> EventLog:
        return (await open_store(self.url)).log

    async def open_again(self, log: EventLog) -> EventLog:
        return (await open_store(self.url)).log


class TestEncryptedMemoryRows(MessageStoreContract):
    async def open_rows(self) -> tuple[EventLog, MessageStore]:
        keys = KeyCache(MemoryKeyProvider())
        return EncryptedLog(InMemoryEventLog(), keys), EncryptedMessages(MemoryMessageStore(), keys)


def test_open_store_encrypts_by_default_and_can_be_told_not_to(tmp_path) -> None:
    import asyncio

    async def check() -> None:
        on = await open_store(tmp_path / "on.db")
        off = await open_store(tmp_path / "off.db", encryption=False)
        try:
            assert isinstance(on.log, EncryptedLog) and isinstance(on.messages, EncryptedMessages)
            assert on.keys is not None and off.keys is None
            assert not isinstance(off.log, EncryptedLog)
        finally:
            await on.close()
            await off.close()

    asyncio.run(check())
