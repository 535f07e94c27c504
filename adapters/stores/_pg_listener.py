"""The PostgreSQL log's wake-up line: one LISTEN connection per log instance, reconnected when lost.

A notification is a hint, the log is the truth: while the connection is down, followers poll
every ``poll_interval``, and when it is back every follower is woken to re-read (whatever was
appended meanwhile is found by reading, not by the notifications that were missed).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import asyncpg

from ._urls import PgTarget


class Listener:
    """LISTEN on ``channel``; each payload goes to ``on_payload``; ``on_back`` runs when a lost
    connection is back. Started by the first follower (``ensure``), closed with the log."""

    def __init__(
        self,
        target: PgTarget,
        channel: str,
        on_payload: Callable[[str], None],
        on_back: Callable[[], None],
        unavailable: tuple[type[BaseException], ...],
        poll_interval: float,
    ) -> None:
        self._target = target
        self._channel = channel
        self._on_payload = on_payload
        self._on_back = on_back
        self._unavailable = (*unavailable, asyncpg.PostgresError)
        self._poll_interval = poll_interval
        self._conn: asyncpg.Connection | None = None
        self._lock = asyncio.Lock()
        self._reconnect: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def listening(self) -> bool:
        return self._conn is not None and not self._conn.is_closed()

    def get_server_pid(self) -> int | None:
        """The backend process id of the LISTEN connection (tests end it to simulate a loss)."""
        return self._conn.get_server_pid() if self._conn is not None else None

    async def ensure(self) -> None:
        if self._closed or self.listening or self._reconnect is not None:
            return
        async with self._lock:
            if self._closed or self.listening or self._reconnect is not None:
                return
            try:
                await self._listen()
            except self._unavailable:
                # Followers poll until the listener is back.
                self._start_reconnect()

    async def close(self) -> None:
        self._closed = True
        if self._reconnect is not None:
            self._reconnect.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reconnect
        if self._conn is not None:
            conn, self._conn = self._conn, None
            with contextlib.suppress(*self._unavailable):
                await conn.close(timeout=2)

    async def _listen(self) -> None:
        conn = await asyncpg.connect(self._target.dsn, server_settings=self._target.server_settings, timeout=5)
        try:
            await conn.add_listener(self._channel, self._on_notification)
        except BaseException:
            await conn.close()
            raise
        conn.add_termination_listener(self._on_lost)
        self._conn = conn

    def _on_notification(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        self._on_payload(payload)

    def _on_lost(self, conn: Any) -> None:
        if self._closed or conn is not self._conn:
            return
        self._conn = None
        self._start_reconnect()

    def _start_reconnect(self) -> None:
        if self._closed or self._reconnect is not None:
            return
        self._reconnect = asyncio.get_running_loop().create_task(self._reconnect_loop())

    async def _reconnect_loop(self) -> None:
        delay = 0.05
        try:
            while not self._closed:
                await asyncio.sleep(delay)
                try:
                    await self._listen()
                except self._unavailable:
                    delay = min(delay * 2, self._poll_interval)
                    continue
                self._on_back()
                return
        finally:
            self._reconnect = None
