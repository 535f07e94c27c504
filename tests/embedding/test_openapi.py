"""``GET /openapi.json`` describes every route of the app and every error it answers with, from the
one table of routes (``_openapi.OPERATIONS``) and the msgspec structs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from starlette.routing import Route
from turnlog.adapters.llm import EchoLLM
from turnlog.adapters.server import ERROR_STATUS, NewTurn, Principal, TokenAuth, TurnService, create_app
from turnlog.adapters.server._openapi import UndocumentedRoute, build
from turnlog.engine import InMemoryEventLog
from turnlog.projections import MemoryMessageStore


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    auth = TokenAuth({"tok": Principal("acme", subject="ann")})
    service = TurnService(InMemoryEventLog(), MemoryMessageStore(), EchoLLM(), authenticate=auth)
    app = create_app(service, manage_lifecycle=False)
    await service.start()
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://test") as c:
            c.app = app  # type: ignore[attr-defined]
            yield c
    finally:
        await service.stop()


async def document(client: httpx.AsyncClient) -> dict[str, Any]:
    r = await client.get("/openapi.json")
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    return r.json()


def operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(method.upper(), path, op) for path, ops in doc["paths"].items() for method, op in ops.items()]


async def test_every_route_of_the_app_is_in_the_document(client: httpx.AsyncClient) -> None:
    doc = await document(client)
    routes = {
        (method, route.path)
        for route in client.app.routes  # type: ignore[attr-defined]
        # The web console's page (GET /) is not API: left out on purpose (include_in_schema=False).
        if isinstance(route, Route) and route.include_in_schema
        for method in route.methods or ()
        if method != "HEAD"
    }
    assert {(method, path) for method, path, _ in operations(doc)} == routes
    for method, path, op in operations(doc):
        assert op["summary"] and op["description"], (method, path)
        assert any(status.startswith("2") for status in op["responses"]), (method, path)
    assert doc["openapi"] == "3.1.0" and doc["servers"] == [{"url": "/"}]


async def test_every_error_is_the_one_shape_with_the_codes_of_the_table(client: httpx.AsyncClient) -> None:
    doc = await document(client)
    error = doc["components"]["schemas"]["Error"]
    assert error["required"] == ["error"]
    assert doc["components"]["schemas"]["ErrorDetail"]["required"] == ["status", "code", "message"]
    seen: set[str] = set()
    for method, path, op in operations(doc):
        for status, response in op["responses"].items():
            schema = response["content"].get("application/json", {}).get("schema", {})
            if "allOf" not in schema:
                continue
            assert schema["allOf"][0] == {"$ref": "#/components/schemas/Error"}
            narrowed = schema["allOf"][1]["properties"]["error"]["properties"]
            assert narrowed["status"] == {"const": int(status)}, (method, path)
            for code in narrowed["code"]["enum"]:
                assert ERROR_STATUS.get(code, 404 if code == "http_error" else None) == int(status), code
                seen.add(code)
        if op.get("security"):
            assert "401" in op["responses"] and "www-authenticate" in op["responses"]["401"]["headers"]
        if path != "/openapi.json":
            assert "not_started" in seen and "503" in op["responses"]
    assert {"not_found", "unauthorized", "invalid_body", "turn_in_progress", "too_large", "forbidden"} <= seen


async def test_every_operation_that_asks_for_credentials_answers_401_without(client: httpx.AsyncClient) -> None:
    doc = await document(client)
    asked = [(m, p) for m, p, op in operations(doc) if op.get("security")]
    assert len(asked) >= 6
    for method, path in asked:
        r = await client.request(method, path.replace("{id}", "conv_x"), json={"message": "hi"})
        assert r.status_code == 401, (method, path, r.text)
        assert r.json()["error"]["code"] == "unauthorized" and r.headers["www-authenticate"] == "Bearer"
    for method, path, op in operations(doc):
        if not op.get("security"):
            assert (await client.request(method, path)).status_code == 200, (method, path)


async def test_bodies_are_the_msgspec_structs(client: httpx.AsyncClient) -> None:
    doc = await document(client)
    new_turn = doc["components"]["schemas"]["NewTurn"]
    assert list(new_turn["properties"]) == list(NewTurn.__struct_fields__) and new_turn["required"] == ["message"]
    assert new_turn["additionalProperties"] is False  # forbid_unknown_fields: a misspelt option is a 422
    turns = doc["paths"]["/conversations/{id}/turns"]["post"]
    assert turns["requestBody"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/NewTurn"}
    assert set(turns["responses"]["200"]["headers"]) == {"turnlog-turn-id", "turnlog-version"}
    events = turns["responses"]["200"]["content"]["text/event-stream"]["schema"]
    assert events["properties"]["event"]["enum"] == [
        "process_step",
        "done",
        "error",
        "approval_required",
        "approval_decided",
    ]


def test_a_route_without_an_entry_is_named() -> None:
    async def nothing(request: Any) -> None: ...

    with pytest.raises(UndocumentedRoute, match=r"GET /conversations/\{id\}/forks has no entry in OPERATIONS"):
        build([Route("/conversations/{id}/forks", nothing, methods=["GET"])])
