"""The ``turnlog`` command.

    turnlog demo [--db PATH] [--mode full|delta] [--llm scripted|openai]
    turnlog replay CONVERSATION [--after VERSION] [--format sse|transcript|events|messages] [--mode full|delta]
    turnlog verify [CONVERSATION]
    turnlog rebuild

``--db`` picks the log: a SQLite file path (default ``./turnlog.db``) or a ``postgresql://`` URL.
Errors print one line on stderr and exit non-zero; no traceback.
Other commands (``db``, ``serve``, ``recover``, ``chat``, ``play``) register from their own modules.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import os
import sys
from collections.abc import Awaitable, Callable, Sequence

import msgspec
from turnlog.adapters.stores import open_store
from turnlog.engine import TurnlogError, replay, verify
from turnlog.projections import SseProjector, fold_rows, rebuild, render

DEFAULT_DB = "turnlog.db"

# Subcommand modules: each exposes register(subparsers). A missing one (an optional extra that is
# not installed) is skipped, never fatal.
PLUGINS = ("turnlog.adapters.cli._db", "turnlog.adapters.cli._serve", "turnlog.adapters.cli._llm")


def out(text: str | bytes) -> None:
    if isinstance(text, bytes):
        sys.stdout.buffer.write(text)
    else:
        sys.stdout.write(text)
    sys.stdout.flush()


async def cmd_replay(args: argparse.Namespace) -> int:
    log, _ = await open_store(args.db, create=False)
    async with log:
        if await log.last(args.conversation) is None:
            raise TurnlogError(f"unknown conversation {args.conversation!r} in {args.db}")
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


async def cmd_verify(args: argparse.Namespace) -> int:
    log, _ = await open_store(args.db, create=False)
    async with log:
        report = await verify(log, args.conversation)
    if report.ok:
        out(f"ok: {report.streams} conversation(s), {report.events} events, hash chain intact\n")
        return 0
    for broken in report.broken:
        print(f"turnlog: verify: {broken}", file=sys.stderr)
    return 1


async def cmd_rebuild(args: argparse.Namespace) -> int:
    log, messages = await open_store(args.db, create=False)
    async with log:
        n = await rebuild(log, messages)
    out(f"rebuilt {n} message rows from the log\n")
    return 0


async def cmd_demo(args: argparse.Namespace) -> int:
    from ._demo import run_demo

    return await run_demo(args, open_store, out)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="turnlog", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, fn: Callable[[argparse.Namespace], Awaitable[int]], help_: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_)
        p.add_argument("--db", default=DEFAULT_DB, help=f"SQLite file or postgresql:// URL (default {DEFAULT_DB})")
        p.set_defaults(handler=fn)
        return p

    p = add("demo", cmd_demo, "run a scripted two-turn conversation, replay it and verify it")
    p.add_argument("--mode", choices=("full", "delta"), default="delta")
    p.add_argument(
        "--llm",
        choices=("scripted", "openai"),
        default="scripted",
        help="openai: OPENAI_BASE_URL/_API_KEY, TURNLOG_MODEL",
    )
    p = add("replay", cmd_replay, "print a conversation from its log")
    p.add_argument("conversation")
    p.add_argument("--after", type=int, default=0, metavar="VERSION", help="only what follows this version")
    p.add_argument("--format", choices=("sse", "transcript", "events", "messages"), default="sse")
    p.add_argument("--mode", choices=("full", "delta"), default="delta")
    p = add("verify", cmd_verify, "recompute the hash chain; exit 1 naming the first broken link")
    p.add_argument("conversation", nargs="?")
    add("rebuild", cmd_rebuild, "recompute the message rows from the log")

    for name in PLUGINS:
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return asyncio.run(args.handler(args))
    except TurnlogError as exc:
        print(f"turnlog: error: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        # The reader of our output went away (`turnlog replay ... | head`): not an error of ours.
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("turnlog: interrupted", file=sys.stderr)
        return 130
    except (OSError, msgspec.DecodeError, ValueError) as exc:
        print(f"turnlog: error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:
        # Still one line: a traceback is for developers, who ask for it with TURNLOG_DEBUG=1.
        if os.environ.get("TURNLOG_DEBUG"):
            raise
        first = str(exc).splitlines()[0] if str(exc) else ""
        print(
            f"turnlog: internal error: {type(exc).__name__}: {first} (TURNLOG_DEBUG=1 shows the traceback)",
            file=sys.stderr,
        )
        return 2


if __name__ == "__main__":
    sys.exit(main())
