"""A small HTTP/1.1 server on 127.0.0.1 that plays scripted replies, misbehaving on purpose.

It exists so that the real OpenAI-compatible client can be driven through a real socket: by
``RecordedLLM`` (recorded provider streams in users' tests), by the adapter's tests (status
codes, ``Retry-After``, resets, stalls, garbage) and by the parse benchmark. Raw
``asyncio.start_server`` rather than a framework, because the point is control over what goes on
the wire: piece sizes (seeded, so pieces split inside UTF-8 characters and CRLF pairs), pauses,
a connection dropped after N body bytes, a stall that never ends.

    async with LocalServer([Reply(body=b"data: ...\\n\\n")]) as server:
        url = server.url  # http://127.0.0.1:PORT
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from types import TracebackType


@dataclass(frozen=True)
class Reply:
    """One scripted HTTP response."""

    body: bytes = b""
    status: int = 200
    content_type: str = "text/event-stream"
    headers: dict[str, str] = field(default_factory=dict)
    #: Body pieces are random sizes in [min, max] drawn from ``seed``; None sends the body whole.
    seed: int | None = None
    piece_min: int = 1
    piece_max: int = 64
    #: Random pieces for this many body bytes only, then ``BIG_PIECE``-byte pieces (None: random
    #: pieces to the end). A large recording then plays at the client's speed, not at the speed of
    #: ~40-byte chunks, while its beginning (every event of a small one) still comes in pieces.
    random_until: int | None = None
    #: Pause between pieces (seconds).
    delay: float = 0.0
    #: After this many body bytes: stop sending and hold the connection open (idle timeouts).
    stall_at: int | None = None
    #: After this many body bytes: drop the connection without finishing (reset mid-stream).
    reset_at: int | None = None
    #: Close the connection before sending any response (a server that dies on accept).
    drop: bool = False


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 429: "Too Many Requests"}


#: The piece size after ``Reply.random_until`` (one HTTP chunk, one socket write).
BIG_PIECE = 1 << 16


def _pieces(reply: Reply) -> Iterator[bytes]:
    """``reply.body`` in the pieces it is sent in, made as they are sent (no list of them all)."""
    body = reply.body
    until = len(body) if reply.random_until is None else min(reply.random_until, len(body))
    pos = 0
    if reply.seed is not None and until:
        rng = random.Random(reply.seed)
        lo, hi = reply.piece_min, reply.piece_max
        while pos < until:
            size = rng.randint(lo, hi)
            yield body[pos : pos + size]
            pos += size
    elif reply.random_until is None and body:
        yield body  # no seed: the body whole
        return
    while pos < len(body):
        yield body[pos : pos + BIG_PIECE]
        pos += BIG_PIECE


def pieces(body: bytes, seed: int | None, lo: int = 1, hi: int = 64) -> list[bytes]:
    """``body`` cut into random-sized pieces (deterministic for a seed)."""
    if seed is None or not body:
        return [body] if body else []
    rng = random.Random(seed)
    out, pos = [], 0
    while pos < len(body):
        size = rng.randint(lo, hi)
        out.append(body[pos : pos + size])
        pos += size
    return out


class LocalServer:
    """Serves ``replies`` in order, one per request (the last one repeats), or whatever
    ``replies(request)`` returns. Every request is kept in ``requests``."""

    def __init__(self, replies: Sequence[Reply] | Callable[[Request], Reply]) -> None:
        self._replies = replies
        self.requests: list[Request] = []
        self._server: asyncio.Server | None = None
        self._conns: set[asyncio.Task[None]] = set()
        self.port = 0

    @property
    def open_connections(self) -> int:
        return len(self._conns)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> LocalServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            for task in list(self._conns):
                task.cancel()
            await asyncio.gather(*self._conns, return_exceptions=True)
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> LocalServer:
        return await self.start()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    def _pick(self, request: Request) -> Reply:
        if callable(self._replies):
            return self._replies(request)
        n = len(self.requests) - 1
        return self._replies[min(n, len(self._replies) - 1)]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._conns.add(task)
        try:
            while True:
                request = await _read_request(reader)
                if request is None:
                    return
                self.requests.append(request)
                reply = self._pick(request)
                if not await _write_reply(writer, reply):
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        except asyncio.CancelledError:
            return
        finally:
            self._conns.discard(task)
            writer.transport.abort() if writer.transport is not None else None
            with contextlib.suppress(Exception):
                writer.close()


async def _read_request(reader: asyncio.StreamReader) -> Request | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
        return None
    lines = head.decode("latin-1").split("\r\n")
    method, path, _ = lines[0].split(" ", 2)
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
    length = int(headers.get("content-length", "0"))
    body = await reader.readexactly(length) if length else b""
    return Request(method, path, headers, body)


async def _write_reply(writer: asyncio.StreamWriter, reply: Reply) -> bool:
    """Writes one response; False when the connection must not be reused."""
    if reply.drop:
        writer.transport.abort()
        return False
    head = [f"HTTP/1.1 {reply.status} {_REASONS.get(reply.status, 'Status')}"]
    head.append(f"Content-Type: {reply.content_type}")
    head.append("Transfer-Encoding: chunked")
    head.append("Cache-Control: no-cache")
    head += [f"{k}: {v}" for k, v in reply.headers.items()]
    writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
    await writer.drain()
    sent = 0
    for piece in _pieces(reply):
        for limit, action in ((reply.reset_at, "reset"), (reply.stall_at, "stall")):
            if limit is not None and sent + len(piece) > limit:
                head_part = piece[: limit - sent]
                if head_part:
                    writer.write(b"%x\r\n%s\r\n" % (len(head_part), head_part))
                    await writer.drain()
                if action == "reset":
                    writer.transport.abort()
                    return False
                await asyncio.sleep(3600)  # cancelled when the server closes
        writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
        if reply.delay or len(piece) >= BIG_PIECE or writer.transport.get_write_buffer_size() >= BIG_PIECE:
            await writer.drain()  # small pieces queue up to 64 KiB before waiting on the socket
        sent += len(piece)
        if reply.delay:
            await asyncio.sleep(reply.delay)
    for limit, action in ((reply.reset_at, "reset"), (reply.stall_at, "stall")):
        if limit is not None and sent >= limit:
            if action == "reset":
                writer.transport.abort()
                return False
            await asyncio.sleep(3600)
    writer.write(b"0\r\n\r\n")
    await writer.drain()
    return True
