"""A follower in the process that appends (the SSE stream, the cancel watch) is handed the batch
the engine sealed in plaintext, not made to decrypt what this process just encrypted: it yields
the same events a read does, the log still stores ciphertext only, and nothing is kept for a
stream once its last follower has gone."""

from __future__ import annotations

import asyncio
import contextlib

from turnlog.adapters.crypto import PREFIX, EncryptedLog, KeyCache, MemoryKeyProvider
from turnlog.engine import ConversationCreated, InMemoryEventLog, NewEvent, TextDelta

AT = "2026-01-01T00:00:00Z"


async def test_a_follower_in_the_writing_process_yields_the_plaintext_it_was_handed() -> None:
    inner = InMemoryEventLog()
    log = EncryptedLog(inner, KeyCache(MemoryKeyProvider()))
    created = await log.append("c", [NewEvent(ConversationCreated(system_prompt="sys-secret"))], 0, recorded_at=AT)
    opened = 0
    real_open = log._open

    def counting_open(cipher, page):  # type: ignore[no-untyped-def]
        nonlocal opened
        opened += len(page)
        return real_open(cipher, page)

    log._open = counting_open  # type: ignore[method-assign]
    pages = log.follow("c", 1, after_hash=created[0].hash)
    async with contextlib.aclosing(pages):
        first = asyncio.ensure_future(anext(pages))
        for _ in range(5):
            await asyncio.sleep(0)  # the follower reads (nothing) and waits for a wake-up
        assert not first.done()
        batch = [NewEvent(TextDelta(iteration=1, text=f"word-{i} "), "t1") for i in range(3)]
        appended = await log.append("c", batch, 1, recorded_at=AT)
        page = await first
        assert page == appended
        assert [r.event for r in page] == [e.event for e in batch]
        assert opened == 0  # handed over, not decrypted again
        # What a read decrypts from the store is the same; the store holds ciphertext only.
        assert await log.read("c", 1) == page
        stored = await inner.read("c", 1)
        assert all(PREFIX.encode() in r.payload and b"word-" not in r.payload for r in stored)
        assert log._handed  # kept while the stream has a follower
    assert not log._handed  # and dropped with its last follower


async def test_a_follower_of_another_process_decrypts_what_it_reads() -> None:
    # Two logs over one store and one key provider: the second did not write the batch.
    inner, keys = InMemoryEventLog(), MemoryKeyProvider()
    writer = EncryptedLog(inner, KeyCache(keys))
    reader = EncryptedLog(inner, KeyCache(keys))
    created = await writer.append("c", [NewEvent(ConversationCreated(system_prompt="s"))], 0, recorded_at=AT)
    await writer.append("c", [NewEvent(TextDelta(iteration=1, text="hello"), "t1")], 1, recorded_at=AT)
    pages = reader.follow("c", 1, after_hash=created[0].hash)
    async with contextlib.aclosing(pages):
        page = await anext(pages)
    assert [r.event for r in page] == [TextDelta(iteration=1, text="hello")]
    assert not reader._handed and not writer._handed
