"""Approvals and resume, on every store: live frames == replayed frames, live rows == rebuilt
rows, the transcript (one snapshot per scenario, the same on every store), and what a person and
the model see: denials as results, parked turns refusing new turns, resumed turns never running a
non-idempotent tool twice."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import pytest
from turnlog.adapters.llm import ScriptedLLM
from turnlog.engine import (
    AlreadyDecided,
    EngineConfig,
    FixedClock,
    LogError,
    NotAwaitingApproval,
    Recorded,
    SequentialIds,
    StoreUnavailable,
    ToolContext,
    ToolRegistry,
    TurnAwaitingApproval,
    TurnEngine,
    TurnFailed,
    TurnFinalized,
    TurnRequest,
    UnknownCall,
    cancel_turn,
    check_requests,
    replay,
    verify,
)
from turnlog.projections import SseProjector, project, rebuild, render

RUNS: dict[str, list[str]] = {}


def make_tools() -> ToolRegistry:
    tools = ToolRegistry(default_timeout=2.0)

    async def transfer(amount: int) -> str:
        RUNS.setdefault("transfer", []).append(str(amount))
        return f"sent {amount}"

    async def lookup(q: str) -> str:
        return f"found {q}"

    async def charge(amount: int, context: ToolContext) -> str:
        RUNS.setdefault("charge", []).append(context.idempotency_key)
        return f"charged {amount}"

    async def email(to: str) -> str:
        RUNS.setdefault("email", []).append(to)
        return f"mailed {to}"

    tools.register(transfer, requires_approval=True)
    tools.register(lookup)
    tools.register(charge, idempotent=True)
    tools.register(email)
    return tools


TOOLS = ["transfer", "lookup", "charge", "email"]


def call(name: str, args: dict[str, Any], id_: str) -> dict[str, Any]:
    return {"tool": name, "arguments": args, "id": id_}


SCRIPTS: dict[str, list[list[dict[str, Any]]]] = {
    "approve": [[call("transfer", {"amount": 5}, "c1")], [{"text": "Sent 5.", "split": 3}]],
    "deny": [[call("transfer", {"amount": 5}, "c1")], [{"text": "It was denied.", "split": 3}]],
    "some_calls_need_approval": [
        [
            call("transfer", {"amount": 5}, "c1"),
            call("lookup", {"q": "rates"}, "c2"),
            call("transfer", {"amount": 9}, "c3"),
        ],
        [{"text": "One sent, one denied.", "split": 4}],
    ],
    "approval_then_more_iterations": [
        [call("transfer", {"amount": 1}, "c1")],
        [call("lookup", {"q": "balance"}, "c2")],
        [call("transfer", {"amount": 2}, "c3")],
        [{"text": "Both sent.", "split": 2}],
    ],
}
#: Decisions made after each park, in order: (call id, decision, reason).
DECISIONS: dict[str, list[list[tuple[str, str, str]]]] = {
    "approve": [[("c1", "approve", "")]],
    "deny": [[("c1", "deny", "over budget")]],
    "some_calls_need_approval": [[("c1", "approve", "ok"), ("c3", "deny", "too much")]],
    "approval_then_more_iterations": [[("c1", "approve", "")], [("c3", "approve", "again")]],
}


def engine_of(store, script) -> TurnEngine:
    return TurnEngine(
        store.log,
        ScriptedLLM(script),
        tools=make_tools(),
        messages=store.messages,
        clock=FixedClock(),
        ids=SequentialIds(),
        config=EngineConfig(flush_events=4, flush_ms=50.0),
    )


class Live:
    """Every event the engine yields, projected as a client following the whole conversation."""

    def __init__(self) -> None:
        self.projector = SseProjector("delta")
        self.frames: list[bytes] = []
        self.events: list[Recorded] = []

    async def take(self, turn) -> list[Recorded]:
        got = []
        async for rec in turn:
            got.append(rec)
            self.events.append(rec)
            frame = self.projector.frame(rec)
            if frame is not None:
                self.frames.append(frame)
        return got


async def check_invariants(store, conv: str, live: Live) -> list[Recorded]:
    events = [rec async for rec in replay(store.log, conv)]
    assert [r.version for r in live.events] == [r.version for r in events[1:]]
    assert project(events) == live.frames, "live frames differ from the replayed frames"
    live_rows = await store.messages.rows(conv)
    fresh = store.fresh_messages()
    await rebuild(store.log, fresh)
    assert await fresh.rows(conv) == live_rows, "live rows differ from the rebuilt rows"
    assert (await verify(store.log)).ok
    # Every request, the resumed turn's too, is rebuilt from the log to its recorded digest.
    checks = await check_requests(store.log, conv, ScriptedLLM([]))
    assert checks and all(c.ok for c in checks), checks
    return events


TRANSCRIPTS = Path(__file__).parent / "transcripts"


def scenario_snapshot(name: str, text: str) -> str:
    """The scenario's transcript as stored (the same on every store); written when
    ``TURNLOG_UPDATE_TRANSCRIPTS=1``."""
    path = TRANSCRIPTS / f"{name}.txt"
    if os.environ.get("TURNLOG_UPDATE_TRANSCRIPTS") == "1":
        TRANSCRIPTS.mkdir(exist_ok=True)
        path.write_text(text)
    return path.read_text()


@pytest.mark.parametrize("name", list(SCRIPTS))
async def test_approval_scenario(store, name: str) -> None:
    RUNS.clear()
    engine = engine_of(store, SCRIPTS[name])
    conv = await engine.create_conversation(model="test-model")
    live = Live()
    await live.take(engine.run_turn(conv, TurnRequest("Pay the bills", enabled_tools=TOOLS)))
    for park in DECISIONS[name]:
        assert b"event: approval_required" in live.frames[-1]
        # Parked: no new turn, and the rows say so.
        with pytest.raises(TurnAwaitingApproval):
            await live.take(engine.run_turn(conv, TurnRequest("again")))
        rows = await store.messages.rows(conv)
        assert {r.status for r in rows} == {"awaiting_approval"}
        waiting = [json.loads(f.split(b"data: ", 1)[1])["call_id"] for f in live.frames if b"approval_required" in f]
        assert set(waiting) >= {d[0] for d in park}
        for call_id, decision, reason in park:
            await live.take(engine.decide(conv, call_id, decision, reason=reason, tenant="acme", subject="ann"))
        with pytest.raises((AlreadyDecided, NotAwaitingApproval, UnknownCall)):
            await live.take(engine.decide(conv, park[0][0], "approve"))
    events = await check_invariants(store, conv, live)
    assert isinstance(events[-1].event, TurnFinalized)
    assert render(events) == scenario_snapshot(name, render(events))
    rows = await store.messages.rows(conv)
    content = json.loads(rows[-1].content)
    decided = {a["call_id"]: a["decision"] for a in content["approvals"]}
    assert decided == {c: d for park in DECISIONS[name] for c, d, _ in park}
    denied = [c for park in DECISIONS[name] for c, d, _ in park if d == "deny"]
    results = {e.event.call_id: e.event for e in events if e.type == "tool_result_recorded"}
    for c in denied:
        assert not results[c].success and "denied by tenant 'acme' subject 'ann'" in results[c].content
    # A denied call never ran; an approved one ran once.
    approved_amounts = [
        json.loads(e.event.arguments)["amount"]
        for e in events
        if e.type == "tool_call_started" and e.event.name == "transfer" and e.event.call_id not in denied
    ]
    assert RUNS.get("transfer", []) == [str(a) for a in approved_amounts]


async def test_decisions_are_checked(store) -> None:
    engine = engine_of(store, SCRIPTS["some_calls_need_approval"])
    conv = await engine.create_conversation(model="test-model")
    with pytest.raises(NotAwaitingApproval, match="has no turn yet"):
        await anext(engine.decide(conv, "c1", "approve"))
    [rec async for rec in engine.run_turn(conv, TurnRequest("Pay", enabled_tools=TOOLS))]
    with pytest.raises(UnknownCall, match="'c2'"):  # lookup needs no approval
        await anext(engine.decide(conv, "c2", "approve"))
    [rec async for rec in engine.decide(conv, "c1", "approve")]
    with pytest.raises(AlreadyDecided):
        await anext(engine.decide(conv, "c1", "deny"))
    head = (await store.log.last(conv)).version
    assert head == (await store.log.last(conv)).version  # nothing written by refusals


async def test_cancel_ends_a_parked_turn(store) -> None:
    RUNS.clear()
    engine = engine_of(store, SCRIPTS["approve"])
    conv = await engine.create_conversation(model="test-model")
    live = Live()
    await live.take(engine.run_turn(conv, TurnRequest("Pay", enabled_tools=TOOLS)))
    rec = await cancel_turn(store.log, conv, tenant="acme", subject="bob", reason="not today", messages=store.messages)
    failed = (await store.log.last(conv)).event
    assert isinstance(failed, TurnFailed) and failed.reason == "cancelled"
    assert f"cancel_requested at version {rec.version}): not today" in failed.message
    events = [r async for r in replay(store.log, conv)]
    for r in events[len(live.events) + 1 :]:
        frame = live.projector.frame(r)
        if frame is not None:
            live.frames.append(frame)
        live.events.append(r)
    await check_invariants(store, conv, live)
    with pytest.raises(NotAwaitingApproval, match="has ended"):
        await anext(engine.decide(conv, "c1", "approve"))
    assert "transfer" not in RUNS  # the call awaiting approval never ran


# -- resume after a crash -------------------------------------------------------------------------


class Crash:
    """The log of a process that dies at the first append ``when`` says: that append and every
    later one fail (the turn's end is never written)."""

    def __init__(self, log, when) -> None:
        self._log, self._when, self.dead = log, when, False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._log, name)

    async def append(self, stream_id, events, expected_version, **kw):
        if self.dead or self._when([e.event for e in events]):
            self.dead = True
            raise StoreUnavailable("the process died")
        return await self._log.append(stream_id, events, expected_version, **kw)


def _nth_batch_with(kind: str, n: int) -> Any:
    seen = [0]

    def when(events: list) -> bool:
        if any(type(e).__name__ == kind for e in events):
            seen[0] += 1
        return seen[0] >= n

    return when


RESUME: dict[str, tuple[list[list[dict[str, Any]]], Any]] = {
    # The model is cut off mid-answer: it is called again, the partial words stay in the log.
    "resume_mid_answer": (
        [[{"text": "Partial words that get cut", "split": 2}], [{"text": "A whole answer.", "split": 3}]],
        lambda: _nth_batch_with("TextDelta", 2),
    ),
    # Two tools started; their results are lost: the idempotent one runs again (same key), the
    # other is recorded as an unknown outcome, never run twice.
    "resume_tools_cut_off": (
        [
            [call("charge", {"amount": 3}, "k1"), call("email", {"to": "ann"}, "k2")],
            [{"text": "Charged; the mail may have gone.", "split": 4}],
        ],
        lambda: _nth_batch_with("ToolResultRecorded", 1),
    ),
}


@pytest.mark.parametrize("name", list(RESUME))
async def test_resume_scenario(store, name: str) -> None:
    RUNS.clear()
    script, when = RESUME[name]
    crashing = Crash(store.log, when())
    first = engine_of(store, script)
    first.log = crashing
    conv = await engine_of(store, script).create_conversation(model="test-model")
    live = Live()
    with pytest.raises(LogError):
        await live.take(first.run_turn(conv, TurnRequest("Do it", enabled_tools=TOOLS)))
    await asyncio.sleep(0)
    second = engine_of(store, script)
    second.llm = ScriptedLLM(script[1:])  # the rest of the script: the first call was made
    await store.messages.catch_up(store.log, conv)
    await live.take(second.resume_turn(conv, owner="srv-2", subject="ops"))
    events = await check_invariants(store, conv, live)
    assert isinstance(events[-1].event, TurnFinalized)
    assert render(events) == scenario_snapshot(name, render(events))
    rows = await store.messages.rows(conv)
    content = json.loads(rows[-1].content)
    if name == "resume_mid_answer":
        assert content["text"] == "A whole answer."  # the cut-off words are not doubled into it
    else:
        results = {e.event.call_id: e.event for e in events if e.type == "tool_result_recorded"}
        assert results["k1"].success and RUNS["charge"] == ["k1", "k1"]
        assert not results["k2"].success and results["k2"].content.startswith("error: outcome unknown")
        assert RUNS["email"] == ["ann"]


async def test_two_deciders_at_once_one_continues_the_turn(store) -> None:
    RUNS.clear()
    engine = engine_of(store, SCRIPTS["some_calls_need_approval"])
    conv = await engine.create_conversation(model="test-model")
    [rec async for rec in engine.run_turn(conv, TurnRequest("Pay", enabled_tools=TOOLS))]

    async def decide(call_id: str) -> list[Recorded]:
        return [rec async for rec in engine.decide(conv, call_id, "approve", subject=call_id)]

    first, second = await asyncio.gather(decide("c1"), decide("c3"))
    events = [rec async for rec in replay(store.log, conv)]
    assert isinstance(events[-1].event, TurnFinalized)
    # Each decision is recorded once; exactly one of the two deciders took the turn up.
    assert [e.type for e in events].count("approval_decided") == 2
    assert [e.type for e in events].count("turn_resumed") == 1
    assert sum(any(r.type == "turn_resumed" for r in got) for got in (first, second)) == 1
    assert RUNS["transfer"] == ["5", "9"]
