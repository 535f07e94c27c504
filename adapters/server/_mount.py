"""Embedding: the service mounted in an existing Starlette or FastAPI app, run by the host's lifespan.

Starlette never runs a mounted app's lifespan, so ``host.mount("/chat", create_app(service))``
alone would serve a service nobody started: no recovery of the turns a crash left live (each of
those conversations would refuse every new turn with 409), no sweeper, no shutdown grace. That
app answers every request with 503 ``not_started`` saying so. The one way to embed it is

    chat = mount(app, "/chat", open_service)

which mounts the service's app at ``/chat`` and wraps the host's own lifespan: the host's runs
first (its startup, its ``state``), then the service is opened (``open_service`` may be an
``asynccontextmanager`` that opens the store and yields a ``TurnService``, or a ready service),
started (recovery, then the sweeper) and, at shutdown, stopped (running turns get
``shutdown_grace``, then end as cancelled) before the host's lifespan ends. Replacing the host
router's ``lifespan_context`` after ``mount`` undoes it (and the 503 says so).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from turnlog.engine import ConfigError

from ._app import ServiceSource, build_app, running


def mount(app: Any, path: str, service: ServiceSource, *, name: str | None = None) -> Starlette:
    """Mount the service at ``path`` of ``app`` (a Starlette or FastAPI app) and run it with the
    host's lifespan. Returns the mounted app (its ``state.service`` is the service once started).
    Locations the service answers with (``201 Location``) and its ``/openapi.json`` name ``path``."""
    router = getattr(app, "router", None)
    if router is None or not hasattr(router, "lifespan_context") or not hasattr(app, "mount"):
        raise ConfigError(f"mount() needs a Starlette or FastAPI app, not a {type(app).__name__}")
    if not path.startswith("/") or path.endswith("/"):
        raise ConfigError(f"mount path {path!r} must start with '/' and not end with one (e.g. '/chat')")
    sub = build_app(service, lifespan=False)
    host_lifespan = router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(host: Any) -> AsyncIterator[Any]:
        # The host's first: the service's tools or authenticator may use what it opens.
        async with host_lifespan(host) as state, running(sub, service):
            yield state

    router.lifespan_context = lifespan
    app.mount(path, sub, name=name)
    return sub
