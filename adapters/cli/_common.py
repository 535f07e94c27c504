"""What every command group shares: the default ``--db``, writing to stdout, the ``--db`` and
``--mode`` arguments, and running a command's coroutine so that an error is one line on stderr.

It imports no other module of the command: every group imports it, ``_main`` imports the groups.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Awaitable, Callable
from typing import TypeAlias

import msgspec
from turnlog.engine import ConversationNotFound, TurnlogError

DEFAULT_DB = "turnlog.db"

Handler: TypeAlias = Callable[[argparse.Namespace], Awaitable[int]]
"""A command: the parsed arguments in, the exit status out."""

Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
"""What ``ArgumentParser.add_subparsers`` returns; each group's ``register`` adds its commands to it."""


def out(text: str | bytes) -> None:
    """Write to stdout as is (bytes unencoded), flushed: frames show up as they are made."""
    if isinstance(text, bytes):
        sys.stdout.buffer.write(text)
    else:
        sys.stdout.write(text)
    sys.stdout.flush()


def add_db(parser: argparse.ArgumentParser) -> None:
    """``--db``: the log every command reads or writes."""
    parser.add_argument("--db", default=DEFAULT_DB, help=f"SQLite file or postgresql:// URL (default {DEFAULT_DB})")


def add_mode(parser: argparse.ArgumentParser) -> None:
    """``--mode``: the SSE projection's mode."""
    parser.add_argument("--mode", choices=("full", "delta"), default="delta")


def add_command(subparsers: Subparsers, name: str, handler: Handler, help_: str) -> argparse.ArgumentParser:
    """A command with ``--db`` that runs ``handler``; the caller adds the rest of its arguments."""
    parser = subparsers.add_parser(name, help=help_)
    add_db(parser)
    parser.set_defaults(handler=handler)
    return parser


def unknown_conversation(conversation: str, db: str) -> ConversationNotFound:
    """``ConversationNotFound`` (code ``not_found``) worded for the command line: it names the log."""
    exc = ConversationNotFound(conversation)
    exc.args = (f"unknown conversation {conversation!r} in {db}",)
    return exc


def run(handler: Handler, args: argparse.Namespace) -> int:
    """Run a command to its exit status. An error is one line on stderr, never a traceback:
    ``TurnlogError`` and the usual I/O and input errors exit 1, a bug exits 2 (``TURNLOG_DEBUG=1``
    raises it instead), Ctrl-C exits 130 and a closed stdout (``| head``) is not an error."""
    try:
        return asyncio.run(handler(args))
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
