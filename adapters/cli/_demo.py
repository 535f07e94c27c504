"""``turnlog demo``: a scripted two-turn conversation, streamed live, replayed, stored and verified.

    turnlog demo [--db PATH] [--mode full|delta] [--llm scripted|openai]

Turn 1 thinks, calls two tools in parallel (arguments split across chunks), then answers.
Turn 2 is a plain answer that the model writes with turn 1 in its history. ``--llm openai`` asks
a real model instead of the script (OPENAI_BASE_URL / OPENAI_API_KEY / TURNLOG_MODEL). It exits 1
when a turn failed, or when the replay or the hash chain does not hold.

The demo tools (``demo_tools``: ``get_weather`` for two cities) are also what ``turnlog serve``
offers its scripted model when it is given no ``--tools``, and what ``--tools demo`` names.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
from typing import Any

from turnlog.adapters.stores import open_store
from turnlog.engine import LLM, ToolRegistry, TurnEngine, TurnFailed, TurnRequest, replay, verify
from turnlog.projections import project, stream_sse

from ._common import Subparsers, add_command, add_mode, out, provider_config

DEMO_SCRIPT: list[list[dict[str, Any]]] = [
    [
        {"reasoning": "The user wants the weather in two cities. I can ask for both at once.", "split": 9},
        {"tool": "get_weather", "arguments": {"city": "Paris"}, "id": "call_paris", "split": 6},
        {"tool": "get_weather", "arguments": {"city": "Tokyo"}, "id": "call_tokyo", "split": 6},
        {"usage": [85, 42, 127]},
    ],
    [
        {"text": "Paris is 18°C and cloudy; Tokyo is 24°C and sunny. Tokyo is warmer by 6°C.", "split": 7},
        {"usage": [160, 24, 184]},
    ],
    [
        {"text": "Pack a light jacket for Paris; a T-shirt will do in Tokyo.", "split": 7},
        {"usage": [210, 16, 226]},
    ],
]

WEATHER = {"Paris": {"temp_c": 18, "sky": "cloudy"}, "Tokyo": {"temp_c": 24, "sky": "sunny"}}


def demo_tools() -> ToolRegistry:
    """``get_weather(city)``, with a station in Paris and Tokyo: the demo's tools, and
    ``turnlog serve``'s when it is given no ``--tools``."""
    tools = ToolRegistry()

    async def get_weather(city: str) -> dict[str, Any]:
        """Current weather for a city."""
        await asyncio.sleep(0.02)  # as a real API would take a moment
        if city not in WEATHER:
            return {"success": False, "error": f"no station in {city}"}
        return {"city": city, **WEATHER[city]}

    tools.register(
        get_weather,
        parameters={"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    )
    return tools


async def cmd_demo(args: argparse.Namespace) -> int:
    from turnlog.adapters.llm import OpenAILLM, ScriptedLLM

    llm: LLM
    if args.llm == "openai":
        config = provider_config()  # before opening the store: a config error leaves nothing open
        llm, model = OpenAILLM(config), config.model
    else:
        llm, model = ScriptedLLM(DEMO_SCRIPT), "demo-model"
    log, messages = await open_store(args.db)
    async with log, contextlib.aclosing(llm) if hasattr(llm, "aclose") else contextlib.nullcontext():
        engine = TurnEngine(log, llm, tools=demo_tools(), messages=messages)
        conv = await engine.create_conversation(system_prompt="You are a concise travel assistant.", model=model)
        out(f"conversation {conv} in {args.db} (SSE mode: {args.mode})\n")
        live: list[bytes] = []
        for n, text in enumerate(
            ["What's the weather in Paris and Tokyo right now?", "What should I pack for each?"], start=1
        ):
            out(f"\n=== turn {n}, live: {text}\n")
            async for frame in stream_sse(
                engine, conv, TurnRequest(text, enabled_tools=["get_weather"], thinking=True), args.mode
            ):
                live.append(frame)
                out(frame)

        events = [rec async for rec in replay(log, conv)]
        replayed = project(events, args.mode)
        same = replayed == live
        out(
            f"=== replay from the log: {len(events)} events -> {len(replayed)} frames, "
            f"{sum(map(len, replayed))} bytes: {'IDENTICAL to the live stream' if same else 'DIFFERENT'}\n"
        )
        out("\n=== stored message rows\n")
        for row in await messages.rows(conv):
            content = json.loads(row.content)
            out(
                f"{row.seq:>4} {row.role:<9} {row.status:<9} id={row.id} tokens={row.token_count} "
                f"text={content.get('text', '')!r} steps={len(content.get('steps', []))}\n"
            )
        report = await verify(log, conv)
        out(f"\n=== verify: {'ok, hash chain intact' if report.ok else 'BROKEN'} ({report.events} events)\n")
        out(f"\nTry: turnlog replay {conv} --db {args.db} --format transcript\n")
        failed = [rec.event for rec in events if isinstance(rec.event, TurnFailed)]
        for ev in failed:
            print(f"turnlog: demo: a turn of {conv} failed ({ev.reason}): {ev.message}", file=sys.stderr)
        return 0 if same and report.ok and not failed else 1


def register(subparsers: Subparsers) -> None:
    p = add_command(subparsers, "demo", cmd_demo, "run a scripted two-turn conversation, replay it and verify it")
    add_mode(p)
    p.add_argument(
        "--llm",
        choices=("scripted", "openai"),
        default="scripted",
        help="openai: OPENAI_BASE_URL/_API_KEY, TURNLOG_MODEL",
    )
