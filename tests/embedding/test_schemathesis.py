"""schemathesis against the service's own ``/openapi.json``, served by real uvicorn on 127.0.0.1:
generated requests for every operation, valid and invalid, never get a 5xx, and every answer
(status, content type, headers, body, each SSE event's data) is one the document describes.

The service runs on its own (``create_app`` with a function opening it), not under a host: an
invalid path (an id with a newline) may not reach a mounted service at all, and the host's own
404 is not the service's to describe. ``test_fastapi.py`` runs it under a FastAPI host. Bounded
so the module stays within ~30 s on a 2-core machine."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from turnlog.adapters.llm import EchoLLM
from turnlog.adapters.server import Principal, ServerConfig, TokenAuth, TurnService, create_app
from turnlog.adapters.stores import open_store

from .conftest import free_port
from .host_app import host_tools

TOKEN = "tok-schemathesis"
AUTH = {"authorization": f"Bearer {TOKEN}"}
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
]


@pytest.fixture(scope="module")
def service_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The service (bearer tokens, the echo model, the host's tools) on uvicorn in a thread."""
    db = tmp_path_factory.mktemp("schemathesis") / "chat.db"
    auth = TokenAuth({TOKEN: Principal("acme", level=10, subject="tester")})

    @contextlib.asynccontextmanager
    async def open_service() -> AsyncIterator[TurnService]:
        async with await open_store(db) as (log, messages):
            # usage_level: the tester reads GET /usage too (its answers checked, not only its 403).
            config = ServerConfig(usage_level=10)
            yield TurnService(log, messages, EchoLLM(), tools=host_tools(), authenticate=auth, config=config)

    config = uvicorn.Config(
        create_app(open_service), host="127.0.0.1", port=free_port(), log_level="error", lifespan="on", ws="none"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{config.port}"
    finally:
        server.should_exit = True
        thread.join(30)


def run_operation(operation: Any, mode: GenerationMode, url: str, examples: int, **fixed: Any) -> None:
    """``examples`` generated requests for one operation, each checked against the document."""

    @given(case=operation.as_strategy(generation_mode=mode, **fixed))
    @settings(max_examples=examples, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    def check(case: schemathesis.Case) -> None:
        # Whatever Authorization the case was generated with: 401 for every operation is
        # test_openapi.py's (a valid token here lets the requests reach the service).
        case.headers = {**(case.headers or {}), **AUTH}
        case.call_and_validate(base_url=url, checks=CHECKS, timeout=20)

    check()


def test_every_answer_is_documented_and_none_is_a_server_error(service_url: str) -> None:
    schema = schemathesis.openapi.from_url(f"{service_url}/openapi.json")
    base = service_url
    # A real conversation, so the {id} operations answer more than 404 (a turn, its rows, ...).
    created = httpx.post(f"{base}/conversations", json={}, headers=AUTH)
    assert created.status_code == 201, created.text
    real = {"path_parameters": {"id": created.json()["id"]}}
    operations = [result.ok() for result in schema.get_all_operations()]
    # Every operation but the document's own (schemathesis leaves the schema's URL out).
    doc = httpx.get(f"{base}/openapi.json").json()
    documented = {f"{m.upper()} {p}" for p, ms in doc["paths"].items() for m in ms if p != "/openapi.json"}
    assert {o.label for o in operations} == documented and len(documented) >= 7
    for operation in operations:
        run_operation(operation, GenerationMode.POSITIVE, base, 25)
        described = doc["paths"][operation.path][operation.method.lower()]
        if described["parameters"] or "requestBody" in described:  # something to get wrong
            run_operation(operation, GenerationMode.NEGATIVE, base, 15)
        if "{id}" in operation.path:
            run_operation(operation, GenerationMode.POSITIVE, base, 15, **real)
