"""``turnlog usage``: tokens and cost from the usage ledger.

    turnlog usage [--by conversation|subject|tenant|model|day] [--tenant T] [--since DAY|TIME]
                  [--until DAY|TIME] [--prices FILE] [--format table|json] [--rebuild]

One line per group (by conversation by default): model calls, prompt tokens (and how many of them
the provider read from its cache), completion tokens (and how many were reasoning), total tokens
and the cost at the price table's prices (``--prices`` or ``$TURNLOG_PRICES``: JSON or TOML, see
``turnlog.projections.PriceTable``), then a line of totals. A group with a model the table does
not price shows ``?`` (JSON: ``"cost": null`` and the model under ``unpriced``). ``--since`` is
inclusive, ``--until`` exclusive, both on the time the usage was recorded (UTC). Without
``--tenant`` every tenant is counted: the operator's view (the server's ``GET /usage`` never
crosses a tenant).

It reads the ledger the row sink keeps beside the log (``turnlog_usage``): a ``GROUP BY`` over
the range, never a scan of the log. ``--rebuild`` first recomputes the ledger from the log (a
log written before the ledger existed). It creates no database.
"""

from __future__ import annotations

import argparse
import os
from decimal import Decimal

import msgspec
from turnlog.adapters.stores import open_store
from turnlog.engine import ConfigError
from turnlog.projections import (
    USAGE_DIMENSIONS,
    PriceTable,
    UsageQuery,
    UsageReport,
    UsageTotal,
    fold_usage,
    usage_report,
)

from ._common import Subparsers, add_command, out

#: Names the price table once for every ``turnlog usage`` (``--prices`` still wins).
PRICES_VARIABLE = "TURNLOG_PRICES"
_COLUMNS = ("calls", "prompt", "cached", "completion", "reasoning", "total", "cost")


def _cells(r: UsageTotal) -> list[str]:
    return [
        str(r.calls),
        str(r.prompt_tokens),
        str(r.cached_tokens),
        str(r.completion_tokens),
        str(r.reasoning_tokens),
        str(r.total_tokens),
        "?" if r.cost is None else r.cost,
    ]


def table(report: UsageReport) -> str:
    """The report as aligned text: a header, one line per group, a line of totals."""
    head = [report.by, *_COLUMNS]
    lines = [[(f"{r.tenant}/{r.key}" if report.by == "subject" else r.key) or '""', *_cells(r)] for r in report.rows]
    costs = [r.cost for r in report.rows]
    total = UsageTotal(
        "total",
        "",
        [],
        *(sum(getattr(r, f) for r in report.rows) for f in UsageTotal.__struct_fields__[3:9]),
        cost=None if None in costs else format(sum((Decimal(c) for c in costs if c), Decimal(0)).normalize(), "f"),
    )
    lines.append(["total", *_cells(total)])
    widths = [max(len(row[i]) for row in [head, *lines]) for i in range(len(head))]
    text = [
        "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True)))
        for row in [head, *lines]
    ]
    unpriced = sorted({m for r in report.rows for m in r.unpriced})
    if unpriced:
        text.append(f"? no price for: {', '.join(unpriced)}")
    if report.currency:
        text.append(f"cost in {report.currency}")
    return "\n".join(text) + "\n"


async def cmd_usage(args: argparse.Namespace) -> int:
    query = UsageQuery(by=args.by, tenant=args.tenant, since=args.since, until=args.until)
    prices_file = args.prices or os.environ.get(PRICES_VARIABLE) or None
    prices = PriceTable.load(prices_file) if prices_file else None
    store = await open_store(args.db, create=False)
    async with store:
        ledger = store.usage
        if ledger is None:
            raise ConfigError(f"the store at {args.db} keeps no usage ledger")
        if args.rebuild:
            await ledger.clear()
            for conversation_id in await store.log.streams():
                entries = fold_usage(conversation_id, [rec async for rec in store.log.iter_stream(conversation_id)])
                await ledger.save(entries)
        report = await usage_report(ledger, query, prices)
    out(msgspec.json.encode(report) + b"\n" if args.format == "json" else table(report))
    return 0


def register(subparsers: Subparsers) -> None:
    p = add_command(subparsers, "usage", cmd_usage, "tokens and cost per conversation, subject, tenant, model or day")
    p.add_argument("--by", choices=USAGE_DIMENSIONS, default="conversation", help="group by (default conversation)")
    p.add_argument("--tenant", default=None, help="only this tenant's usage (default: every tenant)")
    p.add_argument("--since", default=None, metavar="DAY|TIME", help="from this UTC day or time (inclusive)")
    p.add_argument("--until", default=None, metavar="DAY|TIME", help="up to this UTC day or time (exclusive)")
    p.add_argument(
        "--prices", default=None, metavar="FILE", help=f"price table, JSON or TOML (default: ${PRICES_VARIABLE})"
    )
    p.add_argument("--format", choices=("table", "json"), default="table", help="table (default) or json")
    p.add_argument("--rebuild", action="store_true", help="recompute the ledger from the log first")


# -- turnlog serve's flags for the ledger's prices and the spans --------------------------------


def add_serve_flags(parser: argparse.ArgumentParser) -> None:
    """``turnlog serve``: ``--prices``, ``--usage-level``, ``--otel``, ``--otel-content``."""
    g = parser.add_argument_group("usage and tracing")
    g.add_argument(
        "--prices",
        metavar="FILE",
        help=f"price table (JSON or TOML) GET /usage prices with (default: ${PRICES_VARIABLE})",
    )
    g.add_argument(
        "--usage-level", type=int, metavar="N", help="level that reads its tenant's GET /usage (default 100)"
    )
    g.add_argument(
        "--otel",
        action="store_true",
        help="emit each turn's OpenTelemetry GenAI spans as it ends, to the global tracer provider "
        "(run under opentelemetry-instrument to export them; the otel extra)",
    )
    g.add_argument("--otel-content", action="store_true", help="with --otel: put the conversation's text on the spans")


def serve_settings(args: argparse.Namespace) -> dict[str, object]:
    """The ``ServerConfig`` fields these flags set (absent flags keep the config's defaults)."""
    settings: dict[str, object] = {}
    prices_file = getattr(args, "prices", None) or os.environ.get(PRICES_VARIABLE) or None
    if prices_file:
        settings["prices"] = PriceTable.load(prices_file)
    if getattr(args, "usage_level", None) is not None:
        settings["usage_level"] = args.usage_level
    return settings


def attach_otel(args: argparse.Namespace, messages: object) -> None:
    """With ``--otel``: the live span projection observes the rows' sink of ``messages``."""
    if not getattr(args, "otel", False):
        if getattr(args, "otel_content", False):
            raise ConfigError("--otel-content needs --otel")
        return
    try:
        from turnlog.adapters.otel import OtelObserver
    except ImportError as exc:
        raise ConfigError(f"--otel needs the otel extra: pip install 'turnlog[otel]' ({exc})") from None
    messages.observers = [OtelObserver(content=args.otel_content)]  # type: ignore[attr-defined]
