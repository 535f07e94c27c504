"""``turnlog list``: the conversations of a log, newest first (by last activity).

    turnlog list [--tenant T] [--subject S] [--limit N]
        one line per conversation: last activity, id, turns, the last turn's status, tokens,
        who created it, title

It reads the conversation index the row sink keeps beside the log (``store.conversations``), one
page of an index at a time: never a scan of the log. ``--tenant`` defaults to ``""`` (the tenant
of ``turnlog chat``, ``demo`` and an unauthenticated server); without ``--subject`` every subject
of the tenant is listed. It creates no database.
"""

from __future__ import annotations

import argparse
import json
import sys

from turnlog.adapters.stores import open_store
from turnlog.engine import ConfigError
from turnlog.projections import ConversationSummary

from ._common import Subparsers, add_command, out

#: Rows read from the index at a time.
_PAGE = 500


def line(s: ConversationSummary) -> str:
    """One conversation on one line (the title quoted as JSON: it may hold anything)."""
    who = f"{s.tenant}/{s.subject}" if s.tenant else s.subject or "-"
    return (
        f"{s.updated_at}  {s.id}  {s.turns} turn{'' if s.turns == 1 else 's'}  {s.last_status or '-'}  "
        f"{s.total_tokens} tokens  {who}  {json.dumps(s.title, ensure_ascii=False)}\n"
    )


async def cmd_list(args: argparse.Namespace) -> int:
    if args.limit < 1:
        raise ConfigError(f"--limit must be at least 1, not {args.limit}")
    store = await open_store(args.db, create=False)
    async with store:
        index = store.conversations
        if index is None:
            raise ConfigError(f"the store at {args.db} keeps no conversation index")
        subjects = None if args.subject is None else [args.subject]
        shown, before = 0, None
        while shown < args.limit:
            want = min(_PAGE, args.limit - shown)
            page = await index.page(args.tenant, subjects, limit=want, before=before)
            for s in page:
                out(line(s))
            shown += len(page)
            if len(page) < want:
                break
            before = (page[-1].updated_at, page[-1].id)
        if shown == 0 and await index.empty() and await store.log.streams():
            print(
                f"turnlog: list: the log holds conversations but none is indexed: run `turnlog rebuild --db {args.db}`",
                file=sys.stderr,
            )
    return 0


def register(subparsers: Subparsers) -> None:
    p = add_command(subparsers, "list", cmd_list, "list conversations, newest first")
    p.add_argument("--tenant", default="", help='the tenant whose conversations to list (default: "")')
    p.add_argument("--subject", default=None, help="only those this subject created (default: every subject)")
    p.add_argument("--limit", type=int, default=100, metavar="N", help="at most N conversations (default 100)")
