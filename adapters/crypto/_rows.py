"""The message rows and conversation summaries encrypted at rest, as decorators of their ports.

A row's ``content`` (the JSON of its words, steps, tool calls and results) is stored as one
encrypted value under the conversation's key; ``token_count``, ``usage``, ``status``, times and
ids stay in clear. A summary's ``title`` likewise. Once the key is destroyed the rows are
rebuilt from the log (``erase`` does it), where every content field reads ``ERASED``: the rows
keep their structure, tool names, token counts and statuses, in clear, with no content left to
hide. Rows (and titles) take a synthetic nonce, HMAC-SHA256 of the value and its associated
data under a key derived from the data key (the SIV construction): a row saved twice with the
same content is stored as the same bytes, so rows rebuilt from the log equal the rows saved live
byte for byte, and two different values never share a nonce. Events keep random nonces: the
same delta repeated would otherwise show as the same ciphertext. A row read in the moment between the key's destruction and that rebuild shows
``ERASED_CONTENT``.
"""

from __future__ import annotations

import base64
import hmac
import json
from collections.abc import Sequence
from typing import Any

import msgspec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from turnlog.projections import ConversationIndex, ConversationSummary, MessageRow, MessageStore

from ._fields import ERASED, PREFIX, open_text, seal_text, synthetic_nonce
from ._keys import KeyCache

#: A row's content whose key is gone and which was not rebuilt yet.
ERASED_CONTENT = json.dumps({"text": ERASED, "erased": True})

_replace = msgspec.structs.replace


def _aead(found: object) -> AESGCM | None:
    return found if isinstance(found, AESGCM) else None


def seal_row_content(aead: AESGCM, siv: bytes, aad: bytes, content: str) -> str:
    """``seal_text(aead, aad, content, synthetic_nonce(siv, aad, content))``, the same string,
    for a row's content, which may hold a whole long answer (twice): the plaintext is encoded
    once (for the nonce and the cipher both) and each copy goes as soon as the next is made, so
    sealing holds about two copies of the row at a time, not five."""
    data = content.encode()
    mac = hmac.new(siv, aad + b"\x00", "sha256")
    mac.update(data)
    nonce = mac.digest()[:12]
    raw = aead.encrypt(nonce, data, aad)
    del data
    raw = nonce + raw
    text = base64.urlsafe_b64encode(raw).decode()
    del raw
    return PREFIX + text


class EncryptedIndex(ConversationIndex):
    """A ``ConversationIndex`` whose titles are stored encrypted."""

    def __init__(self, inner: ConversationIndex, keys: KeyCache) -> None:
        self.inner = inner
        self.keys = keys

    def __getattr__(self, name: str) -> Any:
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    async def seal(self, summary: ConversationSummary) -> ConversationSummary:
        if not summary.title:
            return summary
        aead = _aead(await self.keys.get(summary.id))
        siv = self.keys.siv(summary.id)
        if aead is None or siv is None:
            return summary
        aad = f"turnlog-title:{summary.id}".encode()
        return _replace(summary, title=seal_text(aead, aad, summary.title, synthetic_nonce(siv, aad, summary.title)))

    async def open(self, summary: ConversationSummary | None) -> ConversationSummary | None:
        if summary is None or not summary.title:
            return summary
        aead = _aead(await self.keys.get(summary.id))
        aad = f"turnlog-title:{summary.id}".encode()
        title = open_text(aead, aad, summary.title, (summary.id, summary.version))
        return summary if title is summary.title else _replace(summary, title=title)

    async def save(self, summary: ConversationSummary) -> None:
        await self.inner.save(await self.seal(summary))

    async def get(self, conversation_id: str) -> ConversationSummary | None:
        return await self.open(await self.inner.get(conversation_id))

    async def page(
        self, tenant: str, subjects: Sequence[str] | None, *, limit: int, before: tuple[str, str] | None = None
    ) -> list[ConversationSummary]:
        found = await self.inner.page(tenant, subjects, limit=limit, before=before)
        return [s for s in [await self.open(s) for s in found] if s is not None]

    async def empty(self) -> bool:
        return await self.inner.empty()

    async def clear(self) -> None:
        await self.inner.clear()


class EncryptedMessages(MessageStore):
    """A ``MessageStore`` whose rows' content (and summaries' titles) are stored encrypted."""

    def __init__(self, inner: MessageStore, keys: KeyCache) -> None:
        self.inner = inner
        self.keys = keys
        index = inner.conversations
        self.conversations = EncryptedIndex(index, keys) if index is not None else None
        # The usage ledger holds no content (tokens, models, who, when): the inner one, as is.
        self.usage = getattr(inner, "usage", None)

    def __getattr__(self, name: str) -> Any:
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    async def _seal(self, conversation_id: str, rows: Sequence[MessageRow]) -> list[MessageRow]:
        if not rows:
            return []
        aead = _aead(await self.keys.get(conversation_id))
        siv = self.keys.siv(conversation_id)
        if aead is None or siv is None:  # no key (written in clear) or erased (no content left then)
            return list(rows)
        out = []
        for r in rows:
            aad = f"turnlog-row:{conversation_id}:{r.id}".encode()
            out.append(_replace(r, content=seal_row_content(aead, siv, aad, r.content)))
        return out

    async def _open(self, conversation_id: str, rows: list[MessageRow]) -> list[MessageRow]:
        if not rows:
            return rows
        aead = _aead(await self.keys.get(conversation_id))
        out = []
        for r in rows:
            aad = f"turnlog-row:{conversation_id}:{r.id}".encode()
            content = open_text(aead, aad, r.content, (conversation_id, r.seq))
            if content is r.content:
                out.append(r)
            else:
                out.append(_replace(r, content=ERASED_CONTENT if content == ERASED else content))
        return out

    async def save(self, conversation_id: str, rows: Sequence[MessageRow], version: int) -> None:
        await self.inner.save(conversation_id, await self._seal(conversation_id, rows), version)

    async def save_changes(
        self, conversation_id: str, rows: Sequence[MessageRow], summary: ConversationSummary | None, version: int
    ) -> None:
        sealed = await self._seal(conversation_id, rows)
        if summary is not None and isinstance(self.conversations, EncryptedIndex):
            summary = await self.conversations.seal(summary)
        await self.inner.save_changes(conversation_id, sealed, summary, version)

    async def rows(self, conversation_id: str) -> list[MessageRow]:
        return await self._open(conversation_id, await self.inner.rows(conversation_id))

    async def rows_page(self, conversation_id: str, after_seq: int, limit: int) -> list[MessageRow]:
        return await self._open(conversation_id, await self.inner.rows_page(conversation_id, after_seq, limit))

    async def applied_version(self, conversation_id: str) -> int:
        return await self.inner.applied_version(conversation_id)

    async def clear(self) -> None:
        await self.inner.clear()

    async def live_conversations(self) -> list[str]:
        return await self.inner.live_conversations()
