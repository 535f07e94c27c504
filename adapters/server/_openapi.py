"""The service's OpenAPI 3.1 document (``GET /openapi.json``), built from its routes and structs.

Each route has one entry in ``OPERATIONS`` (``_operations``), keyed by ``(method, path)`` as the
route is declared: what it is for, its query parameters and headers, its request body and its
answers as msgspec structs, and the error codes it may answer with. The builder walks the app's routes and turns the
structs into JSON Schemas with ``msgspec.json.schema_components``, so the document cannot name a
field the code does not have. A route without an entry stops the build with a message saying
where to add one (``tests/embedding/test_openapi.py`` asks for the document of the real app).

Errors are the one shape of ``_errors`` (``{"error": {"status", "code", "message"}}``); each
status an operation answers with gets a schema whose ``code`` is one of the codes that status has
in ``ERROR_STATUS`` for that route. The answers' structs are in ``_answers`` (and, for routes of
their own modules, beside them: ``_listing``, ``_controls``); schemathesis checks every answer of
the running service against the document (``tests/embedding/test_schemathesis.py``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from ._answers import FRAMES, Document, Error
from ._errors import ERROR_STATUS
from ._operations import COMMON, OPERATIONS, SSE, Operation

# -- the builder ----------------------------------------------------------------------------------


class UndocumentedRoute(LookupError):
    """A route of the app has no entry in ``OPERATIONS``."""


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _error_schema(status: int, codes: Iterable[str]) -> dict[str, Any]:
    detail = {"properties": {"status": {"const": status}, "code": {"enum": sorted(set(codes))}}}
    return {"allOf": [_ref("Error"), {"properties": {"error": detail}}]}


def _status_of(code: str) -> int:
    # http_error is Starlette's own (an unknown route): not in the table.
    return 404 if code == "http_error" else ERROR_STATUS[code]


def _operation(method: str, path: str, op: Operation, params: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "operationId": f"{method.lower()}{path.replace('/', '_').replace('{', '').replace('}', '')}",
        "summary": op.summary,
        "description": op.description,
        "parameters": [
            {
                "name": name,
                "in": "path",
                "required": True,
                "description": "an id the service gave",
                "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]+$"},
            }
            for name in params
        ]
        + [{"name": p.name, "in": p.where, "description": p.description, "schema": dict(p.schema)} for p in op.params],
        "responses": {},
    }
    if op.body is not None:
        out["requestBody"] = {
            "required": op.body_required,
            "content": {"application/json": {"schema": _ref(op.body.__name__)}},
        }
    if op.auth:
        out["security"] = [{"bearer": []}]
    for status, answer in op.answers.items():
        if isinstance(answer, str):  # SSE, or another media type (GET .../export: JSON lines)
            content = {answer: {"schema": _sse_event() if answer == SSE else {"type": "string"}}}
        else:
            content = {"application/json": {"schema": _ref(answer.__name__)}}
        response: dict[str, Any] = {"description": op.summary, "content": content}
        if status in op.headers:
            response["headers"] = {
                name: {"description": text, "required": True, "schema": {"type": "string"}}
                for name, text in op.headers[status].items()
            }
        out["responses"][str(status)] = response
    codes = [*op.errors, *(COMMON if op.common else ()), *(("unauthorized",) if op.auth else ())]
    by_status: dict[int, list[str]] = {}
    for code in codes:
        by_status.setdefault(_status_of(code), []).append(code)
    for status, group in sorted(by_status.items()):
        response = {
            "description": "error: " + ", ".join(sorted(set(group))),
            "content": {"application/json": {"schema": _error_schema(status, group)}},
        }
        if status == 401:
            response["headers"] = {"www-authenticate": {"required": True, "schema": {"type": "string"}}}
        out["responses"][str(status)] = response
    return out


def _sse_event() -> dict[str, Any]:
    """One event of a text/event-stream answer, as a client parses it (``{"id", "event", "data"}``);
    ``data`` is JSON of the struct its event names. The ``retry:`` hint and ``: keep-alive``
    comments are not events."""
    branches = [
        {
            "if": {"properties": {"event": {"const": name}}, "required": ["event"]},
            "then": {
                "required": ["data", "id"] if with_id else ["data"],
                "properties": {
                    "data": {
                        "type": "string",
                        "contentMediaType": "application/json",
                        "contentSchema": _ref(struct.__name__),
                    }
                },
            },
        }
        for name, (struct, with_id) in FRAMES.items()
    ]
    return {
        "type": "object",
        "required": ["event"],
        "properties": {
            "event": {"enum": list(FRAMES)},
            "id": {"type": "string", "pattern": "^[0-9]+$", "description": "the version of the event it came from"},
            "data": {"type": "string"},
        },
        "allOf": branches,
    }


def _components() -> dict[str, Any]:
    structs: set[type[msgspec.Struct]] = {Error, Document, *(struct for struct, _ in FRAMES.values())}
    for op in OPERATIONS.values():
        structs |= {a for a in op.answers.values() if not isinstance(a, str)}
        if op.body is not None:
            structs.add(op.body)
    _, schemas = msgspec.json.schema_components(
        sorted(structs, key=lambda s: s.__name__), ref_template="#/components/schemas/{name}"
    )
    return schemas


#: Made at import: the package renames its exported structs' ``__module__`` afterwards, and msgspec
#: resolves a struct's annotations (``_bodies``' ``Temperature``) in its module's namespace.
SCHEMAS = _components()


def build(routes: Iterable[BaseRoute], *, title: str = "turnlog", version: str = "1") -> dict[str, Any]:
    """The document for these routes (the app's ``routes``)."""
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        if not isinstance(route, Route) or not route.include_in_schema:  # the console's page is not API
            continue
        for method in sorted(route.methods or ()):
            if method == "HEAD":  # Starlette answers HEAD for every GET
                continue
            op = OPERATIONS.get((method, route.path))
            if op is None:
                raise UndocumentedRoute(
                    f"route {method} {route.path} has no entry in OPERATIONS (adapters/server/_operations.py): "
                    "add one saying what it answers"
                )
            paths.setdefault(route.path, {})[method.lower()] = _operation(
                method, route.path, op, list(route.param_convertors)
            )
    return {
        "openapi": "3.1.0",
        "info": {
            "title": title,
            "version": version,
            "description": "An auditable chat backend: every turn an explicit state machine over an "
            "append-only, hash-chained event log. Errors: "
            '{"error": {"status", "code", "message"}}; the status comes from the code.',
        },
        "paths": paths,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "the service's Authenticator decides (turnlog serve --tokens: bearer tokens)",
                }
            },
        },
    }


async def openapi_json(request: Request) -> Response:
    """``GET /openapi.json``: built once per app, with the path the app is mounted at as its server."""
    state = request.app.state
    body = getattr(state, "openapi", None)
    if body is None:
        body = state.openapi = build(request.app.routes)
    root = request.scope.get("root_path", "")
    document = {**body, "servers": [{"url": root or "/"}]}
    return Response(msgspec.json.encode(document), media_type="application/json")
