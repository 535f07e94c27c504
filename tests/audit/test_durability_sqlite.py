"""SQLite's durability level is reachable from every ``--db``: ``PATH?synchronous=NORMAL|FULL|EXTRA``
reaches every connection of the log (``PRAGMA synchronous`` reads back 1, 2 or 3) through
``open_store``, ``turnlog demo`` and ``turnlog serve``; the default is FULL; a bad value is one
clear ``ConfigError`` and leaves no file behind."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from turnlog.adapters.cli import main
from turnlog.adapters.stores import SqliteEventLog, Store, open_store
from turnlog.engine import ConfigError, EventLog

LEVELS = {"NORMAL": 1, "FULL": 2, "EXTRA": 3}


async def pragma(log: EventLog) -> tuple[int, int]:
    """``PRAGMA synchronous`` on the log's writer connection and on a reader connection."""
    log = getattr(log, "wrapped", log)  # open_store's log is encrypted: the SQLite log is under it
    assert isinstance(log, SqliteEventLog)
    values = []
    for engine in (log.writer, log.reader):
        async with engine.connect() as conn:
            values.append((await conn.exec_driver_sql("PRAGMA synchronous")).scalar_one())
    return values[0], values[1]


@pytest.mark.parametrize("level", [*LEVELS, "full", "Extra"])
async def test_the_parameter_reaches_every_connection(tmp_path: Path, level: str) -> None:
    db = tmp_path / "t.db"
    async with await open_store(f"{db}?synchronous={level}") as store:
        assert await pragma(store.log) == (LEVELS[level.upper()],) * 2
        assert store.log.path == db  # the parameter is not part of the file name
    assert [p.name for p in tmp_path.iterdir() if p.suffix == ".db"] == ["t.db"]


async def test_the_default_is_full(tmp_path: Path) -> None:
    async with await open_store(str(tmp_path / "a.db")) as store:
        assert await pragma(store.log) == (2, 2)
    async with await open_store(tmp_path / "b.db") as store:  # a Path is a file name as is
        assert await pragma(store.log) == (2, 2)
    async with await SqliteEventLog.open(tmp_path / "c.db") as log:
        assert await pragma(log) == (2, 2)


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("synchronous=SOMETIMES", "synchronous must be NORMAL, FULL or EXTRA, not 'SOMETIMES'"),
        ("synchronous=OFF", "synchronous must be NORMAL, FULL or EXTRA, not 'OFF'"),
        ("synchronous=", "synchronous must be NORMAL, FULL or EXTRA, not ''"),
        ("journal_mode=DELETE", "unknown parameter 'journal_mode'; a SQLite database takes synchronous="),
        ("synchronous", "expected PATH?synchronous=NORMAL|FULL|EXTRA"),
    ],
)
async def test_a_bad_parameter_is_a_clear_error_and_creates_nothing(tmp_path: Path, query: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("?", r"\?").replace("|", r"\|")) as info:
        await open_store(f"{tmp_path / 't.db'}?{query}")
    assert info.value.code == "config_invalid"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("db", ["sqlite:///t.db?synchronous=FULL", "file:t.db?synchronous=FULL", "?synchronous=FULL"])
async def test_other_spellings_are_refused_not_taken_for_file_names(db: str) -> None:
    with pytest.raises(ConfigError, match="--db"):
        await open_store(db)


def spy_on_stores(monkeypatch: pytest.MonkeyPatch, command: ModuleType) -> list[tuple[int, int]]:
    """Wrap the command's ``open_store``: just before the command closes its store, read
    ``PRAGMA synchronous`` on the store's connections."""
    seen: list[tuple[int, int]] = []
    real = command.open_store

    async def spying(db: Any, **kw: Any) -> Store:
        store = await real(db, **kw)
        close = store.log.close

        async def read_then_close() -> None:
            seen.append(await pragma(store.log))
            await close()

        store.log.close = read_then_close  # type: ignore[method-assign]
        return store

    monkeypatch.setattr(command, "open_store", spying)
    return seen


@pytest.mark.parametrize("level", list(LEVELS))
def test_turnlog_demo_takes_it_from_db(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], level: str
) -> None:
    from turnlog.adapters.cli import _demo

    seen = spy_on_stores(monkeypatch, _demo)
    # The demo exits 0 only if the live frames equal the replayed ones and the chain verifies.
    assert main(["demo", "--db", f"{tmp_path / 'demo.db'}?synchronous={level}"]) == 0
    assert "IDENTICAL to the live stream" in capsys.readouterr().out
    assert seen == [(LEVELS[level],) * 2]
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".db") == ["demo.db"]


@pytest.mark.parametrize("level", list(LEVELS))
def test_turnlog_serve_takes_it_from_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, level: str) -> None:
    uvicorn = pytest.importorskip("uvicorn")
    from turnlog.adapters.cli import _serve

    seen = spy_on_stores(monkeypatch, _serve)
    served: list[str] = []

    async def serve(self: Any, sockets: Any = None) -> None:
        # Everything `turnlog serve` builds is built (store, service, app); only the socket is not.
        served.append(type(self.config.app).__name__)
        self.started = True

    monkeypatch.setattr(uvicorn.Server, "serve", serve)
    assert main(["serve", "--db", f"{tmp_path / 's.db'}?synchronous={level}", "--port", "0"]) == 0
    assert served and seen == [(LEVELS[level],) * 2]


def test_the_command_line_says_what_is_wrong_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = f"{tmp_path / 'x.db'}?synchronous=fast"
    assert main(["verify", "--db", db]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith(f"turnlog: error: --db {db!r}: synchronous must be NORMAL, FULL or EXTRA, not 'fast'")
