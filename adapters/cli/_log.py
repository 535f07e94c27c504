"""``turnlog replay`` and ``turnlog rebuild``: read an existing log.

    turnlog replay CONVERSATION [--after VERSION] [--format sse|transcript|events|messages|requests] [--mode full|delta]
        print a conversation from its log: the SSE frames a client got, a transcript, the events
        (one JSON object a line), the message rows folded from them, or every request sent to
        the model, rebuilt from the log (exit 1 if one does not match its recorded digest)
    turnlog rebuild
        recompute the message rows from the log

None of them creates a database: a missing SQLite file or an old schema is a one-line error.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys

import msgspec
from turnlog.adapters.llm import PRESETS, OpenAILLM, ProviderConfig, RecordedLLM, ScriptedLLM
from turnlog.adapters.stores import open_store
from turnlog.engine import LLM, ConfigError, ConversationCreated, EventLog, Recorded, rebuild_requests, replay
from turnlog.projections import SseProjector, fold_rows, rebuild, render

from ._common import Subparsers, add_command, add_mode, out, unknown_conversation


def renderer_for(provider: str) -> LLM:
    """The adapter that renders the bodies of a conversation of ``provider``, configured as
    ``turnlog chat`` configures it: ``scripted`` renders as ``ScriptedLLM``/``EchoLLM`` do,
    ``recorded`` as ``turnlog play``'s ``RecordedLLM``; the provider ``TURNLOG_PROVIDER`` names
    (default openai) comes from the environment (``ProviderConfig.from_env``: ``TURNLOG_MODEL`` is
    the default model); any other preset as shipped. Only the body format and defaults matter:
    nothing is sent."""
    if provider == "scripted":
        return ScriptedLLM([])
    if provider == "recorded":
        return RecordedLLM([])
    if os.environ.get("TURNLOG_PROVIDER", "openai") == provider:
        return OpenAILLM(ProviderConfig.from_env())
    if provider in PRESETS:
        return OpenAILLM(PRESETS[provider])
    raise ConfigError(
        f"the conversation's provider {provider!r} is not a preset ({', '.join(PRESETS)}) nor scripted: "
        "its request bodies cannot be rendered here"
    )


async def print_requests(log: EventLog, conversation: str, events: list[Recorded], after: int) -> int:
    """Every model call: a header line, then the exact body bytes and a newline. Exit 1 if one
    body does not hash to the digest its IterationStarted recorded."""
    created = events[0].event
    assert isinstance(created, ConversationCreated)  # replay checked it
    llm = renderer_for(created.provider)
    async with contextlib.aclosing(llm) if hasattr(llm, "aclose") else contextlib.nullcontext():  # type: ignore[attr-defined]
        rebuilt = await rebuild_requests(log, conversation, llm)
    shown = [r for r in rebuilt if r.version > after]
    for r in shown:
        verdict = "match" if r.ok else "MISMATCH"
        if r.sha256 != r.recorded_sha256:
            verdict += f" recorded sha256:{r.recorded_sha256}"
        if not r.model_ok:
            verdict += f" recorded model={r.recorded_model}"
        header = (
            f"request turn={r.turn_id} iteration={r.iteration} version={r.version} model={r.model or '-'} "
            f"sha256:{r.sha256} bytes={len(r.body)} {verdict}\n"
        )
        out(header.encode() + r.body + b"\n")
    bad = sum(not r.ok for r in shown)
    if bad:
        print(
            f"turnlog: replay: {bad} of {len(shown)} request(s) of {conversation} do not match the log "
            f"(rendered as provider {created.provider!r})",
            file=sys.stderr,
        )
    return 1 if bad else 0


async def cmd_replay(args: argparse.Namespace) -> int:
    log, _ = await open_store(args.db, create=False)
    async with log:
        if await log.last(args.conversation) is None:
            raise unknown_conversation(args.conversation, args.db)
        events = [rec async for rec in replay(log, args.conversation)]
        if args.format == "sse":
            proj = SseProjector(args.mode)
            for rec in events:
                frame = proj.frame(rec)
                if frame is not None and rec.version > args.after:
                    out(frame)
        elif args.format == "transcript":
            out(render(events))
        elif args.format == "requests":
            return await print_requests(log, args.conversation, events, args.after)
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


async def cmd_rebuild(args: argparse.Namespace) -> int:
    log, messages = await open_store(args.db, create=False)
    async with log:
        n = await rebuild(log, messages)
    out(f"rebuilt {n} message rows from the log\n")
    return 0


def register(subparsers: Subparsers) -> None:
    p = add_command(subparsers, "replay", cmd_replay, "print a conversation from its log")
    p.add_argument("conversation")
    p.add_argument("--after", type=int, default=0, metavar="VERSION", help="only what follows this version")
    p.add_argument(
        "--format",
        choices=("sse", "transcript", "events", "messages", "requests"),
        default="sse",
        help="sse (default): the SSE frames a client got; transcript: readable text; events: one JSON event "
        "a line; messages: the message rows; requests: every request sent to the model, rebuilt from the "
        "log, exit 1 if one does not match its recorded digest",
    )
    add_mode(p)
    add_command(subparsers, "rebuild", cmd_rebuild, "recompute the message rows from the log")
