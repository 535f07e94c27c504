"""The two shortcuts of the encryption's hot path keep its guarantees: a forked process never
reuses its parent's buffered nonces, and the delta fast path of ``FieldCipher.seal`` writes what
the generic walk writes."""

from __future__ import annotations

import base64
import os
import warnings

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from turnlog.adapters.crypto import CONTENT, PREFIX, FieldCipher
from turnlog.adapters.crypto._fields import _RandomNonces, seal_text
from turnlog.engine import ReasoningDelta, TextDelta


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_draws_nonces_of_its_own() -> None:
    nonces = _RandomNonces()
    nonces()  # the buffer is filled; the child inherits it with the next 340 nonces in it
    read, write = os.pipe()
    with warnings.catch_warnings():
        # Python 3.12+ warns when a process with threads forks; this child only writes 12 bytes.
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # the child: its next nonce, to the parent
        try:
            os.write(write, nonces())
        finally:
            os._exit(0)
    os.close(write)
    child = os.read(read, 12)
    os.close(read)
    os.waitpid(pid, 0)
    parent = nonces()
    assert len(child) == len(parent) == 12
    assert child != parent, "the child reused a nonce its parent also uses (same key: GCM is broken)"


def test_nonces_from_one_process_do_not_repeat() -> None:
    nonces = _RandomNonces()
    drawn = [nonces() for _ in range(2_000)]  # several refills of the buffer
    assert len(set(drawn)) == len(drawn)


@pytest.mark.parametrize("cls", [TextDelta, ReasoningDelta])
def test_the_delta_fast_path_seals_as_the_generic_walk(cls: type) -> None:
    # The fast path rebuilds the event from (iteration, text): it may do so only while that is
    # every field and text is its only content field.
    assert cls.__struct_fields__ == ("iteration", "text")
    tag = cls.__struct_config__.tag
    assert CONTENT[tag] == ("text",)
    aead = AESGCM(bytes(range(32)))
    nonce = bytes(12)
    cipher = FieldCipher("conv_1", aead, lambda: nonce)
    sealed = cipher.seal(cls(3, "héllo"))
    assert type(sealed) is cls
    assert sealed == cls(3, seal_text(aead, f"turnlog:conv_1:{tag}:text".encode(), "héllo", nonce))
    assert cipher.open(sealed, 7) == cls(3, "héllo")
    assert cipher.seal(cls(3, "")) == cls(3, "")  # emptiness is stored as it is


def test_seal_text_writes_the_documented_format() -> None:
    # enc:1: + base64url(nonce || ciphertext and tag), byte for byte as base64.urlsafe_b64encode
    # writes it, over values whose standard base64 has '+' and '/' (the two it changes).
    aead = AESGCM(bytes(range(32)))
    changed = 0
    for i in range(200):
        nonce, text = i.to_bytes(12, "big"), "x" * i
        raw = nonce + aead.encrypt(nonce, text.encode(), b"aad")
        assert seal_text(aead, b"aad", text, nonce) == PREFIX + base64.urlsafe_b64encode(raw).decode()
        changed += b"+" in base64.b64encode(raw) or b"/" in base64.b64encode(raw)
    assert changed > 100
