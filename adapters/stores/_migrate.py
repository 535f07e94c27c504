"""Schema revisions: Alembic migrations run from code, for SQLite and PostgreSQL alike.

- ``upgrade(db)`` brings a database to ``HEAD_REVISION`` (what ``turnlog db upgrade`` runs). It
  holds a lock while it works (PostgreSQL: an advisory lock per schema; SQLite: the IMMEDIATE
  write lock), so two upgrades at once run one after the other and the second finds nothing to do.
  A database made by the interim ``create_all`` (turnlog tables, no version table) is stamped at
  0001, which is that exact layout, and upgraded from there.
- ``ensure_schema`` is what opening a store calls: an EMPTY database is migrated only when the
  caller asks (``create=True``: the embedded SQLite default, tests); any database whose revision
  is not ``HEAD_REVISION`` is refused with a ``SchemaError`` that says what to run. Nothing is
  ever created or altered implicitly while serving requests.

There is no alembic.ini: the ``Config`` is built here, pointing at the migrations shipped inside
the package. The version table is ``turnlog_alembic_version`` (not Alembic's default name), so an
application that keeps its own Alembic history in the same database is not disturbed.
"""

from __future__ import annotations

import contextlib
import hashlib
import shlex
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import exc as sa_exc
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from turnlog.engine import SchemaError, StoreUnavailable

from ._engines import make_engines
from ._urls import IDENT, is_pg_url, parse_pg_url

if TYPE_CHECKING:
    from alembic.config import Config

HEAD_REVISION = "0008"
#: The revision whose layout the interim create_all built (databases from before migrations).
LEGACY_REVISION = "0001"
VERSION_TABLE = "turnlog_alembic_version"
MIGRATIONS = Path(__file__).resolve().parent / "migrations"
_TABLES = ("turnlog_events", "turnlog_messages", "turnlog_projection_state")


def alembic_config() -> Config:
    # Alembic is imported only when a migration runs: it costs ~160 ms of start-up, and opening
    # a current database (every CLI call, every server start) needs only the version row.
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def known_revisions() -> set[str]:
    from alembic.script import ScriptDirectory

    return {s.revision for s in ScriptDirectory.from_config(alembic_config()).walk_revisions()}


def upgrade_command(where: str) -> str:
    # Quoted for the shell: a PostgreSQL URL's `?schema=` would otherwise be a glob.
    return f"turnlog db upgrade --db {shlex.quote(where)}"


# -- reading the state --------------------------------------------------------------------------


def _state(conn: Connection) -> tuple[str | None, bool]:
    """(revision, has turnlog tables)."""
    names = set(inspect(conn).get_table_names())
    # The history is linear: one row (Alembic's own reader would import Alembic for this).
    rev = conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar() if VERSION_TABLE in names else None
    return rev, any(t in names for t in _TABLES)


async def current_revision(db: str | Path | AsyncEngine) -> str | None:
    """The database's revision; None for an empty or unversioned database."""
    async with engine_for(db) as (engine, _), engine.connect() as conn:
        rev, _ = await conn.run_sync(_state)
    return rev


# -- changing it --------------------------------------------------------------------------------


def _lock_key(search_path: str) -> int:
    digest = hashlib.sha256(f"turnlog.migrate:{search_path}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


async def _locked_upgrade(conn: AsyncConnection, revision: str) -> tuple[str | None, str | None]:
    """Inside one transaction: lock, then migrate. Returns (revision before, revision after)."""
    if conn.dialect.name == "postgresql":
        # The stores put a `?schema=` into the connection's search_path: that is where turnlog
        # lives, so it names the lock, and it is created if it is a plain identifier (the
        # default "$user", public is left alone).
        search_path = (await conn.execute(text("SELECT current_setting('search_path')"))).scalar_one()
        await conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _lock_key(search_path)})
        if IDENT.match(search_path):
            await conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{search_path}"'))
    return await conn.run_sync(_run_upgrade, revision)


def _run_upgrade(conn: Connection, revision: str) -> tuple[str | None, str | None]:
    before, has_tables = _state(conn)
    from alembic import command

    cfg = alembic_config()
    cfg.attributes["connection"] = conn
    if before is None and has_tables:
        command.stamp(cfg, LEGACY_REVISION)
    command.upgrade(cfg, revision)
    after, _ = _state(conn)
    return before, after


@contextlib.asynccontextmanager
async def engine_for(db: str | Path | AsyncEngine) -> AsyncIterator[tuple[AsyncEngine, str]]:
    """(engine, where) for a SQLite path, a PostgreSQL URL or an engine; connection failures
    become ``StoreUnavailable`` naming the database (never its password)."""
    if isinstance(db, AsyncEngine):
        engine, where, owned = db, db.url.render_as_string(hide_password=True), False
    elif is_pg_url(str(db)):
        target = parse_pg_url(str(db))
        engine = create_async_engine(target.sqlalchemy_url, connect_args={"server_settings": target.server_settings})
        where, owned = target.where, True
    else:
        engine, reader = make_engines(db)
        await reader.dispose()
        where, owned = str(db), True
    try:
        yield engine, where
    except (OSError, sa_exc.DBAPIError) as exc:
        why = exc.orig if isinstance(exc, sa_exc.DBAPIError) else exc
        raise StoreUnavailable(f"cannot migrate the database at {where}: {why}") from None
    finally:
        if owned:
            await engine.dispose()


async def upgrade(db: str | Path | AsyncEngine, revision: str = "head") -> tuple[str | None, str | None]:
    """Migrate a database (a SQLite path, a PostgreSQL URL or an engine) to ``revision``
    (default: the newest). Returns (revision before, revision after)."""
    async with engine_for(db) as (engine, _):
        return await _upgrade_engine(engine, revision)


async def _upgrade_engine(engine: AsyncEngine, revision: str) -> tuple[str | None, str | None]:
    async with engine.begin() as conn:
        return await _locked_upgrade(conn, revision)


# -- the check every store makes when it opens --------------------------------------------------


async def ensure_schema(engine: AsyncEngine, *, create: bool, where: str) -> None:
    """Accept a database at ``HEAD_REVISION``; migrate an empty one if ``create``; refuse the rest
    with a ``SchemaError`` that names the database, both revisions and the command to run."""
    async with engine.connect() as conn:
        rev, has_tables = await conn.run_sync(_state)
    if rev == HEAD_REVISION:
        return
    if rev is None and not has_tables:
        if create:
            await _upgrade_engine(engine, "head")
            return
        raise SchemaError(f"the log at {where} has no turnlog tables: run `{upgrade_command(where)}` to create them")
    if rev is None:
        raise SchemaError(
            f"the log at {where} has turnlog tables from before schema migrations (no revision), "
            f"this turnlog needs revision {HEAD_REVISION}: run `{upgrade_command(where)}`"
        )
    if rev not in known_revisions():
        raise SchemaError(
            f"the log at {where} has schema revision {rev}, which this turnlog does not know "
            f"(it needs {HEAD_REVISION}): it was written by a newer turnlog; upgrade turnlog"
        )
    raise SchemaError(
        f"the log at {where} has schema revision {rev}, this turnlog needs {HEAD_REVISION}: "
        f"run `{upgrade_command(where)}`"
    )
