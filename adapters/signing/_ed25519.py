"""Ed25519 keys for checkpoints, through ``cryptography``: the engine's ``Signer`` and
``SignatureVerifier`` for real keys, and the key files ``turnlog keygen`` writes.

- ``KEYFILE``: the private key, PEM (PKCS#8, unencrypted), created with mode 0600 and never
  overwritten. It stays with the operator: only signatures reach the log.
- ``KEYFILE.pub``: the public key, PEM (SubjectPublicKeyInfo): what an auditor is given.
- A key's id is the sha256 (hex) of its raw 32-byte public key; checkpoints name their signer by it.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from turnlog.engine import ConfigError


def key_id(public_raw: bytes) -> str:
    """The id of a public key: sha256 (hex) of its raw 32 bytes."""
    return hashlib.sha256(public_raw).hexdigest()


def _raw(public: Ed25519PublicKey) -> bytes:
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


class Ed25519Verifier:
    """Checks signatures under one public key (``turnlog.engine.SignatureVerifier``)."""

    def __init__(self, public: Ed25519PublicKey) -> None:
        self._public = public
        self.key_id = key_id(_raw(public))

    def verify(self, message: bytes, signature: bytes) -> bool:
        try:
            self._public.verify(signature, message)
        except InvalidSignature:
            return False
        return True

    def public_pem(self) -> bytes:
        return self._public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


class Ed25519Signer:
    """Signs with one private key (``turnlog.engine.Signer``)."""

    def __init__(self, private: Ed25519PrivateKey) -> None:
        self._private = private
        self.verifier = Ed25519Verifier(private.public_key())
        self.key_id = self.verifier.key_id

    @classmethod
    def generate(cls) -> Ed25519Signer:
        return cls(Ed25519PrivateKey.generate())

    def sign(self, message: bytes) -> bytes:
        return self._private.sign(message)

    def private_pem(self) -> bytes:
        return self._private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )


def _create(path: Path, data: bytes, mode: int) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError:
        raise ConfigError(f"{path} exists: a key file is never overwritten; remove it or pick another name") from None
    try:
        os.fchmod(fd, mode)  # exactly `mode`, whatever the umask
        os.write(fd, data)
    finally:
        os.close(fd)


def write_keypair(path: str | Path) -> Ed25519Signer:
    """A new key pair: ``path`` (private, PEM PKCS#8, mode 0600) and ``path.pub`` (public PEM).
    Neither file may exist yet."""
    path = Path(path)
    public_path = Path(f"{path}.pub")
    if public_path.exists():
        raise ConfigError(f"{public_path} exists: a key file is never overwritten; remove it or pick another name")
    signer = Ed25519Signer.generate()
    _create(path, signer.private_pem(), 0o600)
    _create(public_path, signer.verifier.public_pem(), 0o644)
    return signer


def load_signer(path: str | Path) -> Ed25519Signer:
    """The private key ``turnlog keygen`` wrote."""
    try:
        key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{path} is not an unencrypted PEM private key: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(f"{path} holds a {type(key).__name__}, not an Ed25519 private key")
    return Ed25519Signer(key)


def load_verifier(path: str | Path) -> Ed25519Verifier:
    """A public key file (``KEYFILE.pub``)."""
    try:
        key = serialization.load_pem_public_key(Path(path).read_bytes())
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{path} is not a PEM public key: {exc}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise ConfigError(f"{path} holds a {type(key).__name__}, not an Ed25519 public key")
    return Ed25519Verifier(key)
