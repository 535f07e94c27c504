"""The migrations build exactly the tables engine/schema.py describes, on SQLite and PostgreSQL,
and they ship inside the package (no alembic.ini, no source checkout needed)."""

from __future__ import annotations

import tomllib
from fnmatch import fnmatch
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from turnlog.adapters.stores._migrate import (
    HEAD_REVISION,
    MIGRATIONS,
    VERSION_TABLE,
    current_revision,
    engine_for,
    known_revisions,
    upgrade,
)
from turnlog.adapters.stores._schema import metadata

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_db(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "m.db")
    return request.getfixturevalue("pg_empty_schema_url")


async def test_migrated_database_matches_the_schema_module(empty_db: str) -> None:
    assert await upgrade(empty_db) == (None, HEAD_REVISION)
    assert await current_revision(empty_db) == HEAD_REVISION

    def diff(conn):
        ctx = MigrationContext.configure(conn, opts={"compare_type": True, "version_table": VERSION_TABLE})
        return compare_metadata(ctx, metadata)

    async with engine_for(empty_db) as (engine, _), engine.connect() as conn:
        assert await conn.run_sync(diff) == []


async def test_upgrade_in_steps_equals_upgrade_at_once(empty_db: str) -> None:
    assert await upgrade(empty_db, "0001") == (None, "0001")
    assert await upgrade(empty_db) == ("0001", HEAD_REVISION)
    assert await upgrade(empty_db) == (HEAD_REVISION, HEAD_REVISION)


def test_head_revision_is_the_newest_migration_and_every_file_ships() -> None:
    assert HEAD_REVISION == max(known_revisions())
    assert len(known_revisions()) == len(list((MIGRATIONS / "versions").glob("*.py")))
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    globs = config["tool"]["setuptools"]["package-data"]["turnlog.adapters.stores"]
    for path in MIGRATIONS.rglob("*.py"):
        relative = path.relative_to(MIGRATIONS.parent).as_posix()
        assert any(fnmatch(relative, g) for g in globs), f"{relative} is not package data: the wheel lacks it"
