"""``turnlog replay`` and ``turnlog rebuild``: read an existing log.

    turnlog replay CONVERSATION [--after VERSION] [--format sse|transcript|events|messages] [--mode full|delta]
        print a conversation from its log: the SSE frames a client got, a transcript, the events
        (one JSON object a line) or the message rows folded from them
    turnlog rebuild
        recompute the message rows from the log

None of them creates a database: a missing SQLite file or an old schema is a one-line error.
"""

from __future__ import annotations

import argparse
import json

import msgspec
from turnlog.adapters.stores import open_store
from turnlog.engine import replay
from turnlog.projections import SseProjector, fold_rows, rebuild, render

from ._common import Subparsers, add_command, add_mode, out, unknown_conversation


async def cmd_replay(args: argparse.Namespace) -> int:
    log, _ = await open_store(args.db, create=False)
    async with log:
        if await log.last(args.conversation) is None:
            raise unknown_conversation(args.conversation, args.db)
        events = [rec async for rec in replay(log, args.conversation)]
        if args.format == "sse":
            proj = SseProjector(args.mode)
            for rec in events:
                frame = proj.frame(rec)
                if frame is not None and rec.version > args.after:
                    out(frame)
        elif args.format == "transcript":
            out(render(events))
        elif args.format == "events":
            for rec in events:
                if rec.version > args.after:
                    line = {k: v for k, v in msgspec.structs.asdict(rec).items() if k not in ("payload", "event")}
                    line["event"] = msgspec.to_builtins(rec.event)
                    out(json.dumps(line, ensure_ascii=False) + "\n")
        else:
            for row in fold_rows(args.conversation, events):
                out(json.dumps(msgspec.to_builtins(row), ensure_ascii=False) + "\n")
    return 0


async def cmd_rebuild(args: argparse.Namespace) -> int:
    log, messages = await open_store(args.db, create=False)
    async with log:
        n = await rebuild(log, messages)
    out(f"rebuilt {n} message rows from the log\n")
    return 0


def register(subparsers: Subparsers) -> None:
    p = add_command(subparsers, "replay", cmd_replay, "print a conversation from its log")
    p.add_argument("conversation")
    p.add_argument("--after", type=int, default=0, metavar="VERSION", help="only what follows this version")
    p.add_argument("--format", choices=("sse", "transcript", "events", "messages"), default="sse")
    add_mode(p)
    add_command(subparsers, "rebuild", cmd_rebuild, "recompute the message rows from the log")
