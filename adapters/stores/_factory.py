"""One way to open a store from a URL or a path: the CLI, the server, the tests and users call it.

    store = await open_store("turnlog.db")                      # SQLite (the embedded default)
    store = await open_store("turnlog.db?synchronous=EXTRA")    # SQLite, another durability level
    store = await open_store("postgresql://user@host/db")       # PostgreSQL (migrated first)
    engine = TurnEngine(store.log, llm, messages=store.messages)
    ...
    await store.close()

The message rows and the conversation summaries (``store.conversations``, the list's index)
live beside the log, in the same database.

A ``--db`` value may carry parameters after ``?``, as a URL does: PostgreSQL takes ``schema``
(``adapters/stores/_urls.py``), a SQLite path takes ``synchronous`` (``NORMAL``, ``FULL`` or
``EXTRA``; default ``FULL``, see ``SqliteEventLog.open``). So one ``--db`` reaches every
command: ``turnlog serve --db 'turnlog.db?synchronous=NORMAL'``. Anything else after ``?`` is
refused with a ``ConfigError`` rather than read as part of a file name: a durability setting
that silently did nothing would be worse than no setting.

Encryption at rest (issue 15) is on by default: the log and the rows are wrapped in
``EncryptedLog`` and ``EncryptedMessages`` (``turnlog.adapters.crypto``) with one data key per
conversation in ``turnlog_keys`` (``SqlKeyProvider``), wrapped by the master key in
``TURNLOG_MASTER_KEY`` when it is set. Conversations written before (no key) stay readable in
clear. ``encryption=False`` opens the bare store (no key is created, nothing can be erased).
"""

from __future__ import annotations

from pathlib import Path
from types import TracebackType
from typing import NamedTuple
from urllib.parse import parse_qsl

from turnlog.adapters.crypto import EncryptedLog, EncryptedMessages, KeyCache, KeyProvider, MasterKey
from turnlog.engine import ConfigError, EventLog, StoreUnavailable
from turnlog.projections import ConversationIndex, MessageStore, UsageLedger

from ._conversations import SqlConversationIndex
from ._keys import SqlKeyProvider
from ._postgres import PostgresEventLog
from ._rows import SqlMessageStore
from ._sqlite import SqliteEventLog
from ._urls import is_pg_url
from ._usage import SqlUsageLedger


class Store(NamedTuple):
    """An event log and the message rows kept beside it (unpacks as ``log, messages``)."""

    log: EventLog
    messages: MessageStore

    @property
    def conversations(self) -> ConversationIndex | None:
        """The conversation summaries the rows' sink keeps (``GET /conversations``, ``turnlog list``)."""
        return self.messages.conversations

    @property
    def usage(self) -> UsageLedger | None:
        """The usage ledger the rows' sink keeps (``GET /usage``, ``turnlog usage``)."""
        return self.messages.usage

    @property
    def keys(self) -> KeyCache | None:
        """The data keys of an encrypted store (None: opened with ``encryption=False``)."""
        return self.log.keys if isinstance(self.log, EncryptedLog) else None

    async def close(self) -> None:
        await self.log.close()

    async def __aenter__(self) -> Store:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()


#: SQLite's ``PRAGMA synchronous`` levels a ``--db`` value may ask for.
SYNCHRONOUS = ("NORMAL", "FULL", "EXTRA")


def sqlite_target(db: str | Path) -> tuple[str | Path, dict[str, str]]:
    """A SQLite ``--db`` value split into the file and its parameters (``{"synchronous": "FULL"}``).
    A ``Path`` is a file name as is; a string's ``?`` starts the parameters."""
    if isinstance(db, Path):
        return db, {}
    if db.startswith(("sqlite:", "file:")):
        raise ConfigError(
            f"--db {db!r}: give a SQLite database as a file path, e.g. turnlog.db?synchronous=FULL "
            "(no sqlite:// or file: prefix)"
        )
    path, sep, query = db.partition("?")
    if not sep:
        return db, {}
    if not path:
        raise ConfigError(f"--db {db!r}: no file name before '?'")
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=True)
    except ValueError:
        raise ConfigError(f"--db {db!r}: expected PATH?synchronous=NORMAL|FULL|EXTRA after the file name") from None
    params: dict[str, str] = {}
    for key, value in pairs:
        if key != "synchronous":
            raise ConfigError(f"--db {db!r}: unknown parameter {key!r}; a SQLite database takes synchronous=")
        if value.upper() not in SYNCHRONOUS:
            raise ConfigError(
                f"--db {db!r}: synchronous must be NORMAL, FULL or EXTRA, not {value!r} "
                "(NORMAL can lose the last commits on power loss; FULL and EXTRA cannot)"
            )
        params[key] = value.upper()
    return path, params


#: The key cache's (size, ttl seconds): ``KeyCache``.
Cache = tuple[int, float]


def encrypted_store(log: EventLog, messages: MessageStore, provider: KeyProvider, *, cache: Cache | None) -> Store:
    """``log`` and ``messages`` behind the encrypting decorators, sharing one key cache."""
    size, ttl = cache or (10_000, 2.0)
    keys = KeyCache(provider, size=size, ttl=ttl)
    return Store(EncryptedLog(log, keys), EncryptedMessages(messages, keys))


async def open_store(
    db: str | Path,
    *,
    create: bool = True,
    encryption: bool = True,
    master_key: MasterKey | None = None,
    key_cache: Cache | None = None,
) -> Store:
    """The store for a ``--db`` value: a ``postgresql://`` URL (its schema must be migrated:
    ``turnlog db upgrade``) or a SQLite file path, with an optional ``?synchronous=`` (an empty
    or missing file is created and migrated when ``create`` is true). With ``create=False`` (every
    reading command) a missing file is an error and no file is created: SQLite would otherwise
    leave an empty database behind a typo.

    ``encryption`` (default on): content encrypted at rest under per-conversation keys kept in
    the same database, wrapped by ``master_key`` (default: ``MasterKey.from_env()``, the
    ``TURNLOG_MASTER_KEY`` variable; none: stored unwrapped). ``key_cache``: (size, ttl) of the
    in-memory key cache (``KeyCache``; default 10,000 keys, 2 s)."""
    if encryption and master_key is None:
        master_key = MasterKey.from_env()
    if isinstance(db, str) and is_pg_url(db):
        pg = await PostgresEventLog.open(db)
        if encryption:
            return encrypted_store(
                pg, SqlMessageStore(pg.engine), SqlKeyProvider(pg.engine, master_key), cache=key_cache
            )
        return Store(pg, SqlMessageStore(pg.engine))
    path, params = sqlite_target(db)
    if not create and not Path(path).exists():  # noqa: ASYNC240 (one stat, once per open)
        raise StoreUnavailable(f"no database at {path}: check the path (`turnlog db upgrade --db PATH` creates one)")
    lite = await SqliteEventLog.open(path, create=create, **params)
    rows = SqlMessageStore(
        lite.writer,
        SqlConversationIndex(lite.writer, reader=lite.reader),
        SqlUsageLedger(lite.writer, reader=lite.reader),
    )
    if encryption:
        return encrypted_store(lite, rows, SqlKeyProvider(lite.writer, master_key), cache=key_cache)
    return Store(lite, rows)
