"""``turnlog db``: the schema of a log's database.

    turnlog db upgrade [--db PATH|URL]   create the tables, or bring them to this build's revision
    turnlog db current [--db PATH|URL]   print the database's revision and whether it is current

``upgrade`` is the only thing that creates or alters a PostgreSQL schema (app servers never do it
on their own); on an embedded SQLite file ``turnlog demo`` and the library create an empty one.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from turnlog.adapters.stores import (
    HEAD_REVISION,
    current_revision,
    is_pg_url,
    known_revisions,
    parse_pg_url,
    upgrade,
    upgrade_command,
)
from turnlog.engine import StoreUnavailable

DEFAULT_DB = "turnlog.db"


def _where(db: str) -> str:
    return parse_pg_url(db).where if is_pg_url(db) else db


def _require_sqlite_file(db: str) -> None:
    # Opening a SQLite path creates the file: a typo must not leave an empty database behind.
    if not is_pg_url(db) and not Path(db).exists():
        raise StoreUnavailable(f"no database at {db}: run `{upgrade_command(db)}` to create one")


async def cmd_upgrade(args: argparse.Namespace) -> int:
    before, after = await upgrade(args.db)
    where = _where(args.db)
    if before == after:
        print(f"{where}: already at revision {after} (current)")
    else:
        print(f"{where}: upgraded from revision {before or 'none'} to {after}")
    return 0


async def cmd_current(args: argparse.Namespace) -> int:
    _require_sqlite_file(args.db)
    rev = await current_revision(args.db)
    where = _where(args.db)
    if rev == HEAD_REVISION:
        print(f"{where}: revision {rev} (current)")
        return 0
    if rev is None:
        print(f"{where}: no revision (empty, or made before migrations): run `{upgrade_command(where)}`")
    elif rev not in known_revisions():
        print(f"{where}: revision {rev}, newer than this turnlog knows ({HEAD_REVISION}): upgrade turnlog")
    else:
        print(f"{where}: revision {rev}, this turnlog needs {HEAD_REVISION}: run `{upgrade_command(where)}`")
    # Non-zero so deploy scripts can gate on "is the schema current?".
    return 3


def register(subparsers: Any) -> None:
    db = subparsers.add_parser("db", help="create or upgrade the database schema (Alembic migrations)")
    sub = db.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    for name, fn, help_ in (
        ("upgrade", cmd_upgrade, "create the tables, or migrate them to this turnlog's revision"),
        ("current", cmd_current, "print the schema revision; exit 3 if it is not this turnlog's"),
    ):
        p = sub.add_parser(name, help=help_)
        p.add_argument("--db", default=DEFAULT_DB, help=f"SQLite file or postgresql:// URL (default {DEFAULT_DB})")
        p.set_defaults(handler=fn)
