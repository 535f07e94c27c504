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
