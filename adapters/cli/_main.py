"""The ``turnlog`` command.

    turnlog demo [--db PATH] [--mode full|delta] [--llm scripted|openai]
    turnlog replay CONVERSATION [--after VERSION] [--format sse|transcript|events|messages|requests] [--mode full|delta]
    turnlog verify [CONVERSATION]
    turnlog rebuild
    turnlog db upgrade|current
    turnlog serve [--host --port --llm --tokens --tools MODULE:NAME ...]
    turnlog recover [--older-than SECONDS]
    turnlog chat [--conversation ID] [--system TEXT] [--thinking]
    turnlog play RECORDING.sse [...] [--mode full|delta] [--message TEXT] [--seed N]

``--db`` picks the log: a SQLite file path (default ``./turnlog.db``) or a ``postgresql://`` URL.
Errors print one line on stderr and exit non-zero; no traceback.

This module only builds the parser from each command group's ``register(subparsers)`` and runs
the chosen command. Imports point one way: ``_main`` -> the groups -> ``_common`` (and ``_serve``
-> ``_demo``, for the demo tools it serves without ``--tools``):

    _demo    demo                       _serve   serve, recover
    _log     replay, verify, rebuild    _llm     chat, play
    _db      db upgrade, db current
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from ._audit import register as register_audit
from ._common import Subparsers, run
from ._db import register as register_db
from ._demo import register as register_demo
from ._llm import register as register_llm
from ._log import register as register_log
from ._serve import register as register_serve

# In the order of ``turnlog --help``.
GROUPS: tuple[Callable[[Subparsers], None], ...] = (
    register_demo,
    register_log,
    register_audit,
    register_db,
    register_serve,
    register_llm,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="turnlog", description=__doc__.split("\n\n")[0])
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
