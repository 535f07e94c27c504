"""turnlog.adapters.stores: where the log and the message rows are kept.

SQLite (the embedded default) and PostgreSQL (several app servers over one database) event logs,
the SQL message rows, conversation summaries and usage ledger, the schema and its Alembic migrations, and
``open_store``: one factory for a ``--db`` value, used by the CLI, the server, the tests and users.
``presence_of(log)``: which servers are running over a log (crash recovery asks it).
"""

import inspect as _inspect

import msgspec as _msgspec

from ._conversations import SqlConversationIndex
from ._factory import Store, open_store, sqlite_target
from ._migrate import HEAD_REVISION, current_revision, known_revisions, upgrade, upgrade_command
from ._postgres import PostgresEventLog
from ._presence import Presence, presence_of
from ._rows import SqlMessageStore
from ._sqlite import SqliteEventLog
from ._urls import PgTarget, is_pg_url, parse_pg_url, redact
from ._usage import SqlUsageLedger

__all__ = [
    "HEAD_REVISION",
    "PgTarget",
    "PostgresEventLog",
    "Presence",
    "SqlConversationIndex",
    "SqlMessageStore",
    "SqlUsageLedger",
    "SqliteEventLog",
    "Store",
    "current_revision",
    "is_pg_url",
    "known_revisions",
    "open_store",
    "parse_pg_url",
    "presence_of",
    "redact",
    "sqlite_target",
    "upgrade",
    "upgrade_command",
]

# Exported classes and functions report this package as their ``__module__`` (as httpx's do), so
# reprs, tracebacks and docs name the public path. msgspec resolves a Struct's string annotations
# in its module's namespace on first use: each Struct is resolved (and cached) before the rename.
for _obj in map(globals().get, __all__):
    if isinstance(_obj, type) and issubclass(_obj, _msgspec.Struct):
        _msgspec.json.Decoder(_obj)
    if isinstance(_obj, type) or _inspect.isfunction(_obj):
        _obj.__module__ = __name__
