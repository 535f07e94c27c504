"""The web console driven by a real headless Chromium (selenium + Debian's chromium and chromedriver).

One uvicorn server (a host app with the service mounted at ``/chat``), one TCP proxy in front of it and one browser per module: the server and the
proxy run on an event loop in a thread of their own (``Backend.call`` runs a coroutine there), the
browser talks only to the proxy, which can cut every open connection mid-stream (``Proxy.cut``).

Without chromium, chromedriver or selenium the tests are skipped saying which is missing, except
under ``CI=true``, where that is a failure (``make test`` installs them: see the Makefile).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import threading
from collections.abc import Coroutine, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from starlette.applications import Starlette
from turnlog.adapters.llm import EchoLLM
from turnlog.adapters.server import Principal, ServerConfig, TokenAuth, TurnService, mount
from turnlog.adapters.stores import open_store
from turnlog.engine import ToolRegistry

from ..server.conftest import serving_app

T = TypeVar("T")

CHROMIUM = os.environ.get("TURNLOG_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("TURNLOG_CHROMEDRIVER", "/usr/bin/chromedriver")
#: Seconds any DOM condition may take (a turn streams in ~1-3 s).
WAIT = 15

TOKENS = {
    "tok-ann": Principal("acme", level=1, subject="ann"),
    "tok-auditor": Principal("acme", level=10, subject="audrey"),
}
ANN = {"authorization": "Bearer tok-ann"}
#: The service is mounted in a host app at this path (``mount``): the console's page is ``/chat/``.
MOUNT = "/chat"
AUDITOR = {"authorization": "Bearer tok-auditor"}


def _missing() -> str | None:
    for path in (CHROMIUM, CHROMEDRIVER):
        if not (Path(path).is_file() or shutil.which(path)):
            return f"{path} is missing (apt-get install chromium chromium-driver; `make test` does it)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[dev]')"
    return None


def tools() -> ToolRegistry:
    registry = ToolRegistry()

    def lookup(key: str) -> dict[str, str]:
        """Look a key up."""
        return {"key": key, "value": key.upper()}

    def delete_file(path: str) -> str:
        """Delete a file (asks a person first)."""
        return f"deleted {path}"

    registry.register(lookup)
    registry.register(delete_file, requires_approval=True)
    return registry


class Proxy:
    """A TCP proxy on 127.0.0.1 that forwards to the server and can cut every open connection."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.connections: set[asyncio.StreamWriter] = set()
        #: The first bytes of every request the browser sent (request line and headers), in order.
        self.requests: list[bytes] = []
        self.port = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        self.cut_now()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def cut_now(self) -> int:
        """Reset every open connection (both sides); returns how many were cut."""
        cut = list(self.connections)
        for writer in cut:
            writer.transport.abort()
        self.connections.clear()
        return len(cut)

    async def cut(self) -> int:
        return self.cut_now()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            writer.transport.abort()
            return
        self.connections |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter, record: bool) -> None:
            with contextlib.suppress(OSError, asyncio.CancelledError):
                while data := await src.read(65536):
                    if record and data[:4] in (b"GET ", b"POST", b"PUT ", b"DELE", b"PATC"):
                        self.requests.append(data.split(b"\r\n\r\n", 1)[0])
                    dst.write(data)
                    await dst.drain()
            # One side ended or was cut: end the other too (a cut is a reset, not a clean close).
            dst.transport.abort()

        try:
            await asyncio.gather(pipe(reader, up_writer, True), pipe(up_reader, writer, False))
        finally:
            self.connections.discard(writer)
            self.connections.discard(up_writer)


class Backend:
    """The server (SQLite store, EchoLLM streaming slowly) and the proxy, on a loop in a thread."""

    def __init__(self, db: Path, *, delay: float) -> None:
        self.db = db
        self.delay = delay
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="browser-backend", daemon=True)
        self.thread.start()
        self._stop: asyncio.Event | None = None
        self._done: Future[None] | None = None

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def start(self) -> None:
        ready: Future[None] = Future()
        self._done = asyncio.run_coroutine_threadsafe(self._serve(ready), self.loop)
        ready.result(30)

    async def _serve(self, ready: Future[None]) -> None:
        try:
            self.log, self.messages = await open_store(self.db)
            self.service = TurnService(
                self.log,
                self.messages,
                EchoLLM(delay=self.delay),
                tools=tools(),
                authenticate=TokenAuth(TOKENS),
                config=ServerConfig(recover_grace=0.0, heartbeat=1.0, retry_ms=500),
            )
            # Served under a mount path, as a host app embeds it: the console's URLs are relative.
            host = Starlette()
            mount(host, MOUNT, self.service)
            async with serving_app(host) as self.server_port:
                self.proxy = Proxy(self.server_port)
                await self.proxy.start()
                self.url = f"http://127.0.0.1:{self.proxy.port}{MOUNT}"
                self.direct = f"http://127.0.0.1:{self.server_port}{MOUNT}"
                self._stop = asyncio.Event()
                ready.set_result(None)
                await self._stop.wait()
                await self.proxy.stop()
        except BaseException as exc:
            if not ready.done():
                ready.set_exception(exc)
            raise
        await self.log.close()

    def close(self) -> None:
        if self._stop is not None:
            self.loop.call_soon_threadsafe(self._stop.set)
        if self._done is not None:
            self._done.result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()

    def api(self) -> httpx.Client:
        """A client straight to the server (not through the proxy): the tests' own reads."""
        return httpx.Client(base_url=self.direct, timeout=30)


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backend]:
    why = _missing()
    if why is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"browser tests need chromium: {why}")
        pytest.skip(f"browser tests need chromium: {why}")
    b = Backend(tmp_path_factory.mktemp("browser") / "turnlog.db", delay=0.03)
    b.start()
    try:
        yield b
    finally:
        b.close()


@pytest.fixture(scope="module")
def browser(backend: Backend) -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1280,900",
        "--disable-extensions",
        "--no-first-run",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.set_page_load_timeout(WAIT)
    try:
        yield driver
    finally:
        driver.quit()
