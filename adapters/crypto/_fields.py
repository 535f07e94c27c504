"""What of an event is content (encrypted at rest, forgotten on erasure) and what is metadata
(kept in clear: times, token counts, tool names, statuses, who did what).

Every field of every event type is named in exactly one of the two tables, so a new event type
or field cannot slip into the log in clear unnoticed: ``tests/erasure/test_fields.py`` fails on
a field that is in neither. The tables are keyed by the event's type tag, so event types other
modules add are classified here without importing them.

A content value is stored as ``enc:1:`` + base64url(nonce || AES-GCM ciphertext and tag), with
associated data binding it to its conversation, its event type and its field: a ciphertext copied
into another conversation or field does not decrypt. ``None`` and ``""`` are stored as they are
(their emptiness is all they show). After erasure a content value reads as ``ERASED``.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import os
import weakref
from collections.abc import Callable
from typing import Any

import msgspec
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from turnlog.engine import ERASED_TEXT, Event, IntegrityError, ReasoningDelta, TextDelta, ToolCall

#: The prefix of every encrypted value (format version 1).
PREFIX = "enc:1:"
#: What a content field reads as once its conversation's key is destroyed: this one object, never
#: a copy (the projections tell an erased run from a model's own "[erased]" by identity).
ERASED = ERASED_TEXT

#: event type -> its content fields (``calls``: each call's ``arguments``; its id and name stay).
CONTENT: dict[str, tuple[str, ...]] = {
    "conversation_created": ("system_prompt", "title"),
    "turn_started": ("user_message", "system_prompt"),
    "reasoning_delta": ("text",),
    "text_delta": ("text",),
    "tool_calls_requested": ("calls",),
    "tool_call_started": ("arguments",),
    "tool_result_recorded": ("content",),
    "turn_failed": ("message",),
    "cancel_requested": ("reason",),
    "approval_requested": ("arguments",),
    "approval_decided": ("reason",),
}

#: event type -> its metadata fields, kept in clear (what an audit reads after erasure).
#: ``request_sha256`` stays: it cannot be reversed, but it confirms a guess of a whole request
#: body (docs/architecture.md, "Erasure"). ``conversation_erased.reason`` stays by design.
METADATA: dict[str, tuple[str, ...]] = {
    "conversation_created": (
        "provider",
        "model",
        "temperature",
        "max_tokens",
        "thinking",
        "tenant",
        "subject",
        "parent",
    ),
    "turn_started": (
        "user_message_id",
        "assistant_message_id",
        "provider",
        "model",
        "temperature",
        "max_tokens",
        "thinking",
        "tools",
        "max_iterations",
        "permission_level",
        "tenant",
        "subject",
        "owner",
        "history",
        "history_dropped",
    ),
    "iteration_started": ("iteration", "request_sha256", "model"),
    "reasoning_delta": ("iteration",),
    "text_delta": ("iteration",),
    "tool_calls_requested": ("iteration", "finish_reason"),
    "usage_recorded": ("iteration", "prompt_tokens", "completion_tokens", "total_tokens", "raw"),
    "tool_call_started": ("iteration", "call_id", "name"),
    "tool_result_recorded": ("iteration", "call_id", "name", "success", "duration_ms"),
    "turn_finalized": ("message_id", "token_count", "usage", "finish_reason"),
    "turn_failed": ("reason", "iteration"),
    "cancel_requested": ("tenant", "subject"),
    "approval_requested": ("iteration", "call_id", "name"),
    "approval_decided": ("iteration", "call_id", "decision", "tenant", "subject"),
    "turn_resumed": ("cause", "owner", "tenant", "subject"),
    "conversation_erased": ("tenant", "subject", "reason"),
}

_b64d = base64.urlsafe_b64decode
Nonces = Callable[[], bytes]


class _RandomNonces:
    """Random 96-bit nonces from a buffer of ``os.urandom`` (one system call per 341 nonces, not
    one per nonce: ~2 µs an event less). A forked child drops the buffer it inherited
    (``os.register_at_fork``), so it never reuses its parent's bytes; asking ``os.getpid`` on every
    nonce instead cost a tenth of the encryption."""

    __slots__ = ("__weakref__", "_at", "_buf")

    def __init__(self) -> None:
        self._buf, self._at = b"", 0
        # A weak reference: the hook cannot be unregistered, and must not keep this alive.
        ref = weakref.ref(self)

        def reset_in_child() -> None:
            nonces = ref()
            if nonces is not None:
                nonces.reset()

        if hasattr(os, "register_at_fork"):  # POSIX; elsewhere there is no fork to survive
            os.register_at_fork(after_in_child=reset_in_child)

    def reset(self) -> None:
        self._buf, self._at = b"", 0

    def __call__(self) -> bytes:
        at = self._at
        if at + 12 > len(self._buf):
            self._buf, at = os.urandom(4092), 0
        self._at = at + 12
        return self._buf[at : at + 12]


#: A fresh random 96-bit nonce per call: random, so two servers (or two processes) sharing a key
#: never coordinate a counter. 2^32 encryptions under one key keep the collision risk below 2^-32
#: (NIST SP 800-38D); a conversation is bounded far below that (``max_conversation_events``).
random_nonce: Callable[[], bytes] = _RandomNonces()


def synthetic_nonce(siv_key: bytes, aad: bytes, text: str) -> bytes:
    """A nonce that is a PRF of the value and its associated data (SIV): equal only for equal
    inputs, so it never repeats for two different values under one key."""
    return hmac.digest(siv_key, aad + b"\x00" + text.encode(), "sha256")[:12]


#: ``base64.urlsafe_b64encode``'s own steps, without its two Python calls (one value per delta).
_to_b64 = binascii.b2a_base64
_URLSAFE = bytes.maketrans(b"+/", b"-_")


def seal_text(aead: AESGCM, aad: bytes, text: str, nonce: bytes) -> str:
    if type(text) is not str and not isinstance(text, str):
        raise TypeError(f"a content field must be a string, not {type(text).__name__}")
    sealed = _to_b64(nonce + aead.encrypt(nonce, text.encode(), aad), newline=False)
    return PREFIX + sealed.translate(_URLSAFE).decode()


def open_text(aead: AESGCM | None, aad: bytes, value: str, where: tuple[str, int]) -> str:
    """The plaintext of a stored value: as is when it is not encrypted (a conversation written
    before encryption), ``ERASED`` without a key. A value that does not decrypt under the
    conversation's key was changed: ``IntegrityError`` (the hash chain says so too)."""
    if not value.startswith(PREFIX):
        return value
    if aead is None:
        return ERASED
    try:
        raw = _b64d(value[len(PREFIX) :])
        return aead.decrypt(raw[:12], raw[12:], aad).decode()
    except (InvalidTag, ValueError) as exc:
        raise IntegrityError(
            where[0], where[1], f"an encrypted field does not decrypt ({type(exc).__name__})"
        ) from None


def _aad(stream_id: str, tag: str, field: str) -> bytes:
    return f"turnlog:{stream_id}:{tag}:{field}".encode()


class FieldCipher:
    """Encrypts and decrypts the content fields of one conversation's events under its key
    (``None``: the key is destroyed, every content field reads ``ERASED``)."""

    __slots__ = ("_aads", "_deltas", "aead", "nonce", "stream_id")

    def __init__(self, stream_id: str, aead: AESGCM | None, nonce: Nonces = random_nonce) -> None:
        self.stream_id = stream_id
        self.aead = aead
        self.nonce = nonce
        self._aads: dict[tuple[str, str], bytes] = {}
        # The two delta types (most events of a turn, one field each) -> their text's associated
        # data: ``seal`` takes them without the generic walk.
        self._deltas = {cls: self.aad(cls.__struct_config__.tag, "text") for cls in (TextDelta, ReasoningDelta)}

    def aad(self, tag: str, field: str) -> bytes:
        key = (tag, field)
        aad = self._aads.get(key)
        if aad is None:
            aad = self._aads[key] = _aad(self.stream_id, tag, field)
        return aad

    def seal(self, event: Event) -> Event:
        """The event with its content fields encrypted (the same object when it has none)."""
        cls = type(event)
        aad = self._deltas.get(cls)
        if aad is not None:
            text = event.text  # type: ignore[attr-defined]
            if not text or self.aead is None:
                return event
            return cls(event.iteration, seal_text(self.aead, aad, text, self.nonce()))  # type: ignore[attr-defined,call-arg]
        tag: str = event.__struct_config__.tag  # type: ignore[assignment]
        fields = CONTENT.get(tag)
        aead = self.aead
        if not fields or aead is None:
            return event
        changes: dict[str, Any] = {}
        for name in fields:
            value = getattr(event, name)
            if name == "calls":
                aad = self.aad(tag, "calls.arguments")
                changes[name] = [
                    ToolCall(c.id, c.name, seal_text(aead, aad, c.arguments, self.nonce()) if c.arguments else "")
                    for c in value
                ]
            elif value:
                changes[name] = seal_text(aead, self.aad(tag, name), value, self.nonce())
        return msgspec.structs.replace(event, **changes) if changes else event

    def open(self, event: Event, version: int) -> Event:
        """The event with its content fields decrypted (``ERASED`` without a key)."""
        tag: str = event.__struct_config__.tag  # type: ignore[assignment]
        fields = CONTENT.get(tag)
        if not fields:
            return event
        where = (self.stream_id, version)
        changes: dict[str, Any] = {}
        for name in fields:
            value = getattr(event, name)
            if name == "calls":
                aad = self.aad(tag, "calls.arguments")
                changes[name] = [ToolCall(c.id, c.name, open_text(self.aead, aad, c.arguments, where)) for c in value]
            elif value:
                changes[name] = open_text(self.aead, self.aad(tag, name), value, where)
        return msgspec.structs.replace(event, **changes) if changes else event
