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
import asyncio
import contextlib
import json
import os
import sys
from collections.abc import AsyncIterator, Iterator

import msgspec
from turnlog.adapters.stores import open_store
from turnlog.engine import (
    LLM,
    ConfigError,
    ConversationCreated,
    ConversationFold,
    EventLog,
    Recorded,
    inherited_prior,
    rebuild_requests,
)
from turnlog.projections import SseProjector, fold_rows, rebuild, transcript_lines

from ._common import Subparsers, add_command, add_mode, out, unknown_conversation


def renderer_for(provider: str) -> LLM:
    """The adapter that renders the bodies of a conversation of ``provider``, configured as
    ``turnlog chat`` configures it: ``scripted`` renders as ``ScriptedLLM``/``EchoLLM`` do,
    ``recorded`` as ``turnlog play``'s ``RecordedLLM``; the provider ``TURNLOG_PROVIDER`` names
    (default openai) comes from the environment (``ProviderConfig.from_env``: ``TURNLOG_MODEL`` is
    the default model); any other preset as shipped. Only the body format and defaults matter:
    nothing is sent."""
    from turnlog.adapters.llm import PRESETS, OpenAILLM, ProviderConfig, RecordedLLM, ScriptedLLM

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


async def print_requests(log: EventLog, conversation: str, created: ConversationCreated, after: int) -> int:
    """Every model call: a header line, then the exact body bytes and a newline. Exit 1 if one
    body does not hash to the digest its IterationStarted recorded."""
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


async def replayed_pages(log: EventLog, conversation: str) -> AsyncIterator[list[Recorded]]:
    """``replay`` in pages: each page checked by the log (hashes and links) and folded by the state
    machine before it is yielded, so memory stays flat however long the conversation. At an event
    the fold refuses, the events before it are yielded, then the error is raised (as ``replay``)."""
    fold = ConversationFold()
    apply = fold.apply
    async with contextlib.aclosing(log.iter_pages(conversation)) as pages:
        async for page in pages:
            try:
                for rec in page:
                    apply(rec)
            except Exception:
                done = fold.version - page[0].version + 1
                if done > 0:
                    yield page[:done]
                raise
            yield page


def _blocking(pages: AsyncIterator[list[Recorded]], loop: asyncio.AbstractEventLoop) -> Iterator[Recorded]:
    """The events of ``pages`` (read on ``loop``) for a synchronous fold run in a worker thread."""

    async def next_page() -> list[Recorded]:
        return await anext(pages)

    while True:
        try:
            page = asyncio.run_coroutine_threadsafe(next_page(), loop).result()
        except StopAsyncIteration:
            return
        yield from page


def _write_lines(lines: Iterator[str]) -> None:
    for line in lines:
        sys.stdout.write(line)
    sys.stdout.flush()


async def cmd_replay(args: argparse.Namespace) -> int:
    log, _ = await open_store(args.db, create=False)
    async with log:
        if await log.last(args.conversation) is None:
            raise unknown_conversation(args.conversation, args.db)
        after = args.after
        if args.format == "requests":
            # The first event, checked (its hash); the rest is checked by ``rebuild_requests``.
            async with contextlib.aclosing(log.iter_pages(args.conversation, page_size=1)) as first:
                created = (await anext(first))[0].event
            if not isinstance(created, ConversationCreated):
                raise ConfigError(f"conversation {args.conversation!r} does not begin with conversation_created")
            return await print_requests(log, args.conversation, created, after)
        # Read page by page: nothing holds the whole conversation (a million events replay in
        # the memory of one page).
        async with contextlib.aclosing(replayed_pages(log, args.conversation)) as pages:
            if args.format in ("transcript", "messages"):
                # The folds are synchronous: fed page by page from this loop in a worker thread.
                events = _blocking(pages, asyncio.get_running_loop())
                if args.format == "transcript":
                    # A fork's requests repeated its parents' turns: the summaries count them.
                    inherited = await inherited_prior(log, args.conversation)
                    # Each line written once known: memory holds one step, not the transcript.
                    await asyncio.to_thread(_write_lines, transcript_lines(events, inherited))
                else:
                    rows = await asyncio.to_thread(fold_rows, args.conversation, events)
                    for row in rows:
                        out(json.dumps(msgspec.to_builtins(row), ensure_ascii=False) + "\n")
                return 0
            proj = SseProjector(args.mode)
            frame = proj.frame
            async for page in pages:
                shown: list[bytes] = []
                if args.format == "sse":
                    for rec in page:
                        f = frame(rec)
                        if f is not None and rec.version > after:
                            shown.append(f)
                    if shown:
                        out(b"".join(shown))
                else:
                    lines: list[str] = []
                    for rec in page:
                        if rec.version > after:
                            line = {
                                k: v for k, v in msgspec.structs.asdict(rec).items() if k not in ("payload", "event")
                            }
                            line["event"] = msgspec.to_builtins(rec.event)
                            lines.append(json.dumps(line, ensure_ascii=False) + "\n")
                    if lines:
                        out("".join(lines))
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
