"""Which servers are running over a log: each holds its server id while it runs, others ask.

A server that dies lets go of its id at once, without a heartbeat to miss: the operating system or
the database releases what the dead process held. So crash recovery can tell a turn whose server
is gone (end it now) from one whose server is merely quiet (leave it), without waiting for a
grace period (``turnlog.adapters.server``'s recovery).

- **SQLite**: a file lock (``flock``) on ``<database>.servers/server-<id>.lock``, released by the
  kernel when the process ends. Every process that opens a SQLite file in WAL mode runs on the
  same machine, so the kernel knows them all.
- **PostgreSQL**: a session advisory lock (its key derived from the schema and the id) held on a
  connection of its own, released by PostgreSQL when the session ends; ``pg_locks`` says whether
  anyone holds it. TCP keepalives (``tcp_keepalives_idle`` 10 s) end the session of a server
  whose machine vanished within about 25 s; a lost connection is re-opened and the lock taken
  again (pinged every ``PING_S``).
- **In memory**: the log lives in one process: the ids held over it now are all there are.
- Another log: nobody can tell (``running`` answers None).

``hold`` refuses an id another live process holds (``ConfigError``): two servers given the same
``--server-id`` would otherwise end each other's turns.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import hashlib
import logging
import os
import weakref
from pathlib import Path
from urllib.parse import quote

import asyncpg
from turnlog.engine import ConfigError, EventLog, InMemoryEventLog

from ._postgres import PostgresEventLog
from ._sqlite import SqliteEventLog
from ._urls import PgTarget

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no flock, the grace period decides
    fcntl = None  # type: ignore[assignment]

logger = logging.getLogger("turnlog.stores")

#: Seconds between checks that the PostgreSQL lock's connection is alive.
PING_S = 5.0


def _in_use(server_id: str) -> ConfigError:
    return ConfigError(
        f"server id {server_id!r} is held by another running server over this log; give each server its own "
        "--server-id (or none: one is generated per process)"
    )


class Presence(abc.ABC):
    """A server's hold on its id over one log, and the question whether an id is held."""

    @abc.abstractmethod
    async def hold(self, server_id: str) -> None:
        """Hold ``server_id`` until ``release``; ``ConfigError`` if a live process holds it."""

    @abc.abstractmethod
    async def release(self) -> None: ...

    @abc.abstractmethod
    async def running(self, server_id: str) -> bool | None:
        """True: a live process holds ``server_id``; False: none does; None: this log cannot tell."""


def presence_of(log: EventLog) -> Presence:
    """The presence that fits ``log``: a file lock beside a SQLite file, an advisory lock in
    PostgreSQL, a registry for the in-memory log; for another log one that cannot tell."""
    while (inner := getattr(log, "wrapped", None)) is not None:
        log = inner  # a decorator (EncryptedLog): the store under it
    if isinstance(log, SqliteEventLog):
        return FilePresence(Path(f"{log.path}.servers"))
    if isinstance(log, PostgresEventLog):
        return PgPresence(log.target)
    if isinstance(log, InMemoryEventLog):
        return MemoryPresence(log)
    return _Unknown()


class _Unknown(Presence):
    async def hold(self, server_id: str) -> None:
        return None

    async def release(self) -> None:
        return None

    async def running(self, server_id: str) -> bool | None:
        return None


#: The ids held over each in-memory log (a log lives in one process).
_HELD: weakref.WeakKeyDictionary[InMemoryEventLog, set[str]] = weakref.WeakKeyDictionary()


class MemoryPresence(Presence):
    def __init__(self, log: InMemoryEventLog) -> None:
        self._ids = _HELD.setdefault(log, set())
        self._held: str | None = None

    async def hold(self, server_id: str) -> None:
        if server_id in self._ids:
            raise _in_use(server_id)
        self._ids.add(server_id)
        self._held = server_id

    async def release(self) -> None:
        if self._held is not None:
            self._ids.discard(self._held)
            self._held = None

    async def running(self, server_id: str) -> bool | None:
        return server_id in self._ids


class FilePresence(Presence):
    """One lock file per id in ``directory``. A file found unlocked is removed under its lock; a
    holder checks, once locked, that its file is still the one at the path (the classic lock-file
    race: a checker may have removed it in between), and starts again if not."""

    def __init__(self, directory: Path) -> None:
        self._dir = directory
        self._fd: int | None = None
        self._path: Path | None = None

    def _file(self, server_id: str) -> Path:
        return self._dir / f"server-{quote(server_id, safe='')}.lock"

    async def hold(self, server_id: str) -> None:
        if fcntl is None:
            return
        self._dir.mkdir(exist_ok=True)
        path = self._file(server_id)
        while True:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise _in_use(server_id) from None
            try:
                same = os.stat(path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())  # for an operator who looks; nobody reads it
        self._fd, self._path = fd, path

    async def release(self) -> None:
        if self._fd is not None and self._path is not None:
            with contextlib.suppress(FileNotFoundError):
                self._path.unlink()
            os.close(self._fd)
            self._fd = self._path = None

    async def running(self, server_id: str) -> bool | None:
        if fcntl is None:
            return None
        path = self._file(server_id)
        try:
            fd = os.open(path, os.O_RDWR)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        else:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()  # a dead server's file: removed while we hold its lock
            return False
        finally:
            os.close(fd)


def _lock_key(schema: str | None, server_id: str) -> int:
    digest = hashlib.sha256(f"turnlog.server:{schema or ''}:{server_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


_HELD_BY_ANYONE = """
SELECT EXISTS (
  SELECT 1 FROM pg_locks
  WHERE locktype = 'advisory' AND granted AND objsubid = 1
    AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
    AND classid = $1::bigint::oid AND objid = $2::bigint::oid
)
"""
#: The session's side of the TCP keepalives: PostgreSQL ends the session (and frees the lock) of
#: a server whose machine stopped answering, about idle + interval * count seconds later.
_KEEPALIVES = {"tcp_keepalives_idle": "10", "tcp_keepalives_interval": "5", "tcp_keepalives_count": "3"}


class PgPresence(Presence):
    """A session advisory lock per id, held on a connection of its own (a pooled connection would
    hand the session, and the lock, to whoever borrows it next)."""

    def __init__(self, target: PgTarget) -> None:
        self._target = target
        self._conn: asyncpg.Connection | None = None
        self._held: str | None = None
        self._keeper: asyncio.Task[None] | None = None
        #: One statement at a time on the connection (the keeper's ping, ``running``).
        self._busy = asyncio.Lock()

    async def _connect(self) -> asyncpg.Connection:
        settings = {**self._target.server_settings, **_KEEPALIVES}
        return await asyncpg.connect(self._target.dsn, server_settings=settings, timeout=5)

    async def _take(self, server_id: str) -> asyncpg.Connection:
        conn = await self._connect()
        try:
            taken = await conn.fetchval("SELECT pg_try_advisory_lock($1)", _lock_key(self._target.schema, server_id))
        except BaseException:
            await conn.close()
            raise
        if not taken:
            await conn.close()
            raise _in_use(server_id)
        return conn

    async def hold(self, server_id: str) -> None:
        self._conn = await self._take(server_id)
        self._held = server_id
        self._keeper = asyncio.get_running_loop().create_task(self._keep())

    async def _keep(self) -> None:
        """Ping the lock's connection; when it is lost (and the lock with it), take it again."""
        assert self._held is not None
        while True:
            await asyncio.sleep(PING_S)
            try:
                async with self._busy:
                    if self._conn is None or self._conn.is_closed():
                        self._conn = await self._take(self._held)
                        logger.warning("server id %s: the lock's connection was lost; held again", self._held)
                    else:
                        await self._conn.execute("SELECT 1")
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError, ConfigError) as exc:
                logger.error("server id %s: cannot hold its lock (retrying): %s", self._held, exc)
                if self._conn is not None:
                    self._conn.terminate()
                    self._conn = None

    async def release(self) -> None:
        if self._keeper is not None:
            self._keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._keeper
            self._keeper = None
        if self._conn is not None:
            conn, self._conn = self._conn, None
            with contextlib.suppress(OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
                await conn.close(timeout=2)
        self._held = None

    async def running(self, server_id: str) -> bool | None:
        key = _lock_key(self._target.schema, server_id)
        unsigned = key & 0xFFFF_FFFF_FFFF_FFFF
        args = (unsigned >> 32, unsigned & 0xFFFF_FFFF)
        async with self._busy:
            conn = self._conn
            if conn is not None and not conn.is_closed():
                return bool(await conn.fetchval(_HELD_BY_ANYONE, *args))
        conn = await self._connect()
        try:
            return bool(await conn.fetchval(_HELD_BY_ANYONE, *args))
        finally:
            await conn.close()
