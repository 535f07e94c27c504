"""Issue 13, what a careless client or an attacker does to connections, against a real
``turnlog serve`` (uvicorn, h11) over raw sockets:

- a client that disconnects mid-body cost a ``ClientDisconnect`` traceback per connection: now
  nothing is answered and nothing above ``info`` is logged;
- slow clients were held for ever (400 connections sending a byte every 5 s were all open after
  65 s): a request's head and its body each have a deadline (1 s here), and connections beyond a
  cap answer 503 ``server_busy``;
- a broken ``Content-Length`` got uvicorn's plain-text 400: now JSON, as every other error.
"""

from __future__ import annotations

import asyncio
import json
import logging
import select
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from turnlog.adapters.llm import EchoLLM
from turnlog.adapters.server import TurnService
from turnlog.engine import InMemoryEventLog
from turnlog.projections import MemoryMessageStore

from ..server.conftest import ServeProcess, serving

DEADLINE = 1.0
#: The deadline, and what a shared 2-core machine may add to it before a close is seen.
SOON = (DEADLINE * 0.8, DEADLINE + 2.5)
CAP = 6
HEAD = b"POST /conversations HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    tmp = tmp_path_factory.mktemp("serve")
    proc = ServeProcess(
        str(tmp / "turnlog.db"),
        tmp,
        "--header-timeout",
        str(DEADLINE),
        "--body-timeout",
        str(DEADLINE),
        # Longer than the deadlines, so a close within them is theirs, not the idle timer's.
        "--keep-alive",
        "30",
        "--max-connections",
        str(CAP),
        "--max-body",
        "4096",
    )
    try:
        proc.wait_ready()
        yield proc
    finally:
        proc.stop()


def connect(server: ServeProcess) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=5)


def drip_until_closed(
    sock: socket.socket, drip: bytes = b"", every: float = 0.2, most: float = 8.0
) -> tuple[float, bytes]:
    """Send ``drip`` one byte every ``every`` s (nothing when empty) until the server closes the
    connection; returns the seconds it took (``most`` if it never did) and what the server sent."""
    start = time.monotonic()
    got = b""
    sent = 0
    next_byte = start
    while time.monotonic() - start < most:
        now = time.monotonic()
        if sent < len(drip) and now >= next_byte:
            try:
                sock.sendall(drip[sent : sent + 1])
            except OSError:
                return now - start, got
            sent += 1
            next_byte = now + every
        readable, _, _ = select.select([sock], [], [], 0.05)
        if readable:
            try:
                data = sock.recv(65536)
            except ConnectionResetError:
                return time.monotonic() - start, got
            if not data:
                return time.monotonic() - start, got
            got += data
    return most, got


def response(raw: bytes) -> tuple[int, dict[str, str], Any]:
    """Status, headers and JSON body of the one HTTP response in ``raw``."""
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    return int(status_line.split()[1]), headers, json.loads(body[: int(headers["content-length"])])


def exchange(server: ServeProcess, raw: bytes) -> tuple[int, dict[str, str], Any]:
    """Send ``raw`` on a new connection and read the answer (the server closes after it)."""
    with connect(server) as sock:
        sock.sendall(raw)
        _, got = drip_until_closed(sock, most=5.0)
    return response(got)


def assert_json_error(answer: tuple[int, dict[str, str], Any], status: int, code: str) -> dict[str, Any]:
    got_status, headers, body = answer
    assert got_status == status, answer
    assert headers["content-type"] == "application/json", headers
    assert body["error"]["status"] == status and body["error"]["code"] == code, body
    return headers


# -- item 4: a client that disconnects mid-body ---------------------------------------------------


def test_a_client_that_disconnects_mid_body_is_answered_nothing_and_logs_no_traceback(server: ServeProcess) -> None:
    for _ in range(5):
        with connect(server) as sock:
            sock.sendall(HEAD + b"Content-Length: 1000\r\n\r\n" + b'{"title": "half')
            time.sleep(0.2)  # the app is reading the body when the client goes
    assert httpx.get(server.url + "/health", timeout=5).status_code == 200
    time.sleep(0.3)
    log = server.log_path.read_text()
    for sign in ("Traceback", "ClientDisconnect", "Exception in ASGI application", "ERROR"):
        assert sign not in log, log


async def test_a_disconnect_mid_body_is_one_info_line(caplog: pytest.LogCaptureFixture) -> None:
    uvicorn_log = logging.getLogger("uvicorn.error")
    uvicorn_log.addHandler(caplog.handler)  # uvicorn's loggers do not propagate to the root
    caplog.set_level(logging.DEBUG)
    try:
        async with serving(TurnService(InMemoryEventLog(), MemoryMessageStore(), EchoLLM())) as url:
            port = int(url.rsplit(":", 1)[1])
            with socket.create_connection(("127.0.0.1", port)) as sock:
                sock.sendall(HEAD + b"Content-Length: 1000\r\n\r\n" + b'{"title": "half')
                await asyncio.sleep(0.2)
            await asyncio.sleep(0.3)
    finally:
        uvicorn_log.removeHandler(caplog.handler)
    told = [r for r in caplog.records if "disconnect" in r.getMessage().lower() or r.exc_info]
    assert [(r.name, r.levelno, r.exc_info) for r in told] == [("turnlog.server", logging.INFO, None)], [
        r.getMessage() for r in told
    ]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


# -- item 5: slow clients -------------------------------------------------------------------------


def test_a_connection_that_sends_nothing_is_closed_within_the_deadline(server: ServeProcess) -> None:
    with connect(server) as sock:
        took, got = drip_until_closed(sock)
    assert SOON[0] <= took <= SOON[1] and got == b"", (took, got)


def test_a_head_sent_a_byte_at_a_time_is_closed_within_the_deadline(server: ServeProcess) -> None:
    with connect(server) as sock:
        # 20 s of head at this pace: the deadline, not the client, ends it.
        took, got = drip_until_closed(sock, HEAD + b"Content-Length: 2\r\n\r\n{}")
    assert SOON[0] <= took <= SOON[1] and got == b"", (took, got)


def test_the_next_head_on_a_kept_alive_connection_has_the_deadline_too(server: ServeProcess) -> None:
    with connect(server) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n")
        time.sleep(0.5)
        first = sock.recv(65536)
        assert first.startswith(b"HTTP/1.1 200"), first
        time.sleep(DEADLINE * 1.5)  # idle: keep-alive (30 s) keeps it; the deadline starts with a byte
        took, got = drip_until_closed(sock, b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n")
    assert SOON[0] <= took <= SOON[1] and got == b"", (took, got)


def test_a_body_sent_a_byte_at_a_time_is_408_json_within_the_deadline(server: ServeProcess) -> None:
    with connect(server) as sock:
        sock.sendall(HEAD + b"Content-Length: 100\r\n\r\n")
        took, got = drip_until_closed(sock, b'{"title": "' + b"x" * 80 + b'"}')
    assert SOON[0] <= took <= SOON[1], (took, got)
    headers = assert_json_error(response(got), 408, "request_timeout")
    assert headers["connection"] == "close"


def test_connections_beyond_the_cap_answer_503_json(server: ServeProcess) -> None:
    idle = [connect(server) for _ in range(CAP)]
    try:
        time.sleep(0.1)
        headers = assert_json_error(exchange(server, b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n"), 503, "server_busy")
        assert headers["retry-after"] == "1"
    finally:
        for sock in idle:
            sock.close()
    deadline = time.monotonic() + 5
    while (status := httpx.get(server.url + "/health", timeout=5).status_code) != 200 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert status == 200


# -- item 6: a broken Content-Length ----------------------------------------------------------------


@pytest.mark.parametrize(
    "length",
    [b"Content-Length: abc\r\n", b"Content-Length: -1\r\n", b"Content-Length: 2\r\nContent-Length: 3\r\n"],
)
def test_a_content_length_h11_refuses_answers_400_json(server: ServeProcess, length: bytes) -> None:
    answer = exchange(server, HEAD + length + b"\r\n{}")
    headers = assert_json_error(answer, 400, "invalid_http")
    assert headers["connection"] == "close"
    assert "Content-Length" in answer[2]["error"]["message"]


def test_the_apps_own_body_errors_answer_json(server: ServeProcess, tmp_path: Path) -> None:
    # Declared over the limit: refused before a byte of it is read.
    assert_json_error(exchange(server, HEAD + b"Content-Length: 99999999\r\n\r\n{"), 413, "too_large")
    # Chunked (no Content-Length to trust): counted while reading.
    chunk = b"1000\r\n" + b"x" * 4096 + b"\r\n"
    assert_json_error(exchange(server, HEAD + b"Transfer-Encoding: chunked\r\n\r\n" + chunk * 2), 413, "too_large")
    # Declared longer than what comes: the body deadline answers (the short-body case).
    assert_json_error(exchange(server, HEAD + b"Content-Length: 10\r\n\r\n{}"), 408, "request_timeout")
    # Declared shorter than what comes: the declared bytes are the body.
    assert_json_error(exchange(server, HEAD + b"Content-Length: 3\r\n\r\n{}}}}"), 422, "invalid_body")
