"""``turnlog chat`` and ``turnlog play``: turns against a real (or recorded) model.

    turnlog chat [--db PATH] [--conversation ID] [--system TEXT] [--thinking] [--tools MODULE:NAME] [--record DIR]
        interactive turns against OPENAI_BASE_URL / OPENAI_API_KEY / TURNLOG_MODEL
        (TURNLOG_PROVIDER picks a preset); one user message per stdin line. With nothing configured
        it says what to set rather than call a public endpoint without a key. ``--record DIR``
        saves each model call's raw stream as DIR/NNNN.sse (``RecordingLLM``): recordings for
        ``play`` and ``RecordedLLM``, as VCR cassettes are
    turnlog play A.sse [B.sse ...] [--db PATH] [--mode full|delta] [--message TEXT] [--seed N] [--tools MODULE:NAME]
        one turn whose successive model calls are answered by the recordings, served from
        127.0.0.1 through the real client; prints the turn's SSE frames (protocol v1)

Both store everything in the same log as every other command (``--db``). A turn that fails
(the provider's error, a recording that runs out, ...) makes the command exit 1, after the
session: scripts see it.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from typing import TextIO

from turnlog.adapters.stores import open_store
from turnlog.engine import (
    ReasoningDelta,
    Recorded,
    TextDelta,
    ToolCallStarted,
    ToolRegistry,
    ToolResultRecorded,
    TurnEngine,
    TurnFailed,
    TurnFinalized,
    TurnRequest,
)
from turnlog.projections import stream_sse

from ._common import (
    FrameOut,
    Subparsers,
    add_command,
    add_mode,
    add_tools,
    load_tools,
    out,
    provider_config,
    unknown_conversation,
)
from ._demo import demo_tools


def _tools(spec: str | None) -> ToolRegistry:
    return load_tools(spec, {"demo": demo_tools}) if spec else ToolRegistry()


# -- play ---------------------------------------------------------------------------------------


async def cmd_play(args: argparse.Namespace) -> int:
    from turnlog.adapters.llm import RecordedLLM

    tools = _tools(args.tools)
    log, messages = await open_store(args.db)
    async with log, RecordedLLM(args.recordings, seed=args.seed, provider=args.provider, model=args.model) as llm:
        # Without --tools, a call the recording makes gets an "unknown tool" result with success
        # false, and the next recording answers it.
        engine = TurnEngine(log, llm, tools=tools, messages=messages)
        conv = await engine.create_conversation(model=args.model)
        request = TurnRequest(args.message, enabled_tools=tools.names())
        frames = FrameOut()
        try:
            async for frame in stream_sse(engine, conv, request, args.mode):
                frames(frame)
        finally:
            frames.close()
        last = await log.last(conv)
    assert last is not None
    ev = last.event
    if isinstance(ev, TurnFailed):
        print(f"turnlog: play: conversation {conv}: turn failed ({ev.reason}): {ev.message}", file=sys.stderr)
        return 1
    print(f"turnlog: play: conversation {conv}: turn finalized in {args.db}", file=sys.stderr)
    return 0


# -- chat ---------------------------------------------------------------------------------------


class ChatRenderer:
    """Live events as readable text: thinking dimmed (or prefixed when not a terminal), text as
    is, tool calls and results on their own lines."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.color = stream.isatty()
        self._mode = ""

    def _switch(self, mode: str, header: str) -> None:
        if self._mode != mode:
            if self._mode:
                self.stream.write("\n")
            self.stream.write(header)
            self._mode = mode

    def __call__(self, rec: Recorded) -> None:
        ev = rec.event
        w = self.stream.write
        if type(ev) is ReasoningDelta:
            self._switch("thinking", "\x1b[2mthinking: " if self.color else "thinking: ")
            w(ev.text)
        elif type(ev) is TextDelta:
            self._switch("text", "\x1b[0massistant: " if self.color else "assistant: ")
            w(ev.text)
        elif isinstance(ev, ToolCallStarted):
            self._switch("tool", "")
            w(f"-> tool {ev.name}({ev.arguments}) [{ev.call_id}]\n")
        elif isinstance(ev, ToolResultRecorded):
            self._switch("tool", "")
            w(f"<- {ev.name} {'ok' if ev.success else 'FAILED'}: {ev.content}\n")
        elif isinstance(ev, TurnFinalized):
            self._switch("", "")
            u = ev.usage
            w(f"\n[done: {ev.finish_reason}, tokens {u.prompt_tokens}+{u.completion_tokens}={u.total_tokens}]\n")
        elif isinstance(ev, TurnFailed):
            self._switch("", "")
            w(f"\n[turn failed ({ev.reason}): {ev.message}]\n")
        else:
            return
        self.stream.flush()


async def cmd_chat(args: argparse.Namespace) -> int:
    from turnlog.adapters.llm import OpenAILLM, RecordingLLM

    # Before opening the store: a configuration error leaves nothing open.
    config = provider_config()
    tools = _tools(args.tools)
    log, messages = await open_store(args.db)
    llm: OpenAILLM | RecordingLLM = OpenAILLM(config)
    if args.record:
        llm = RecordingLLM(llm, args.record)
    async with log, contextlib.aclosing(llm):
        engine = TurnEngine(log, llm, tools=tools, messages=messages)
        conv = args.conversation
        if conv is None:
            conv = await engine.create_conversation(system_prompt=args.system, model=config.model)
        elif await log.last(conv) is None:
            raise unknown_conversation(conv, args.db)
        recording = f", recording to {args.record}" if args.record else ""
        out(
            f"conversation {conv} in {args.db} with {config.name} model {config.model}{recording} "
            "(empty line or EOF ends)\n"
        )
        render = ChatRenderer(sys.stdout)
        interactive = sys.stdin.isatty()
        turns = failed = 0
        while True:
            if interactive:
                out("\nyou> ")
            line = sys.stdin.readline()
            if not line or not line.strip() or line.strip() in ("/quit", "/exit"):
                break
            request = TurnRequest(line.rstrip("\n"), thinking=args.thinking, enabled_tools=tools.names())
            turns += 1
            async for rec in engine.run_turn(conv, request):
                render(rec)
                failed += isinstance(rec.event, TurnFailed)
    if failed:
        print(f"turnlog: chat: {failed} of {turns} turn(s) failed (conversation {conv})", file=sys.stderr)
        return 1
    return 0


def register(subparsers: Subparsers) -> None:
    p = add_command(
        subparsers,
        "chat",
        cmd_chat,
        "chat with a real model, one message a line (OPENAI_API_KEY, OPENAI_BASE_URL, TURNLOG_MODEL, ...)",
    )
    p.add_argument("--conversation", help="continue this conversation instead of starting one")
    p.add_argument("--system", help="system prompt of a new conversation")
    p.add_argument("--thinking", action="store_true", help="ask the model to think (the provider's switch)")
    add_tools(p, "none")
    p.add_argument(
        "--record",
        metavar="DIR",
        help="save each model call's raw provider stream as DIR/NNNN.sse, for turnlog play and RecordedLLM",
    )

    p = add_command(
        subparsers,
        "play",
        cmd_play,
        "run one turn answered by recorded provider streams (.sse) and print its SSE frames",
    )
    p.add_argument("recordings", nargs="+", metavar="RECORDING.sse", help="one per model call, in order")
    add_mode(p)
    p.add_argument("--message", default="(replaying a recorded stream)", help="the user message of the turn")
    p.add_argument("--model", default="recorded-model", help="model name recorded in the log")
    p.add_argument(
        "--provider", default="recorded", help="provider name recorded in the log (the recording's, to compare)"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the random piece sizes the server sends")
    add_tools(p, "none: a call gets an 'unknown tool' result")
