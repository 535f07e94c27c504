"""turnlog.adapters.stores: where the log and the message rows are kept.

SQLite (the embedded default) and PostgreSQL (several app servers over one database) event logs,
the SQL message rows, the schema and its Alembic migrations, and ``open_store``: one factory for
a ``--db`` value, used by the CLI, the server, the tests and users.
"""

from ._factory import Store, open_store
from ._migrate import HEAD_REVISION, current_revision, known_revisions, upgrade, upgrade_command
from ._postgres import PostgresEventLog
from ._rows import SqlMessageStore
from ._sqlite import SqliteEventLog
from ._urls import PgTarget, is_pg_url, parse_pg_url, redact

__all__ = [
    "HEAD_REVISION",
    "PgTarget",
    "PostgresEventLog",
    "SqlMessageStore",
    "SqliteEventLog",
    "Store",
    "current_revision",
    "is_pg_url",
    "known_revisions",
    "open_store",
    "parse_pg_url",
    "redact",
    "upgrade",
    "upgrade_command",
]


def _claim_exports(namespace: dict[str, object], names: list[str], module: str) -> None:
    """Exported classes and functions report this package as their ``__module__`` (as httpx's
    do), so reprs, tracebacks and docs name the public path, never a private module. msgspec
    resolves a Struct's string annotations in its module's namespace on first use, so each Struct
    is resolved (and cached) before it is renamed."""
    import inspect

    import msgspec

    for name in names:
        obj = namespace[name]
        if inspect.isclass(obj) and issubclass(obj, msgspec.Struct):
            msgspec.json.Decoder(obj)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            obj.__module__ = module


_claim_exports(globals(), __all__, __name__)
