"""Data keys: the cache is bounded (least recently used out) and re-reads a key once it is ``ttl``
old; a master key wraps what the database stores, and a database whose keys are wrapped says
so when opened without it (or with another)."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest
from turnlog.adapters.crypto import ERASED, KeyCache, KeyRecord, MasterKey, MemoryKeyProvider
from turnlog.adapters.stores import open_store
from turnlog.engine import ConfigError, TurnStarted, replay

from ._scenario import CANARY_USER, run_turn


class CountingProvider(MemoryKeyProvider):
    def __init__(self) -> None:
        super().__init__()
        self.gets = 0

    async def get(self, conversation_id: str) -> KeyRecord | None:
        self.gets += 1
        return await super().get(conversation_id)


async def test_the_cache_is_bounded_and_rereads_after_its_ttl() -> None:
    now = [0.0]
    provider = CountingProvider()
    cache = KeyCache(provider, size=2, ttl=5.0, clock=lambda: now[0])
    for cid in ("a", "b", "c"):
        await cache.create(cid, "t")
    await cache.get("c")
    await cache.get("b")
    assert provider.gets == 0  # both still cached
    await cache.get("a")  # evicted by the bound (size 2): read again
    assert provider.gets == 1
    now[0] = 5.0
    await cache.get("a")  # ttl up: read again
    assert provider.gets == 2
    await cache.destroy(["a"], "t")
    assert await cache.get("a") == "erased" and await provider.get("a") == KeyRecord(None, "t")


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ConfigError):
        KeyCache(MemoryKeyProvider(), size=0)
    with pytest.raises(ConfigError):
        KeyCache(MemoryKeyProvider(), ttl=-1)
    with pytest.raises(ConfigError, match="32 bytes"):
        MasterKey.from_text(base64.b64encode(b"short").decode())
    with pytest.raises(ConfigError, match="base64"):
        MasterKey.from_text("not base64!")


async def test_a_master_key_wraps_the_stored_keys(tmp_path: Path) -> None:
    db = tmp_path / "wrapped.db"
    master = MasterKey(os.urandom(32))
    store = await open_store(db, master_key=master)
    try:
        conv, _ = await run_turn(store)
        key = (await store.keys.provider.get(conv)).key  # type: ignore[union-attr]
    finally:
        await store.close()
    assert key is not None and key not in db.read_bytes()  # only the wrapped key is stored
    for wrong in (MasterKey(None), MasterKey(os.urandom(32))):
        other = await open_store(db, master_key=wrong)
        try:
            with pytest.raises(ConfigError, match=r"master key|TURNLOG_MASTER_KEY"):
                await other.messages.rows(conv)
        finally:
            await other.close()
    again = await open_store(db, master_key=master)
    try:
        (started,) = [r.event async for r in replay(again.log, conv) if isinstance(r.event, TurnStarted)]
        assert started.user_message == CANARY_USER != ERASED
    finally:
        await again.close()
