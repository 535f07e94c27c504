"""The control commands: what a person does to a running turn, written to the log.

    turnlog cancel CONVERSATION [--reason TEXT] [--tenant T] [--subject S]
        append a CancelRequested for the conversation's running turn: the process running it
        (a `turnlog serve` on any host over the same log) ends it as failed (cancelled), keeping
        its partial output; exit 1 when no turn is running (nothing written)

    turnlog approve CONVERSATION CALL_ID [--reason TEXT] [--tenant T] [--subject S]
    turnlog deny CONVERSATION CALL_ID --reason TEXT [--tenant T] [--subject S]
        record a decision on a call of the conversation's parked turn (awaiting approval); the
        last decision it awaited continues the turn here, with the conversation's model
        (``--llm``: the scripted echo model for a conversation ``turnlog serve --llm scripted``
        created, else the OpenAI-compatible one of ``turnlog chat``) and ``--tools``; prints the
        turn's SSE frames from the decision on; exit 1 when the turn then fails

Who asked (or decided) is what ``--tenant`` and ``--subject`` say (default ""): the command line holds the
database itself, so it is trusted as ``turnlog recover`` is, and records the claim as given.
"""

from __future__ import annotations

import argparse

from turnlog.adapters.stores import open_store
from turnlog.engine import (
    LLM,
    ConversationCreated,
    ConversationNotFound,
    Recorded,
    ToolRegistry,
    TurnEngine,
    TurnFailed,
    TurnStarted,
    cancel_turn,
    replay,
)
from turnlog.projections import SseProjector

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


def engine_for(args: argparse.Namespace, log: object, messages: object, created: ConversationCreated) -> TurnEngine:
    """The engine that continues a turn here: the conversation's model (``--llm``), ``--tools``,
    and ``--approval-tool`` names as the server's policy would gate them."""
    from turnlog.adapters.llm import EchoLLM, OpenAILLM

    llm: LLM
    echo = EchoLLM()
    if args.llm == "scripted" or (args.llm == "auto" and created.provider == echo.provider):
        llm = echo
    else:
        llm = OpenAILLM(provider_config())
    tools = load_tools(args.tools, {"demo": demo_tools}) if args.tools else ToolRegistry()
    gated = set(args.approval_tool)

    def approval(started: TurnStarted, name: str, arguments: str) -> bool:
        return name in gated

    return TurnEngine(log, llm, tools=tools, messages=messages, approval=approval if gated else None)  # type: ignore[arg-type]


def add_engine_options(p: argparse.ArgumentParser) -> None:
    """What ``approve``, ``deny`` and ``recover --resume`` continue a turn with."""
    p.add_argument(
        "--llm",
        choices=("auto", "scripted", "openai"),
        default="auto",
        help="the model that continues the turn: auto (default) takes the scripted echo model for a conversation "
        "it created, else the OpenAI-compatible one (OPENAI_BASE_URL, OPENAI_API_KEY, TURNLOG_MODEL, ...)",
    )
    add_tools(p, "none: a call gets an 'unknown tool' result")
    p.add_argument(
        "--approval-tool",
        action="append",
        default=[],
        metavar="NAME",
        help="calls of this tool wait for a decision (repeat; as turnlog serve --approval-tool)",
    )


async def _decide(args: argparse.Namespace, decision: str) -> int:
    log, messages = await open_store(args.db, create=False)
    async with log:
        if await log.last(args.conversation) is None:
            raise unknown_conversation(args.conversation, args.db)
        created = (await log.read(args.conversation, 0, 1))[0].event
        assert isinstance(created, ConversationCreated)
        engine = engine_for(args, log, messages, created)
        try:
            # The frames continue the conversation's: the projector folds what is there first.
            projector = SseProjector(args.mode)
            async for rec in replay(log, args.conversation):
                projector.frame(rec)
            last: Recorded | None = None
            turn = engine.decide(
                args.conversation,
                args.call_id,
                decision,
                reason=args.reason,
                tenant=args.tenant,
                subject=args.subject,
            )
            frames = FrameOut()
            try:
                async for rec in turn:
                    frame = projector.frame(rec)
                    if frame is not None:
                        frames(frame)
                    last = rec
            finally:
                frames.close()
        finally:
            if hasattr(engine.llm, "aclose"):
                await engine.llm.aclose()
    return 1 if last is not None and isinstance(last.event, TurnFailed) else 0


async def cmd_approve(args: argparse.Namespace) -> int:
    return await _decide(args, "approve")


async def cmd_deny(args: argparse.Namespace) -> int:
    return await _decide(args, "deny")


def register(subparsers: Subparsers) -> None:
    p = add_command(subparsers, "cancel", cmd_cancel, "stop the running turn of a conversation (on any server)")
    p.add_argument("conversation", metavar="CONVERSATION")
    p.add_argument("--reason", default="", help="why, recorded with the cancel and in the turn's failure")
    p.add_argument("--tenant", default="", help="who asks: recorded with the cancel")
    p.add_argument("--subject", default="", help="who asks: recorded with the cancel")

    for name, handler, what in (
        ("approve", cmd_approve, "approve a tool call of a parked turn (awaiting approval) and continue the turn"),
        ("deny", cmd_deny, "deny a tool call of a parked turn: its result is the denial; continue the turn"),
    ):
        p = add_command(subparsers, name, handler, what)
        p.add_argument("conversation", metavar="CONVERSATION")
        p.add_argument("call_id", metavar="CALL_ID", help="the call's id (its approval_required frame's call_id)")
        p.add_argument(
            "--reason", default="", required=name == "deny", help="why: recorded; a denial's result carries it"
        )
        p.add_argument("--tenant", default="", help="who decides: recorded with the decision")
        p.add_argument("--subject", default="", help="who decides: recorded with the decision")
        add_mode(p)
        add_engine_options(p)
