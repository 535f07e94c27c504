"""Erasure (GDPR article 17) and retention from the command line: crypto-shredding.

    turnlog erase CONVERSATION... --reason TEXT [--by-tenant T] [--by-subject S]
        destroy each conversation's data key and record ConversationErased (who, when, why);
        replay, rows, transcripts and exports then show its content as erased, its metadata
        (times, token counts, tool names, statuses) stays, and verify passes; exit 1 on the
        first conversation that cannot be erased (a live turn, written before encryption,
        already erased, unknown): the ones before it are erased
    turnlog erase --subject S [--tenant T] --reason TEXT
        every conversation the subject created in the tenant, in one call; prints what it left
    turnlog erase --older-than DAYS --reason TEXT
        retention: every conversation whose last event is more than DAYS old

Who asked is what ``--by-tenant`` and ``--by-subject`` say (default: ``operator`` and the
login name): the command line holds the database itself and is trusted, as ``turnlog cancel``.
"""

from __future__ import annotations

import argparse
import getpass

from turnlog.adapters.crypto import Erasure, erase, erase_older_than, erase_subject
from turnlog.adapters.stores import open_store
from turnlog.engine import ConfigError, ConversationNotFound

from ._common import Subparsers, add_command, out, unknown_conversation


def _report(done: Erasure) -> None:
    for cid in done.erased:
        out(f"erased {cid}\n")
    for cid, code in done.skipped.items():
        out(f"left {cid}: {code}\n")
    out(f"{len(done.erased)} erased, {len(done.skipped)} left\n")


async def cmd_erase(args: argparse.Namespace) -> int:
    chosen = [bool(args.conversations), args.subject is not None, args.older_than is not None]
    if sum(chosen) != 1:
        raise ConfigError("turnlog erase: name conversations, or --subject S, or --older-than DAYS (exactly one)")
    if not args.reason.strip():
        raise ConfigError("turnlog erase: --reason is required (it is recorded with the erasure, in clear)")
    by_subject = args.by_subject if args.by_subject is not None else getpass.getuser()
    store = await open_store(args.db, create=False)
    async with store:
        if args.conversations:
            try:
                done = await erase(
                    store.log,
                    store.messages,
                    args.conversations,
                    reason=args.reason,
                    tenant=args.by_tenant,
                    subject=by_subject,
                )
            except ConversationNotFound as exc:
                raise unknown_conversation(exc.stream_id, args.db) from None
        elif args.subject is not None:
            done = await erase_subject(
                store.log,
                store.messages,
                tenant=args.tenant,
                subject=args.subject,
                reason=args.reason,
                by_tenant=args.by_tenant,
                by_subject=by_subject,
            )
        else:
            done = await erase_older_than(
                store.log,
                store.messages,
                days=args.older_than,
                reason=args.reason,
                by_tenant=args.by_tenant,
                by_subject=by_subject,
            )
    _report(done)
    return 0


def register(subparsers: Subparsers) -> None:
    p = add_command(
        subparsers,
        "erase",
        cmd_erase,
        "forget conversations' content (crypto-shredding): by id, by subject, or older than N days",
    )
    p.add_argument("conversations", nargs="*", metavar="CONVERSATION")
    p.add_argument("--reason", required=True, help="why (recorded in clear with the erasure: no personal data)")
    p.add_argument("--subject", default=None, help="erase every conversation this subject created (in --tenant)")
    p.add_argument("--tenant", default="", help='the tenant of --subject (default: "")')
    p.add_argument(
        "--older-than", type=float, default=None, metavar="DAYS", help="retention: last event older than DAYS"
    )
    p.add_argument("--by-tenant", default="operator", help="who asks: recorded with the erasure (default: operator)")
    p.add_argument("--by-subject", default=None, help="who asks: recorded with the erasure (default: the login name)")
