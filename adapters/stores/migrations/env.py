"""Alembic environment for turnlog's own tables.

turnlog runs its migrations programmatically (engine/migrate.py) on a connection it opened and
locked; there is no alembic.ini and no offline (SQL script) mode. The connection's search_path
(PostgreSQL ``?schema=``) decides where the tables and the version table live.
"""

from __future__ import annotations

from alembic import context
from turnlog.adapters.stores._migrate import VERSION_TABLE
from turnlog.adapters.stores._schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError(
        "turnlog migrations run through `turnlog db upgrade` (turnlog.adapters.stores._migrate), not the alembic CLI"
    )

context.configure(connection=connection, target_metadata=metadata, version_table=VERSION_TABLE)
with context.begin_transaction():
    context.run_migrations()
