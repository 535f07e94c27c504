"""``EncryptedLog``: any ``EventLog`` with the content of its events encrypted at rest.

A decorator of the port, not a change to a store: on append each event's content fields
(``_fields.CONTENT``) are replaced by their ciphertext before the inner store seals them, so the
hash chain, the checkpoints and the exports cover the ciphertext and verify the same before and
after an erasure. What comes back to the caller (the appended envelopes, every read, every
follow) carries the event decrypted, while ``payload`` stays the stored bytes the hash covers.
A conversation whose key is destroyed reads with its content fields as ``ERASED``.

A conversation gets its key with its first event (``expected_version`` 0). One with no key
(written before encryption) is read and appended in clear: old databases stay readable.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Any

import msgspec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from turnlog.engine import PAGE, ConversationErasedError, EventLog, NewEvent, Recorded

from ._fields import FieldCipher, Nonces, random_nonce
from ._keys import ERASED_KEY, KeyCache

_replace = msgspec.structs.replace


class EncryptedLog(EventLog):
    """``inner`` with its events' content encrypted under per-conversation keys from ``keys``.
    ``nonces``: where nonces come from (random; inject a counter for byte-exact tests)."""

    def __init__(self, inner: EventLog, keys: KeyCache, *, nonces: Nonces = random_nonce) -> None:
        super().__init__()
        self.inner = inner
        #: presence_of and other adapters find the store under the decorator here.
        self.wrapped = inner
        self.keys = keys
        self.nonces = nonces
        self._ciphers: dict[str, FieldCipher] = {}
        # stream -> (the sealed batch the inner store handed its followers, the same batch in
        # plaintext): a follower in this process yields the plaintext this process wrote instead
        # of decrypting it again. Kept only for followed streams, dropped with their last follower.
        self._handed: dict[str, tuple[list[Recorded], list[Recorded]]] = {}

    # The inner store's own attributes (its engines, its path, checkpoints' SQL...) stay reachable.
    def __getattr__(self, name: str) -> Any:
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    @property  # type: ignore[override]
    def poll_interval(self) -> float:  # type: ignore[override]
        return self.inner.poll_interval

    @poll_interval.setter
    def poll_interval(self, value: float) -> None:
        self.inner.poll_interval = value

    async def cipher(self, stream_id: str) -> FieldCipher:
        """The cipher for reading a conversation now (its key from the cache, re-read after ttl)."""
        aead = await self.keys.get(stream_id)
        return self._cipher(stream_id, aead if isinstance(aead, AESGCM) else None)

    def _cipher(self, stream_id: str, aead: AESGCM | None) -> FieldCipher:
        # One cipher per conversation and key, kept while the key is the same object (its
        # associated-data bytes are built once): a turn's batches reuse it. Bounded.
        cipher = self._ciphers.get(stream_id)
        if cipher is None or cipher.aead is not aead:
            if len(self._ciphers) >= 1024:
                self._ciphers.clear()
            cipher = self._ciphers[stream_id] = FieldCipher(stream_id, aead, self.nonces)
        return cipher

    # -- writing ------------------------------------------------------------------------------

    async def append(
        self, stream_id: str, events: Sequence[NewEvent], expected_version: int, *, recorded_at: str
    ) -> list[Recorded]:
        if expected_version == 0:
            aead = await self.keys.create(stream_id, recorded_at)
        else:
            aead = await self.keys.get(stream_id)
        if aead == ERASED_KEY:
            # Only an erased conversation has a tombstone; the fold refuses its turns before this.
            raise ConversationErasedError(stream_id)
        if aead is None:
            return await self.inner.append(stream_id, events, expected_version, recorded_at=recorded_at)
        cipher = self._cipher(stream_id, aead)  # type: ignore[arg-type]
        sealed = [NewEvent(cipher.seal(new.event), new.turn_id) for new in events]
        recs = await self.inner.append(stream_id, sealed, expected_version, recorded_at=recorded_at)
        # The caller gets its own events back (plaintext) in the envelopes the store sealed.
        plain = [
            rec if new.event is old.event else _replace(rec, event=old.event)
            for rec, new, old in zip(recs, sealed, events, strict=True)
        ]
        if self.inner.followed(stream_id):
            # The inner store woke its followers with ``recs`` (the same list) and none has run
            # yet (no await since): each meets it in ``follow`` and takes ``plain`` for it.
            self._handed[stream_id] = (recs, plain)
        return plain

    # -- reading ------------------------------------------------------------------------------

    def _open(self, cipher: FieldCipher, page: list[Recorded]) -> list[Recorded]:
        out = []
        for rec in page:
            event = cipher.open(rec.event, rec.version)
            out.append(rec if event is rec.event else _replace(rec, event=event))
        return out

    async def read(self, stream_id: str, after_version: int = 0, limit: int = PAGE) -> list[Recorded]:
        page = await self.inner.read(stream_id, after_version, limit)
        return self._open(await self.cipher(stream_id), page) if page else page

    async def read_all(self, after_position: int = 0, limit: int = PAGE) -> list[Recorded]:
        page = await self.inner.read_all(after_position, limit)
        ciphers: dict[str, FieldCipher] = {}
        out = []
        for rec in page:
            cipher = ciphers.get(rec.stream_id)
            if cipher is None:
                cipher = ciphers[rec.stream_id] = await self.cipher(rec.stream_id)
            event = cipher.open(rec.event, rec.version)
            out.append(rec if event is rec.event else _replace(rec, event=event))
        return out

    async def last(self, stream_id: str) -> Recorded | None:
        rec = await self.inner.last(stream_id)
        if rec is None:
            return None
        return self._open(await self.cipher(stream_id), [rec])[0]

    async def streams(self) -> list[str]:
        return await self.inner.streams()

    async def close(self) -> None:
        await self.inner.close()

    async def iter_pages(self, stream_id: str, after_version: int = 0, **options: Any) -> AsyncIterator[list[Recorded]]:
        # The inner store's pages (read ahead, checked over the stored ciphertext), decrypted; the
        # key is looked up once per page, so a key destroyed mid-read stops decrypting at the next.
        # ``iter_stream`` is the base class's: these pages, flattened.
        async with contextlib.aclosing(self.inner.iter_pages(stream_id, after_version, **options)) as pages:
            async for page in pages:
                yield self._open(await self.cipher(stream_id), page) if page else page

    async def follow(
        self, stream_id: str, after_version: int = 0, *, idle: float | None = None, after_hash: str | None = None
    ) -> AsyncIterator[list[Recorded]]:
        # A page that is the batch this process just appended (handed over with the wake-up,
        # chain-checked by the inner follower over its ciphertext) is yielded as the plaintext
        # the engine sealed: the same events a decryption would give, without decrypting them.
        try:
            async with contextlib.aclosing(
                self.inner.follow(stream_id, after_version, idle=idle, after_hash=after_hash)
            ) as pages:
                async for page in pages:
                    if not page:
                        yield page
                        continue
                    handed = self._handed.get(stream_id)
                    if handed is not None and handed[0] is page:
                        yield handed[1]
                    else:
                        yield self._open(await self.cipher(stream_id), page)
        finally:
            if not self.inner.followed(stream_id):
                self._handed.pop(stream_id, None)

    async def chain_after(self, stream_id: str, version: int) -> Any:
        return await self.inner.chain_after(stream_id, version)

    # -- checkpoints (CheckpointLog), when the inner store keeps them ------------------------

    async def append_checkpoint(self, checkpoint: Any) -> None:
        await self.inner.append_checkpoint(checkpoint)  # type: ignore[attr-defined]

    async def checkpoints(self) -> list[Any]:
        return await self.inner.checkpoints()  # type: ignore[attr-defined]

    async def last_checkpoint(self) -> Any:
        return await self.inner.last_checkpoint()  # type: ignore[attr-defined]
