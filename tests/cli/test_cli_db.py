"""`turnlog db upgrade` / `turnlog db current`, and the refusal of an old schema that points at them,
on SQLite and PostgreSQL. In-process (`cli.main`) for speed; the commands are the same."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import text
from turnlog.adapters.cli import main
from turnlog.adapters.stores._migrate import HEAD_REVISION, LEGACY_REVISION, VERSION_TABLE, engine_for, upgrade


def turnlog(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    rc = main(list(args))
    out, err = capsys.readouterr()
    return rc, out, err


async def _drop_version_table(db: str) -> None:
    async with engine_for(db) as (engine, _), engine.begin() as conn:
        await conn.execute(text(f"DROP TABLE {VERSION_TABLE}"))


def make_old(db: str, kind: str) -> None:
    """A database at revision 0001 ("stamped") or with 0001's tables and no revision at all
    ("legacy": what the interim create_all built before migrations existed)."""
    asyncio.run(upgrade(db, LEGACY_REVISION))
    if kind == "legacy":
        asyncio.run(_drop_version_table(db))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_db(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        path = tmp_path / "old.db"
        path.touch()  # an empty file is an empty SQLite database
        return str(path)
    return request.getfixturevalue("pg_empty_schema_url")


def test_current_on_a_missing_sqlite_file_does_not_create_it(capsys, tmp_path: Path) -> None:
    rc, _, err = turnlog(capsys, "db", "current", "--db", str(tmp_path / "typo.db"))
    assert rc == 1 and "no database at" in err and "turnlog db upgrade" in err
    assert not (tmp_path / "typo.db").exists()


def test_upgrade_creates_then_reports_current(capsys, empty_db: str) -> None:
    rc, out, _ = turnlog(capsys, "db", "current", "--db", empty_db)
    assert rc == 3 and "no revision" in out
    rc, out, _ = turnlog(capsys, "db", "upgrade", "--db", empty_db)
    assert rc == 0 and f"upgraded from revision none to {HEAD_REVISION}" in out
    rc, out, _ = turnlog(capsys, "db", "upgrade", "--db", empty_db)
    assert rc == 0 and f"already at revision {HEAD_REVISION}" in out
    rc, out, _ = turnlog(capsys, "db", "current", "--db", empty_db)
    assert rc == 0 and f"revision {HEAD_REVISION} (current)" in out


@pytest.mark.parametrize("kind", ["stamped", "legacy"])
def test_old_schema_is_refused_until_upgraded(capsys, empty_db: str, kind: str) -> None:
    make_old(empty_db, kind)
    rc, _, err = turnlog(capsys, "verify", "--db", empty_db)
    assert rc == 1
    assert err.count("\n") == 1, err  # one line, no traceback
    if kind == "legacy":
        assert f"from before schema migrations (no revision), this turnlog needs revision {HEAD_REVISION}" in err
    else:
        assert f"has schema revision {LEGACY_REVISION}, this turnlog needs {HEAD_REVISION}" in err
    assert "run `turnlog db upgrade --db " in err
    rc, out, _ = turnlog(capsys, "db", "current", "--db", empty_db)
    assert rc == 3

    rc, out, _ = turnlog(capsys, "db", "upgrade", "--db", empty_db)
    before = "none" if kind == "legacy" else LEGACY_REVISION
    assert rc == 0 and f"upgraded from revision {before} to {HEAD_REVISION}" in out
    rc, out, err = turnlog(capsys, "verify", "--db", empty_db)
    assert rc == 0, err
    assert out.startswith("ok: 0 conversation(s)")


def test_unreachable_postgres_is_one_line_without_the_password(capsys) -> None:
    rc, _, err = turnlog(capsys, "db", "upgrade", "--db", "postgresql://u:hunter2@127.0.0.1:1/db")
    assert rc == 1 and err.count("\n") == 1
    assert "hunter2" not in err and "u:***@127.0.0.1:1/db" in err
