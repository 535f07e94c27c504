"""turnlog.adapters.signing: Ed25519 keys that sign and check checkpoints (``cryptography``).

    signer = write_keypair("turnlog.key")          # turnlog.key (0600) and turnlog.key.pub
    checkpoint = await create_checkpoint(log, load_signer("turnlog.key"))
    report = await verify_log(log, keys=[load_verifier("turnlog.key.pub")])

The engine signs and checks through its ``Signer`` and ``SignatureVerifier`` protocols; these are
the implementations with real keys.
"""

import inspect as _inspect

from ._ed25519 import Ed25519Signer, Ed25519Verifier, key_id, load_signer, load_verifier, write_keypair

__all__ = ["Ed25519Signer", "Ed25519Verifier", "key_id", "load_signer", "load_verifier", "write_keypair"]

# Exported classes and functions report this package as their ``__module__`` (as httpx's do), so
# reprs, tracebacks and docs name the public path, never a private module.
for _obj in map(globals().get, __all__):
    if isinstance(_obj, type) or _inspect.isfunction(_obj):
        _obj.__module__ = __name__
