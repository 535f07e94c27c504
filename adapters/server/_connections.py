"""How ``turnlog serve`` runs uvicorn: deadlines to read a request, a cap on connections, and JSON
for the requests uvicorn refuses before any app sees them.

uvicorn's h11 protocol arms no timer while a request's head arrives: its keep-alive timer starts
when an answer ends and the next byte cancels it, and a new connection has none. A client sending
a byte every few seconds (or nothing at all) held its connection for ever: 400 of them were all
still open after 65 s. ``uvicorn_config`` runs uvicorn's own h11 protocol with three additions;
none parses HTTP (h11 does) and none touches the app's requests once h11 has read their heads:

- **A deadline for the head** (``ServerConfig.header_timeout``): from a connection's opening, or
  from the first byte after an answer, the next request's head (request line and headers) must
  have arrived within it, else the connection is closed (there is no request to answer yet). The
  body's deadline is the app's own (``read_body``, 408 ``request_timeout``), so a mounted service
  keeps it; bytes of a body the app did not read, after its answer, count as waiting here. Idle
  connections between requests close after ``keep_alive`` (uvicorn's ``timeout_keep_alive``).
- **A cap** (``max_connections``): a request on a connection beyond that many open ones (SSE
  streams and half-sent heads count) answers 503 ``server_busy`` in JSON with ``Retry-After``, and
  the connection is closed. uvicorn's ``limit_concurrency`` does the same in plain text, so it is
  not used. The deadline is what frees connections that never send a request.
- **JSON for a request h11 refuses** (a request line or header it cannot parse: a
  ``Content-Length`` that is not a number, two that disagree, a head over h11's 16 KiB): uvicorn
  answers these in ``send_400_response`` before a request exists for any app to see, in plain
  text; here that 400 is ``{"error": {"status": 400, "code": "invalid_http", ...}}``, sent as
  uvicorn sends its own (h11 events) and the connection closed. Starlette never sees these
  requests, so a service on another server answers them as that server does.

uvicorn's protocol class is its extension point (``uvicorn.Config(http=...)``); what is used of it
here (``cycle``, ``on_response_complete``, ``send_400_response``) is the same from 0.30 to 0.54.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from typing import Any

import uvicorn
from starlette.types import Receive, Scope, Send

# h11 as uvicorn's protocol imports it: the events uvicorn itself writes its 400 with (turnlog does
# not depend on h11 directly).
from uvicorn.protocols.http import h11_impl

from ._config import ServerConfig
from ._errors import error_response

logger = logging.getLogger("turnlog.server")


#: Where ``uvicorn_config`` leaves the limits for worker processes (``WorkerH11Protocol``).
LIMITS_ENV = "TURNLOG_SERVER_LIMITS"


def uvicorn_config(app: Any, config: ServerConfig, **options: Any) -> uvicorn.Config:
    """uvicorn's ``Config`` serving ``app`` with ``config``'s connection limits: ``header_timeout``,
    ``keep_alive``, ``max_connections`` (``options``: uvicorn's own, host, port, log_level...).
    ``app`` may be an import string (uvicorn's ``workers``, ``factory``): each worker process
    then runs ``WorkerH11Protocol`` with the same limits.
    WebSockets are off unless ``options`` asks (``ws=``): the service has no WebSocket route."""
    options.setdefault("ws", "none")
    if isinstance(app, str):
        # Worker processes (``workers=N``, ``turnlog serve --workers N``): uvicorn spawns each one
        # and imports the app and the protocol there by name, so a class made here cannot go
        # along: the limits the protocol needs travel in the environment the workers inherit.
        os.environ[LIMITS_ENV] = json.dumps(
            {"header_timeout": config.header_timeout, "max_connections": config.max_connections}
        )
        return uvicorn.Config(
            app, http=f"{__name__}:WorkerH11Protocol", timeout_keep_alive=config.keep_alive, **options
        )
    protocol = type("TurnlogH11Protocol", (LimitedH11Protocol,), {"limits": config})
    return uvicorn.Config(app, http=protocol, timeout_keep_alive=config.keep_alive, **options)  # type: ignore[arg-type]


class LimitedH11Protocol(h11_impl.H11Protocol):
    """uvicorn's h11 protocol with a deadline for each request's head, a cap on connections and
    JSON for the requests h11 refuses (``limits``: set per server by ``uvicorn_config``)."""

    limits = ServerConfig()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        self._served = self.app
        self.app = self._capped

    # -- the head's deadline ----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._waiting():
            if self._deadline is None:
                self._arm()  # the first byte of a head (or of a body nobody reads): the clock starts
        else:
            self._disarm()  # h11 has the head: the app runs the request

    def on_response_complete(self) -> None:
        self._disarm()  # the wait for the next request starts with its first byte (keep-alive until then)
        super().on_response_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _waiting(self) -> bool:
        """No request of this connection is running: the server waits for the client."""
        return self.cycle is None or self.cycle.response_complete

    def _arm(self) -> None:
        self._disarm()
        if self.limits.header_timeout > 0 and not self.transport.is_closing():
            self._deadline = self.loop.call_later(self.limits.header_timeout, self._deadline_passed)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _deadline_passed(self) -> None:
        self._deadline = None
        # An upgraded connection (a WebSocket) has another protocol now: not ours to close.
        if self._waiting() and not self.transport.is_closing() and self.transport.get_protocol() is self:
            # Debug only: under a slow-client attack one line per connection would be the flood.
            logger.debug("closed a connection from %s: no request within %g s", self.client, self.limits.header_timeout)
            self.transport.close()

    # -- the cap ------------------------------------------------------------------------------------

    async def _capped(self, scope: Scope, receive: Receive, send: Send) -> None:
        most = self.limits.max_connections
        if most and len(self.connections) > most:
            logger.warning(
                "refused a request: %d connections are open (max_connections %d)", len(self.connections), most
            )
            message = f"the server holds its {most} connections (max_connections): retry later"
            busy = error_response(503, "server_busy", message, {"retry-after": "1", "connection": "close"})
            await busy(scope, receive, send)
            return
        await self._served(scope, receive, send)

    # -- what uvicorn answers before any app --------------------------------------------------------

    def send_400_response(self, msg: str) -> None:
        h11 = h11_impl.h11
        message = f"{msg.rstrip('.')}: the request line or a header (such as Content-Length) is not valid HTTP/1.1"
        body = error_response(400, "invalid_http", message).body
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ]
        for event in (h11.Response(status_code=400, headers=headers, reason=b"Bad Request"), h11.Data(data=body)):
            self.transport.write(self.conn.send(event))
        self.transport.write(self.conn.send(h11.EndOfMessage()))
        self.transport.close()


class WorkerH11Protocol(LimitedH11Protocol):
    """``LimitedH11Protocol`` in a worker process of ``uvicorn_config(import_string, config,
    workers=N)``: its limits are the parent's, read from the environment on first use."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        cls = type(self)
        if cls.limits is LimitedH11Protocol.limits and LIMITS_ENV in os.environ:
            cls.limits = ServerConfig(**json.loads(os.environ[LIMITS_ENV]))
        super().__init__(*args, **kwargs)
