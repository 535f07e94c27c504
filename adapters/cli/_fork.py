"""The fork command: a new conversation branching off another at a turn boundary.

    turnlog fork CONVERSATION --at N [--id NEW_ID] [--tenant T] [--subject S]
        create a conversation whose first event names CONVERSATION, version N (a turn boundary:
        1, before its first turn, or a turn's last event) and the parent's hash there; its
        history is the parent's up to N. Prints the new conversation's id. Exit 1 (nothing
        written) when N is not a turn boundary.

Regenerate the last answer: ``turnlog fork C --at V`` where V is the version just before the
last turn (``turnlog replay C`` shows each turn's ``v``: fork at the version before it), then
``turnlog chat --conversation FORK`` the same message; edit an earlier message: the same, at the
boundary before that message's turn, with the edited words. The original is never rewritten.
The fork takes the parent's tenant unless ``--tenant`` is given; ``--subject`` is who forked it.
"""

from __future__ import annotations

import argparse

from turnlog.adapters.stores import open_store
from turnlog.engine import ConversationNotFound, TurnEngine

from ._common import Subparsers, add_command, out, unknown_conversation


async def cmd_fork(args: argparse.Namespace) -> int:
    from turnlog.adapters.llm import EchoLLM

    log, messages = await open_store(args.db, create=False)
    async with log:
        # The model is not called: a fork only writes its first event (the parent's provider).
        engine = TurnEngine(log, EchoLLM(), messages=messages)
        try:
            conv = await engine.fork(args.conversation, args.at, args.id, tenant=args.tenant, subject=args.subject)
        except ConversationNotFound:
            raise unknown_conversation(args.conversation, args.db) from None
    out(f"{conv}\n")
    return 0


def register(subparsers: Subparsers) -> None:
    p = add_command(
        subparsers, "fork", cmd_fork, "a new conversation branching off another at a turn boundary (regenerate, edit)"
    )
    p.add_argument("conversation", metavar="CONVERSATION")
    p.add_argument(
        "--at", type=int, required=True, metavar="N", help="the parent's version: 1 or the last event of a turn"
    )
    p.add_argument("--id", default=None, help="the new conversation's id (default: a fresh one)")
    p.add_argument("--tenant", default=None, help="the fork's tenant (default: the parent's)")
    p.add_argument("--subject", default="", help="who forks it: recorded in its first event")
