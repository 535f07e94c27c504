"""``turnlog otel export``: past conversations as OpenTelemetry GenAI spans, one JSON line each.

    turnlog otel export CONVERSATION... [--content]

Each ended turn becomes an ``invoke_agent`` span with its ``chat`` and ``execute_tool`` children,
the times the log recorded (``turnlog.adapters.otel``), printed as the OpenTelemetry SDK's span
JSON, one span a line, as each ends (children before their turn). The conversation's text is on
the spans only with ``--content``. It needs the ``otel`` extra (``pip install 'turnlog[otel]'``);
it reads the log (every read checked) and creates no database.
"""

from __future__ import annotations

import argparse
import sys

from turnlog.adapters.stores import open_store
from turnlog.engine import ConfigError

from ._common import Subparsers, add_command, unknown_conversation


async def cmd_export(args: argparse.Namespace) -> int:
    try:
        from turnlog.adapters.otel import export_spans, json_lines_provider
    except ImportError as exc:  # the otel extra is not installed
        raise ConfigError(f"turnlog otel needs the otel extra: pip install 'turnlog[otel]' ({exc})") from None
    provider = json_lines_provider(sys.stdout)
    store = await open_store(args.db, create=False)
    async with store:
        for conversation in args.conversations:
            if await store.log.last(conversation) is None:
                raise unknown_conversation(conversation, args.db)
            await export_spans(store.log, conversation, tracer_provider=provider, content=args.content)
    provider.shutdown()
    return 0


def register(subparsers: Subparsers) -> None:
    group = subparsers.add_parser("otel", help="OpenTelemetry GenAI spans of past conversations")
    actions = group.add_subparsers(dest="otel_command", required=True, metavar="ACTION")
    p = add_command(actions, "export", cmd_export, "print the spans of conversations' ended turns, one JSON line each")
    p.add_argument("conversations", nargs="+", metavar="CONVERSATION")
    p.add_argument("--content", action="store_true", help="put the conversation's text on the spans (off by default)")
