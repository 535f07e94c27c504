"""``turnlog verify``: the audit commands.

    turnlog verify [CONVERSATION]
        recompute the hash chain; exit 1 naming the first broken link

Reading commands never create a database: a missing SQLite file or an old schema is a one-line error.
"""

from __future__ import annotations

import argparse
import sys

from turnlog.adapters.stores import open_store
from turnlog.engine import verify

from ._common import Subparsers, add_command, out


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


def register(subparsers: Subparsers) -> None:
    p = add_command(subparsers, "verify", cmd_verify, "recompute the hash chain; exit 1 naming the first broken link")
    p.add_argument("conversation", nargs="?")
