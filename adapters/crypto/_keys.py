"""Data keys: one AES-256-GCM key per conversation, kept behind a port (``KeyProvider``) so a KMS
can hold them instead of the database, wrapped by an optional master key, and cached in memory
(``KeyCache``: bounded, and re-checked after ``ttl`` seconds so a key another server destroyed
stops decrypting here within that time).
"""

from __future__ import annotations

import abc
import base64
import binascii
import hmac
import os
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import NamedTuple

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from turnlog.engine import ConfigError

#: The environment variable ``open_store`` and ``turnlog serve`` read the master key from.
MASTER_KEY_ENV = "TURNLOG_MASTER_KEY"


class KeyRecord(NamedTuple):
    """A conversation's key as the provider holds it: the data key, or None once erased (then
    ``erased_at`` says when)."""

    key: bytes | None
    erased_at: str | None = None


class KeyProvider(abc.ABC):
    """Where data keys live: a table beside the log (``turnlog.adapters.stores.SqlKeyProvider``),
    memory (``MemoryKeyProvider``), or a KMS behind your own implementation."""

    @abc.abstractmethod
    async def create(self, conversation_id: str, at: str) -> KeyRecord:
        """A new data key for the conversation, or the record it already has (never a second key)."""

    @abc.abstractmethod
    async def get(self, conversation_id: str) -> KeyRecord | None:
        """The conversation's key record; None: it never had one (written before encryption)."""

    @abc.abstractmethod
    async def destroy(self, conversation_ids: Iterable[str], at: str) -> None:
        """Destroy the keys for good (leaving a tombstone: ``KeyRecord(None, at)``), so no copy
        of the key bytes stays in the store's files as far as the store can see to it."""


class MemoryKeyProvider(KeyProvider):
    """Keys in a dict: the in-memory log's companion, and the tests'."""

    def __init__(self) -> None:
        self._keys: dict[str, KeyRecord] = {}

    async def create(self, conversation_id: str, at: str) -> KeyRecord:
        found = self._keys.get(conversation_id)
        if found is None:
            found = self._keys[conversation_id] = KeyRecord(AESGCM.generate_key(256))
        return found

    async def get(self, conversation_id: str) -> KeyRecord | None:
        return self._keys.get(conversation_id)

    async def destroy(self, conversation_ids: Iterable[str], at: str) -> None:
        for cid in conversation_ids:
            self._keys[cid] = KeyRecord(None, at)


class MasterKey:
    """Wraps data keys before a provider stores them (AES-256-GCM, the conversation id as
    associated data): the database alone then reveals no content, and a copy of it taken before
    an erasure (a backup, PostgreSQL's WAL) holds only wrapped keys."""

    RAW = b"R1"
    WRAPPED = b"W1"

    def __init__(self, key: bytes | None) -> None:
        if key is not None and len(key) != 32:
            raise ConfigError(f"the master key must be 32 bytes (256 bits), not {len(key)}")
        self._aead = AESGCM(key) if key is not None else None

    @classmethod
    def from_text(cls, text: str | None) -> MasterKey:
        """From base64 text (``TURNLOG_MASTER_KEY``; e.g. ``openssl rand -base64 32``)."""
        if not text:
            return cls(None)
        try:
            key = base64.b64decode(text.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise ConfigError(
                f"{MASTER_KEY_ENV} must be 32 bytes in base64 (e.g. from `openssl rand -base64 32`)"
            ) from None
        return cls(key)

    @classmethod
    def from_env(cls) -> MasterKey:
        return cls.from_text(os.environ.get(MASTER_KEY_ENV))

    @property
    def configured(self) -> bool:
        return self._aead is not None

    def wrap(self, conversation_id: str, key: bytes) -> bytes:
        if self._aead is None:
            return self.RAW + key
        nonce = os.urandom(12)
        return self.WRAPPED + nonce + self._aead.encrypt(nonce, key, b"turnlog-key:" + conversation_id.encode())

    def unwrap(self, conversation_id: str, blob: bytes) -> bytes:
        kind, body = bytes(blob[:2]), bytes(blob[2:])
        if kind == self.RAW:
            return body
        if self._aead is None:
            raise ConfigError(
                f"conversation {conversation_id!r}: its data key is wrapped by a master key; set {MASTER_KEY_ENV}"
            )
        try:
            return self._aead.decrypt(body[:12], body[12:], b"turnlog-key:" + conversation_id.encode())
        except InvalidTag:
            raise ConfigError(
                f"conversation {conversation_id!r}: its data key does not unwrap under this master key "
                f"({MASTER_KEY_ENV} is not the key it was wrapped with)"
            ) from None


class _Entry(NamedTuple):
    aead: AESGCM | None  # None: erased
    checked: float
    #: The key for the rows' synthetic nonces (``_rows``), derived from the data key.
    siv: bytes | None


#: A conversation's key as the cache answers: an AEAD, ``ERASED_KEY`` (destroyed) or None (no key).
ERASED_KEY = "erased"


class KeyCache:
    """The keys a process uses, in memory: at most ``size`` conversations (least recently used
    dropped first), each re-read from the provider once it is ``ttl`` seconds old. A key this
    process destroys is dropped at once; one another server destroyed stops decrypting here at
    the next re-read, within ``ttl`` (``0``: re-read at every read, one query per read)."""

    def __init__(
        self,
        provider: KeyProvider,
        *,
        size: int = 10_000,
        ttl: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if size < 1:
            raise ConfigError(f"the key cache needs room for at least one key, not {size}")
        if ttl < 0:
            raise ConfigError(f"the key cache's ttl must be >= 0 seconds, not {ttl}")
        self.provider = provider
        self.size = size
        self.ttl = ttl
        self.clock = clock
        self._entries: OrderedDict[str, _Entry] = OrderedDict()

    def _keep(self, conversation_id: str, record: KeyRecord) -> AESGCM | None:
        aead = AESGCM(record.key) if record.key is not None else None
        siv = hmac.digest(record.key, b"turnlog-row-nonce", "sha256") if record.key is not None else None
        self._entries[conversation_id] = _Entry(aead, self.clock(), siv)
        self._entries.move_to_end(conversation_id)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)
        return aead

    async def create(self, conversation_id: str, at: str) -> AESGCM | str:
        record = await self.provider.create(conversation_id, at)
        aead = self._keep(conversation_id, record)
        return aead if aead is not None else ERASED_KEY

    async def get(self, conversation_id: str) -> AESGCM | str | None:
        """The conversation's AEAD, ``ERASED_KEY``, or None (no key: written in clear)."""
        entry = self._entries.get(conversation_id)
        if entry is not None and self.clock() - entry.checked < self.ttl:
            self._entries.move_to_end(conversation_id)
            return entry.aead if entry.aead is not None else ERASED_KEY
        record = await self.provider.get(conversation_id)
        if record is None:
            self._entries.pop(conversation_id, None)
            return None
        aead = self._keep(conversation_id, record)
        return aead if aead is not None else ERASED_KEY

    def siv(self, conversation_id: str) -> bytes | None:
        """The rows' nonce key of a conversation whose key ``get`` just answered (None: no key)."""
        entry = self._entries.get(conversation_id)
        return entry.siv if entry is not None else None

    async def destroy(self, conversation_ids: Iterable[str], at: str) -> None:
        ids = list(conversation_ids)
        for cid in ids:
            self._entries.pop(cid, None)
        await self.provider.destroy(ids, at)
        for cid in ids:
            self._entries.pop(cid, None)
