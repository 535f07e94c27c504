"""Errors over HTTP: every turnlog error answers by its stable code, with the status of the table."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from turnlog.adapters.llm import EchoLLM
from turnlog.adapters.server import ERROR_STATUS, TurnService, create_app
from turnlog.engine import (
    IllegalEvent,
    InMemoryEventLog,
    LogError,
    RequestError,
    SchemaError,
    StoreUnavailable,
    TurnlogError,
)
from turnlog.projections import MemoryMessageStore


class FailingLog(InMemoryEventLog):
    """A log whose every ``last`` (the health check) raises the error the test sets."""

    def __init__(self) -> None:
        super().__init__()
        self.error: Exception | None = None

    async def last(self, stream_id: str) -> Any:
        if self.error is not None:
            raise self.error
        return await super().last(stream_id)


class NewKindOfLogError(LogError):
    code = "brand_new_log_error"


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (StoreUnavailable("the database is down"), 503, "store_unavailable"),
        (SchemaError("run `turnlog db upgrade`"), 503, "schema_out_of_date"),
        (NewKindOfLogError("a log error the table does not know"), 503, "brand_new_log_error"),
        (IllegalEvent(stream_id="c", version=3, event_type="TextDelta", state="idle"), 500, "illegal_event"),
        (TurnlogError("anything else"), 500, "turnlog_error"),
        (RequestError("no_such_code", "a code the table does not know"), 500, "no_such_code"),
        (RequestError("too_large", "too big", {"x-limit": "10"}), 413, "too_large"),
    ],
)
async def test_turnlog_errors_answer_by_code(
    error: Exception, status: int, code: str, caplog: pytest.LogCaptureFixture
) -> None:
    log = FailingLog()
    service = TurnService(log, MemoryMessageStore(), EchoLLM())
    app = create_app(service, manage_lifecycle=False)
    await service.start()  # the caller's job with manage_lifecycle=False (503 not_started otherwise)
    log.error = error
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://test") as client:
            r = await client.get("/health")
    finally:
        await service.stop()
    assert r.status_code == status
    assert r.json() == {"error": {"status": status, "code": code, "message": str(error)}}
    if isinstance(error, RequestError):
        assert all(r.headers[k] == v for k, v in error.headers.items())
    # Server faults are logged for the operator; client errors are not.
    assert ("GET /health" in caplog.text) == (status >= 500)


def test_the_table_maps_the_codes_the_service_answers_with() -> None:
    assert {code: ERROR_STATUS[code] for code in ("unauthorized", "not_found", "too_large", "invalid_body")} == {
        "unauthorized": 401,
        "not_found": 404,
        "too_large": 413,
        "invalid_body": 422,
    }
    assert ERROR_STATUS["turn_in_progress"] == ERROR_STATUS["provider_unavailable"] == 409
    assert ERROR_STATUS["store_unavailable"] == 503
