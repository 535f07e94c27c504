"""The control commands: what a person does to a running turn, written to the log.

    turnlog cancel CONVERSATION [--reason TEXT] [--tenant T] [--subject S]
        append a CancelRequested for the conversation's running turn: the process running it
        (a `turnlog serve` on any host over the same log) ends it as failed (cancelled), keeping
        its partial output; exit 1 when no turn is running (nothing written)

Who asked is what ``--tenant`` and ``--subject`` say (default ""): the command line holds the
database itself, so it is trusted as ``turnlog recover`` is, and records the claim as given.
"""

from __future__ import annotations

import argparse

from turnlog.adapters.stores import open_store
from turnlog.engine import ConversationNotFound, cancel_turn

from ._common import Subparsers, add_command, out, unknown_conversation


async def cmd_cancel(args: argparse.Namespace) -> int:
    log, _ = await open_store(args.db, create=False)
    async with log:
        try:
            rec = await cancel_turn(
                log, args.conversation, tenant=args.tenant, subject=args.subject, reason=args.reason
            )
        except ConversationNotFound:
            raise unknown_conversation(args.conversation, args.db) from None
    out(f"cancel requested for turn {rec.turn_id} of {args.conversation} (version {rec.version})\n")
    return 0


def register(subparsers: Subparsers) -> None:
    p = add_command(subparsers, "cancel", cmd_cancel, "stop the running turn of a conversation (on any server)")
    p.add_argument("conversation", metavar="CONVERSATION")
    p.add_argument("--reason", default="", help="why, recorded with the cancel and in the turn's failure")
    p.add_argument("--tenant", default="", help="who asks: recorded with the cancel")
    p.add_argument("--subject", default="", help="who asks: recorded with the cancel")
