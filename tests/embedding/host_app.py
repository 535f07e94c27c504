"""A FastAPI application of its own (its routes, its lifespan, its users, its tools) that embeds
turnlog under ``/chat`` the one documented way: ``mount(app, "/chat", open_chat)``.

The tests import ``build`` (in-process uvicorn) or run this file (``python host_app.py DB PORT``,
a process they can kill mid-turn).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import AsyncIterator
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from turnlog.adapters.llm import EchoLLM
from turnlog.adapters.server import Principal, ServerConfig, TurnService, mount
from turnlog.adapters.stores import open_store
from turnlog.engine import ToolRegistry

#: The host's own users: an API key header, not turnlog's tokens.
USERS = {"key-ann": Principal("acme", level=1, subject="ann"), "key-bob": Principal("acme", level=1, subject="bob")}
ANN = {"x-api-key": "key-ann"}


def host_auth(request: Request) -> Principal | None:
    return USERS.get(request.headers.get("x-api-key", ""))


def host_tools() -> ToolRegistry:
    tools = ToolRegistry()

    @tools.tool(parameters={"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]})
    async def shout(text: str) -> str:
        """The host's own tool."""
        return text.upper() + "!"

    return tools


def build(
    db: str, *, delay: float = 0.0, recover_grace: float = 0.0, shutdown_grace: float = 10.0, auth: Any = host_auth
) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        app.state.host_events = ["host started"]
        yield {"greeting": "hello from the host"}
        app.state.host_events.append("host stopped")

    app = FastAPI(lifespan=lifespan)

    @app.get("/hello")
    async def hello(request: Request) -> dict[str, Any]:
        return {"greeting": request.state.greeting, "events": app.state.host_events}

    @contextlib.asynccontextmanager
    async def open_chat() -> AsyncIterator[TurnService]:
        async with await open_store(db) as (log, messages):
            config = ServerConfig(recover_grace=recover_grace, shutdown_grace=shutdown_grace)
            yield TurnService(log, messages, EchoLLM(delay=delay), tools=host_tools(), authenticate=auth, config=config)

    mount(app, "/chat", open_chat)
    return app


if __name__ == "__main__":
    db, port, delay = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    uvicorn.run(build(db, delay=delay), host="127.0.0.1", port=port, log_level="warning", lifespan="on")
