"""A turn whose user message and tool result are distinctive (canaries), run through the engine
on a store; shared by the erasure tests."""

from __future__ import annotations

from typing import Any

from turnlog.adapters.llm import ScriptedLLM
from turnlog.adapters.stores import Store
from turnlog.engine import FixedClock, ToolRegistry, TurnEngine, TurnRequest, UuidIds, replay
from turnlog.projections import project, stream_sse

CANARY_USER = "Zanzibar-7f3a-canary my card is 4929"
CANARY_TOOL = "Quetzal-91bd-canary result"
CANARY_TEXT = "Okapi-55e0-canary answer"
CANARIES = (CANARY_USER, CANARY_TOOL, CANARY_TEXT, "Be-brief-c4n4ry", "Title-c4n4ry")

SCRIPT: list[list[dict[str, Any]]] = [
    [
        {"reasoning": "Look it up first.", "split": 3},
        {"tool": "lookup", "arguments": {"q": "Zanzibar-7f3a-canary"}, "id": "c1"},
    ],
    [{"text": CANARY_TEXT, "split": 4}],
]


def lookup_tools() -> ToolRegistry:
    tools = ToolRegistry()

    @tools.tool()
    async def lookup(q: str) -> dict[str, Any]:
        return {"found": CANARY_TOOL}

    return tools


async def run_turn(
    store: Store, *, tenant: str = "", subject: str = "", clock: FixedClock | None = None, conv: str | None = None
) -> tuple[str, list[bytes]]:
    """A conversation with one tool-using turn; returns its id and the live SSE frames, checked
    against the frames replayed from the log (live == replay)."""
    engine = TurnEngine(
        store.log,
        ScriptedLLM(SCRIPT),
        tools=lookup_tools(),
        messages=store.messages,
        clock=clock or FixedClock(),
        ids=UuidIds(),
    )
    conv = await engine.create_conversation(
        conv, system_prompt="Be-brief-c4n4ry", title="Title-c4n4ry", tenant=tenant, subject=subject
    )
    request = TurnRequest(CANARY_USER, enabled_tools=["lookup"], thinking=True)
    live = [f async for f in stream_sse(engine, conv, request, "delta")]
    events = [rec async for rec in replay(store.log, conv)]
    assert project(events, "delta") == live
    return conv, live
