"""Span plans through the OpenTelemetry API: live, as turns end, and for past conversations.

Live: ``OtelObserver`` is a commit observer of a message store (``store.messages.observers``):
the row sink hands it each committed batch of a turn after the rows are saved, and when the
batch ends the turn its spans are emitted at once, with the times the log recorded (so a span
is exported when its turn has ended, never half-made). A turn taken up again by a process that
did not see its start (an approval decided later) is not emitted live: ``export_spans`` emits
it from the log.

Past: ``export_spans(log, conversation_id)`` reads the conversation (every read checks the hash
chain) and emits every ended turn: the same spans, attribute for attribute and time for time, as
the live observer emitted (``tests/otel`` compares them). Span and trace ids are the SDK's own
(random): a past export is a new trace of the same turn, linked to it by ``turnlog.turn.id``.

Spans go to ``tracer_provider`` (default: the global one the application configured, e.g. with
the OpenTelemetry SDK and an exporter). Only the OpenTelemetry API is imported here: installing
``turnlog[otel]`` brings the SDK.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from opentelemetry import trace
from turnlog.engine import EventLog, Recorded

from ._spans import SpanPlan, TurnSpans, nanoseconds

_KINDS = {"internal": trace.SpanKind.INTERNAL, "client": trace.SpanKind.CLIENT}
#: The instrumentation scope the spans carry.
SCOPE = "turnlog"


def _tracer(tracer_provider: Any | None) -> trace.Tracer:
    return trace.get_tracer(SCOPE, tracer_provider=tracer_provider)


def emit(tracer: trace.Tracer, plan: SpanPlan, parent: trace.Span | None = None) -> None:
    """Emit one span tree: the span, then its children under it, each with its own times."""
    context = trace.set_span_in_context(parent) if parent is not None else None
    span = tracer.start_span(
        plan.name,
        context=context,
        kind=_KINDS[plan.kind],
        attributes=plan.attributes,
        start_time=nanoseconds(plan.start),
    )
    if plan.error is not None:
        span.set_attribute("error.type", plan.error)
        span.set_status(trace.Status(trace.StatusCode.ERROR, plan.error))
    for child in plan.children:
        emit(tracer, child, span)
    span.end(end_time=nanoseconds(plan.end))


class _TurnTracing:
    """One turn's sink: folds its batches and emits the turn when a batch ends it."""

    __slots__ = ("spans", "tracer")

    def __init__(self, tracer: trace.Tracer, spans: TurnSpans) -> None:
        self.tracer = tracer
        self.spans = spans

    async def committed(self, records: Sequence[Recorded]) -> None:
        apply = self.spans.apply
        for rec in records:
            plan = apply(rec)
            if plan is not None:
                emit(self.tracer, plan)


class OtelObserver:
    """The live projection: add it to a message store's observers
    (``store.messages.observers = [OtelObserver()]``) and every turn run through that store
    emits its spans when it ends. ``content``: put the conversation's text on the spans (off by
    default, as the conventions ask)."""

    def __init__(self, tracer_provider: Any | None = None, *, content: bool = False) -> None:
        self.tracer = _tracer(tracer_provider)
        self.content = content

    def sink(self, conversation_id: str, version: int) -> _TurnTracing:
        return _TurnTracing(self.tracer, TurnSpans(conversation_id, content=self.content))


async def export_spans(
    log: EventLog, conversation_id: str, *, tracer_provider: Any | None = None, content: bool = False
) -> int:
    """Emit the spans of every ended turn of a past conversation; returns how many turns."""
    tracer = _tracer(tracer_provider)
    spans = TurnSpans(conversation_id, content=content)
    turns = 0
    async for rec in log.iter_stream(conversation_id):
        plan = spans.apply(rec)
        if plan is not None:
            emit(tracer, plan)
            turns += 1
    return turns
