"""``turnlog db``: the schema of a log's database.

    turnlog db upgrade [--db PATH|URL]   create the tables, or bring them to this build's revision
    turnlog db current [--db PATH|URL]   print the database's revision and whether it is current

``upgrade`` is the only thing that creates or alters a PostgreSQL schema (app servers never do it
on their own); on an embedded SQLite file ``turnlog demo`` and the library create an empty one.
``current`` exits 3 when the schema is not this build's, so deploy scripts can gate on it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from turnlog.adapters.stores import (
    HEAD_REVISION,
    current_revision,
    is_pg_url,
    known_revisions,
    parse_pg_url,
    sqlite_target,
    upgrade,
    upgrade_command,
)
from turnlog.engine import StoreUnavailable

from ._common import Subparsers, add_command, out


def _where(db: str) -> str:
    return parse_pg_url(db).where if is_pg_url(db) else db


def _target(db: str) -> str:
    """What the migrations open: the URL, or the SQLite file without its ``?synchronous=``."""
    return db if is_pg_url(db) else str(sqlite_target(db)[0])


def _require_sqlite_file(db: str) -> None:
    # Opening a SQLite path creates the file: a typo must not leave an empty database behind.
    if not is_pg_url(db) and not Path(db).exists():
        raise StoreUnavailable(f"no database at {db}: run `{upgrade_command(db)}` to create one")


async def cmd_upgrade(args: argparse.Namespace) -> int:
    db = _target(args.db)
    before, after = await upgrade(db)
    where = _where(db)
    if before == after:
        out(f"{where}: already at revision {after} (current)\n")
    else:
        out(f"{where}: upgraded from revision {before or 'none'} to {after}\n")
    return 0


async def cmd_current(args: argparse.Namespace) -> int:
    db = _target(args.db)
    _require_sqlite_file(db)
    rev = await current_revision(db)
    where = _where(db)
    if rev == HEAD_REVISION:
        out(f"{where}: revision {rev} (current)\n")
        return 0
    if rev is None:
        out(f"{where}: no revision (empty, or made before migrations): run `{upgrade_command(where)}`\n")
    elif rev not in known_revisions():
        out(f"{where}: revision {rev}, newer than this turnlog knows ({HEAD_REVISION}): upgrade turnlog\n")
    else:
        out(f"{where}: revision {rev}, this turnlog needs {HEAD_REVISION}: run `{upgrade_command(where)}`\n")
    # Non-zero so deploy scripts can gate on "is the schema current?".
    return 3


def register(subparsers: Subparsers) -> None:
    db = subparsers.add_parser("db", help="create or upgrade the database schema (Alembic migrations)")
    actions = db.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    add_command(actions, "upgrade", cmd_upgrade, "create the tables, or migrate them to this turnlog's revision")
    add_command(actions, "current", cmd_current, "print the schema revision; exit 3 if it is not this turnlog's")
