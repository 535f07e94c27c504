"""The ``turnlog`` command.

    turnlog demo [--db PATH] [--mode full|delta] [--llm scripted|openai]
    turnlog replay CONVERSATION [--after VERSION] [--format sse|transcript|events|messages|requests] [--mode full|delta]
    turnlog verify [CONVERSATION]
    turnlog rebuild
    turnlog list [--tenant T] [--subject S] [--limit N]
    turnlog usage [--by conversation|subject|tenant|model|day] [--since --until --prices FILE --format table|json]
    turnlog otel export CONVERSATION... [--content]
    turnlog db upgrade|current
    turnlog serve [--host --port --llm --tokens --tools MODULE:NAME ...]
    turnlog recover [--older-than SECONDS]
    turnlog cancel CONVERSATION [--reason TEXT] [--tenant T] [--subject S]
    turnlog approve CONVERSATION CALL_ID [--reason TEXT]; turnlog deny CONVERSATION CALL_ID --reason TEXT
    turnlog fork CONVERSATION --at N [--id ID] [--tenant T] [--subject S]
    turnlog erase CONVERSATION... | --subject S [--tenant T] | --older-than DAYS  --reason TEXT
    turnlog chat [--conversation ID] [--system TEXT] [--thinking] [--tools MODULE:NAME] [--record DIR]
    turnlog play RECORDING.sse [...] [--mode full|delta] [--message TEXT] [--seed N] [--tools MODULE:NAME]
    turnlog --version

``--db`` picks the log: a SQLite file path (default ``$TURNLOG_DB``, else ``./turnlog.db``) or a
``postgresql://`` URL. Errors print one line on stderr and exit non-zero; no traceback. A turn
that fails makes ``demo``, ``chat`` and ``play`` exit 1.

This module only builds the parser from each command group's ``register(subparsers)`` and runs
the chosen command. Imports point one way: ``_main`` -> the groups -> ``_common`` (and ``_serve``
-> ``_demo``, for the demo tools it serves without ``--tools``):

    _demo    demo                       _serve   serve, recover
    _log     replay, verify, rebuild    _llm     chat, play
    _list    list                       _controls  cancel, approve, deny
    _usage   usage                      _otel    otel export (the otel extra)
    _db      db upgrade, db current        _erase   erase (by id, subject, age)
    _fork    fork
"""

from __future__ import annotations

import argparse
import importlib.metadata
import sys
from collections.abc import Callable, Sequence

from ._audit import register as register_audit
from ._common import Subparsers, run
from ._controls import register as register_controls
from ._db import register as register_db
from ._demo import register as register_demo
from ._erase import register as register_erase
from ._fork import register as register_fork
from ._list import register as register_list
from ._llm import register as register_llm
from ._log import register as register_log
from ._otel import register as register_otel
from ._serve import register as register_serve
from ._usage import register as register_usage

# In the order of ``turnlog --help``.
GROUPS: tuple[Callable[[Subparsers], None], ...] = (
    register_demo,
    register_log,
    register_list,
    register_usage,
    register_otel,
    register_audit,
    register_db,
    register_serve,
    register_controls,
    register_erase,
    register_fork,
    register_llm,
)


DESCRIPTION = """\
turnlog runs chat turns against LLMs as an explicit state machine over an append-only,
hash-chained event log: stream the answer, run the tools the model asks for, keep every event.
Run turns (demo, chat, play, serve), read them back (replay), prove nothing was changed or
removed (verify, checkpoint, export) and keep the database schema current (db)."""

EPILOG = """\
every command takes --db: a SQLite file (default turnlog.db) or a postgresql:// URL; set
TURNLOG_DB once instead of repeating it.
--mode (SSE frames): delta sends each step's new text only (default); full re-sends the step's
whole text in every frame, as frontends written for the original service expect.
--format (replay): sse (the frames a client got), transcript (readable text), events (one JSON
event a line), messages (the message rows), requests (every request sent to the model,
rebuilt from the log and checked against its recorded digest).
a real model (chat, demo and serve with --llm openai): OPENAI_API_KEY, OPENAI_BASE_URL (any
OpenAI-compatible server), TURNLOG_MODEL, TURNLOG_PROVIDER (a preset: openai, deepseek, ...).
exit status: 0 ok; 1 an error (one line on stderr) or a failed turn; 2 a bug (TURNLOG_DEBUG=1
shows the traceback); 3 db current: the schema is not this turnlog's.
turnlog COMMAND --help tells more about each command."""


def version() -> str:
    try:
        return importlib.metadata.version("turnlog")
    except importlib.metadata.PackageNotFoundError:  # run from a source tree that is not installed
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="turnlog",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"turnlog {version()}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for register in GROUPS:
        register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``turnlog`` with ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    args = build_parser().parse_args(argv)
    return run(args.handler, args)


if __name__ == "__main__":
    sys.exit(main())
