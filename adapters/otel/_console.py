"""A tracer provider that writes each finished span as one JSON line (the SDK's span JSON):
what ``turnlog otel export`` prints, for a collector's file receiver or a look by eye."""

from __future__ import annotations

from typing import IO

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor


def _line(span: ReadableSpan) -> str:
    return span.to_json(indent=None) + "\n"


def json_lines_provider(out: IO[str], *, service_name: str = "turnlog") -> TracerProvider:
    """An SDK tracer provider whose spans are written to ``out`` as JSON lines, as they end."""
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter(out=out, formatter=_line)))
    return provider
