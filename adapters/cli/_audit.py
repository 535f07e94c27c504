"""The audit commands: verify, keygen, checkpoint, export.

    turnlog verify [CONVERSATION] [--public-key KEYFILE.pub ...] [--checkpoint FILE]
        every event's hash from its stored bytes, every conversation's chain, positions gapless
        from 1, every stored checkpoint (its root against the log's tree; its signature, with a
        key), and a checkpoint kept outside the log; exit 1 naming the first problem
    turnlog verify --file CONV.jsonl --public-key KEYFILE.pub
        an export on its own: no database, no other conversation
    turnlog keygen KEYFILE
        an Ed25519 key pair: KEYFILE (private, PEM PKCS#8, mode 0600) and KEYFILE.pub
    turnlog checkpoint --key KEYFILE [--origin NAME] [--full]
        sign the head of the log's tree, store it in the log, print it as one JSON document
    turnlog export CONVERSATION > CONV.jsonl
        one conversation, its latest checkpoint and the proof that anchors it (JSON lines)

Reading commands never create a database: a missing SQLite file or an old schema is a one-line error.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from turnlog.adapters.signing import Ed25519Verifier, load_signer, load_verifier, write_keypair
from turnlog.adapters.stores import open_store
from turnlog.engine import (
    DEFAULT_ORIGIN,
    Checkpoint,
    ConfigError,
    ConversationNotFound,
    ExportReport,
    create_checkpoint,
    export_conversation,
    verify_export,
    verify_log,
)

from ._common import Subparsers, add_command, out, unknown_conversation


def _verdict(ok: bool, summary: str) -> int:
    if ok:
        out(summary + "\n")
        return 0
    print(f"turnlog: verify: {summary}", file=sys.stderr)
    return 1


def _verify_file(path: str, keys: list[Ed25519Verifier]) -> ExportReport:
    with open(path, "rb") as lines:
        return verify_export(lines, keys)


async def cmd_verify(args: argparse.Namespace) -> int:
    keys = [load_verifier(path) for path in args.public_key]
    if args.file is not None:
        if args.conversation is not None or args.checkpoint is not None:
            raise ConfigError("verify --file checks the export alone: give no CONVERSATION and no --checkpoint")
        if not keys:
            raise ConfigError("verify --file needs --public-key KEYFILE.pub: an export proves nothing without its key")
        report = await asyncio.to_thread(_verify_file, args.file, keys)
        return _verdict(report.ok, report.summary())
    anchor = (
        Checkpoint.from_json(await asyncio.to_thread(Path(args.checkpoint).read_bytes)) if args.checkpoint else None
    )
    log, _ = await open_store(args.db, create=False)
    async with log:
        try:
            result = await verify_log(log, args.conversation, keys=keys, anchor=anchor)
        except ConversationNotFound:
            raise unknown_conversation(args.conversation, args.db) from None
    return _verdict(result.ok, result.summary())


async def cmd_keygen(args: argparse.Namespace) -> int:
    signer = write_keypair(args.keyfile)
    out(f"wrote {args.keyfile} (private, mode 0600) and {args.keyfile}.pub (public); key id {signer.key_id}\n")
    return 0


async def cmd_checkpoint(args: argparse.Namespace) -> int:
    signer = load_signer(args.key)
    log, _ = await open_store(args.db, create=False)
    async with log:
        checkpoint = await create_checkpoint(log, signer, origin=args.origin, full=args.full)
    out(checkpoint.to_json() + b"\n")
    return 0


async def cmd_export(args: argparse.Namespace) -> int:
    log, _ = await open_store(args.db, create=False)
    async with log:
        try:
            async for line in export_conversation(log, args.conversation):
                sys.stdout.buffer.write(line)
        except ConversationNotFound:
            raise unknown_conversation(args.conversation, args.db) from None
    sys.stdout.flush()
    return 0


def register(subparsers: Subparsers) -> None:
    p = add_command(subparsers, "verify", cmd_verify, "check every event, the log's tree and its checkpoints")
    p.add_argument("conversation", nargs="?", help="recompute this conversation's hashes only (the rest: structure)")
    p.add_argument(
        "--public-key", action="append", default=[], metavar="KEYFILE.pub", help="check signatures (repeatable)"
    )
    p.add_argument("--checkpoint", metavar="FILE", help="a checkpoint kept outside the log (`turnlog checkpoint`)")
    p.add_argument("--file", metavar="EXPORT", help="check an export (`turnlog export`) instead of a database")

    p = subparsers.add_parser("keygen", help="write an Ed25519 key pair for checkpoints: KEYFILE and KEYFILE.pub")
    p.add_argument("keyfile", metavar="KEYFILE")
    p.set_defaults(handler=cmd_keygen)

    p = add_command(subparsers, "checkpoint", cmd_checkpoint, "sign the head of the log's tree and store it")
    p.add_argument("--key", required=True, metavar="KEYFILE", help="the private key (`turnlog keygen`)")
    p.add_argument(
        "--origin", default=DEFAULT_ORIGIN, help=f"the log's name in the signed body (default {DEFAULT_ORIGIN})"
    )
    p.add_argument("--full", action="store_true", help="read every event, not only those after the last checkpoint")

    p = add_command(subparsers, "export", cmd_export, "one conversation with the proof that anchors it (JSON lines)")
    p.add_argument("conversation")
