"""turnlog.adapters.crypto: content encrypted at rest, and erasure by crypto-shredding (issue 15).

    keys = KeyCache(SqlKeyProvider(engine))            # or MemoryKeyProvider(), or your KMS
    log = EncryptedLog(SqliteEventLog(...), keys)      # open_store does this by default
    messages = EncryptedMessages(SqlMessageStore(...), keys)
    await erase(log, messages, ["conv-1"], reason="GDPR art. 17 request #42")

Each conversation's content (user text, model text and reasoning, tool arguments and results,
system prompt, title) is encrypted with its own AES-256-GCM data key before the store seals it,
so the hash chain covers the ciphertext; erasing destroys the key and records
``ConversationErased``. The chain, checkpoints and exports verify before and after.
"""

import inspect as _inspect

from ._erase import Erasure, cutoff, erase, erase_older_than, erase_subject, subject_conversations
from ._fields import CONTENT, ERASED, METADATA, PREFIX, FieldCipher, random_nonce
from ._keys import MASTER_KEY_ENV, KeyCache, KeyProvider, KeyRecord, MasterKey, MemoryKeyProvider
from ._log import EncryptedLog
from ._rows import ERASED_CONTENT, EncryptedIndex, EncryptedMessages

__all__ = [
    "CONTENT",
    "ERASED",
    "ERASED_CONTENT",
    "MASTER_KEY_ENV",
    "METADATA",
    "PREFIX",
    "EncryptedIndex",
    "EncryptedLog",
    "EncryptedMessages",
    "Erasure",
    "FieldCipher",
    "KeyCache",
    "KeyProvider",
    "KeyRecord",
    "MasterKey",
    "MemoryKeyProvider",
    "cutoff",
    "erase",
    "erase_older_than",
    "erase_subject",
    "random_nonce",
    "subject_conversations",
]

# Exported classes and functions report this package as their ``__module__`` (as httpx's do).
for _obj in map(globals().get, __all__):
    if isinstance(_obj, type) or _inspect.isfunction(_obj):
        _obj.__module__ = __name__
