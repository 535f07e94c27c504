"""Forks in the engine, on every store (memory, SQLite, PostgreSQL): the fork's first event names
its parent, the version and the parent's hash there; its requests repeat the parent's turns up to
there (regenerating an answer sends the model the very request the original did); live frames ==
replayed frames and live rows == rebuilt rows for the fork; the log alone rebuilds its requests;
verify checks the link, and a parent changed under a fork is reported on the fork."""

from __future__ import annotations

import json

import msgspec
import pytest
from turnlog.adapters.llm import ScriptedLLM
from turnlog.engine import (
    GENESIS_HASH,
    ConversationCreated,
    ConversationNotFound,
    EngineConfig,
    FixedClock,
    ForkPoint,
    InMemoryEventLog,
    IntegrityError,
    InvalidFork,
    NewEvent,
    SequentialIds,
    TurnEngine,
    TurnFinalized,
    TurnRequest,
    TurnStarted,
    chain_hash,
    check_requests,
    load,
    replay,
    seal,
    verify,
    verify_log,
)
from turnlog.projections import project, rebuild, stream_sse

from ..engine.test_scenarios import ALL_TOOLS, make_tools

WEATHER = [
    [{"text": "Let me look.", "split": 2}, {"tool": "get_weather", "arguments": {"city": "Paris"}}],
    [{"text": "It is 15°C in Paris.", "split": 3}],
]
ANSWER = [[{"text": "Take a coat.", "split": 2}]]


#: One id source per log: the engines of a test share it (message ids are unique in a store).
_IDS: dict[int, SequentialIds] = {}


def engine_for(store, script) -> TurnEngine:  # type: ignore[no-untyped-def]
    return TurnEngine(
        store.log,
        ScriptedLLM(script),
        tools=make_tools(),
        messages=store.messages,
        clock=FixedClock(),
        ids=_IDS.setdefault(id(store.log), SequentialIds()),
        config=EngineConfig(flush_events=4, flush_ms=50.0),
    )


async def live_turn(engine: TurnEngine, conv: str, message: str) -> list[bytes]:
    return [f async for f in stream_sse(engine, conv, TurnRequest(message, enabled_tools=ALL_TOOLS))]


async def invariants(store, conv: str, live: list[bytes], after: int) -> None:  # type: ignore[no-untyped-def]
    """Live frames == the replayed frames of the same events; live rows == rebuilt rows."""
    events = [rec async for rec in replay(store.log, conv)]
    assert project(events, "delta")[-len(live) :] == live, "live frames differ from the replayed frames"
    assert next(iter([rec async for rec in replay(store.log, conv, after)])).version == after + 1
    live_rows = await store.messages.rows(conv)
    fresh = store.fresh_messages()
    await rebuild(store.log, fresh)
    assert await fresh.rows(conv) == live_rows, "live rows differ from the rebuilt rows"


async def parent_with_two_turns(store):  # type: ignore[no-untyped-def]
    """A conversation: a turn with a tool call, then a plain one. Returns (conv, the version that
    ends turn 1, the bodies the model got)."""
    engine = engine_for(store, [*WEATHER, *ANSWER])
    conv = await engine.create_conversation("parent", system_prompt="Be brief.", model="test-model", title="trip")
    await live_turn(engine, conv, "Weather in Paris?")
    boundary = (await store.log.last(conv)).version
    await live_turn(engine, conv, "What should I wear?")
    return conv, boundary, engine.llm.bodies


async def test_regenerating_the_last_answer_sends_the_same_request(store) -> None:
    parent, boundary, bodies = await parent_with_two_turns(store)
    engine = engine_for(store, [[{"text": "Bring an umbrella.", "split": 2}]])
    fork = await engine.fork(parent, boundary, subject="ann")
    first = (await store.log.read(fork, 0, 1))[0]
    created = first.event
    parent_event = (await store.log.read(parent, boundary - 1, 1))[0]
    assert isinstance(created, ConversationCreated)
    assert created.parent == ForkPoint(parent, boundary, parent_event.hash)
    assert (created.system_prompt, created.model, created.title, created.subject) == (
        "Be brief.",
        "test-model",
        "trip",
        "ann",
    )
    live = await live_turn(engine, fork, "What should I wear?")
    # The model got byte for byte the request of the parent's last turn: the history came
    # through the link, turn 1's tool call and result included.
    assert engine.llm.bodies == [bodies[-1]]
    sent = json.loads(bodies[-1])["messages"]
    assert [m["role"] for m in sent] == ["system", "user", "assistant", "tool", "assistant", "user"]
    assert sent[2]["tool_calls"][0]["id"] == sent[3]["tool_call_id"]
    await invariants(store, fork, live, 1)
    # The parent is untouched; the fork's rows are its own turn only.
    assert [r.role for r in await store.messages.rows(fork)] == ["user", "assistant"]
    assert len(await store.messages.rows(parent)) == 4
    # The log alone explains every request of the fork (history read through the link).
    checks = await check_requests(store.log, fork, ScriptedLLM([]))
    assert len(checks) == 1 and checks[0].ok
    assert (await verify(store.log, fork)).ok and (await verify(store.log)).ok


async def test_editing_an_earlier_message_forks_before_its_turn(store) -> None:
    parent, _, _ = await parent_with_two_turns(store)
    engine = engine_for(store, [[{"text": "Sunny.", "split": 1}]])
    fork = await engine.fork(parent, 1)  # before the first turn: the settings, no history
    live = await live_turn(engine, fork, "Weather in Rome?")
    assert json.loads(engine.llm.bodies[0])["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather in Rome?"},
    ]
    await invariants(store, fork, live, 1)
    assert (await verify(store.log, fork)).ok


async def test_a_fork_of_a_fork_reads_through_both_links(store) -> None:
    parent, boundary, _ = await parent_with_two_turns(store)
    engine = engine_for(store, [[{"text": "Coat.", "split": 1}], [{"text": "Scarf.", "split": 1}]])
    child = await engine.fork(parent, boundary)
    await live_turn(engine, child, "Wear?")
    grandchild = await engine.fork(child, (await store.log.last(child)).version)
    live = await live_turn(engine, grandchild, "And?")
    roles = [m["role"] for m in json.loads(engine.llm.bodies[-1])["messages"]]
    assert roles == ["system", "user", "assistant", "tool", "assistant", "user", "assistant", "user"]
    await invariants(store, grandchild, live, 1)
    assert all(c.ok for c in await check_requests(store.log, grandchild, ScriptedLLM([])))
    assert (await verify(store.log, grandchild)).ok


async def test_only_a_turn_boundary_can_be_forked(store) -> None:
    parent, boundary, _ = await parent_with_two_turns(store)
    engine = engine_for(store, [])
    head = (await store.log.last(parent)).version
    for version in (2, boundary - 1, boundary + 1, head + 1, 0):
        with pytest.raises(InvalidFork) as err:
            await engine.fork(parent, version)
        assert err.value.code == "invalid_fork"
        assert "turn boundary" in str(err.value) or "is not a version" in str(err.value)
    with pytest.raises(ConversationNotFound):
        await engine.fork("nope", 1)
    assert sorted(await store.log.streams()) == [parent]  # nothing written
    # max_fork_depth bounds a chain of forks.
    shallow = TurnEngine(store.log, ScriptedLLM([]), messages=store.messages, config=EngineConfig(max_fork_depth=1))
    child = await shallow.fork(parent, head)
    with pytest.raises(InvalidFork, match="max_fork_depth"):
        await shallow.fork(child, 1)


def resealed_with(log: InMemoryEventLog, conv: str, change) -> None:  # type: ignore[no-untyped-def]
    """Rewrite ``conv`` in the memory log with ``change`` applied to each event and its chain
    sealed again, positions kept (a forger with write access): it verifies on its own."""
    old = log._raw(conv)
    sealed = seal(
        conv,
        [NewEvent(change(r.event), r.turn_id) for r in old],
        head_version=0,
        head_hash=GENESIS_HASH,
        first_position=1,
        recorded_at="2026-01-01T00:00:00Z",
    )
    new = [msgspec.structs.replace(n, position=o.position) for n, o in zip(sealed, old, strict=True)]
    for rec in new:
        log._all[rec.position - 1] = rec  # type: ignore[attr-defined]
    old[:] = new


async def test_a_parent_changed_under_a_fork_is_reported_on_the_fork() -> None:
    from turnlog.engine import InMemoryEventLog as Memory
    from turnlog.projections import MemoryMessageStore

    class Store:
        def __init__(self) -> None:
            self.log, self.messages = Memory(), MemoryMessageStore()

    store = Store()
    parent, boundary, _ = await parent_with_two_turns(store)
    engine = engine_for(store, [[{"text": "Coat.", "split": 1}]])
    fork = await engine.fork(parent, boundary)
    await live_turn(engine, fork, "Wear?")
    assert (await verify(store.log, fork)).ok
    # The parent's first turn is rewritten (another user message) and its chain sealed again:
    # the parent verifies on its own, the fork's link no longer holds.
    resealed_with(
        store.log,
        parent,
        lambda ev: msgspec.structs.replace(ev, user_message="forged") if isinstance(ev, TurnStarted) else ev,
    )
    assert (await verify(store.log, parent)).ok
    report = await verify(store.log, fork)
    assert not report.ok
    assert f"forked from {parent!r} at version {boundary}" in str(report.broken[0])
    assert "the parent was changed" in str(report.broken[0])
    assert not (await verify(store.log)).ok
    assert any("forked from" in str(p) for p in (await verify_log(store.log)).problems)
    # ...and a turn of the fork refuses to read a history it cannot trust.
    with pytest.raises(IntegrityError, match="the parent was changed"):
        [r async for r in engine.run_turn(fork, TurnRequest("again"))]


async def test_a_parent_missing_or_broken_before_the_fork_point_is_reported(store) -> None:
    parent, boundary, _ = await parent_with_two_turns(store)
    engine = engine_for(store, [])
    fork = await engine.fork(parent, boundary)
    # A fork naming a parent that is not there.
    ghost = ConversationCreated(model="m", parent=ForkPoint("ghost", 3, "0" * 64))
    await store.log.append("orphan", [NewEvent(ghost)], 0, recorded_at="2026-01-01T00:00:00Z")
    report = await verify(store.log, "orphan")
    assert "forked from 'ghost' at version 3: its parent 'ghost' has no event at version 3" in str(report.broken[0])
    assert (await verify(store.log, fork)).ok


def test_an_old_conversation_created_payload_decodes_and_verifies_unchanged() -> None:
    # Bytes written before forks existed: no "parent" key. They decode (parent None) and their
    # stored hash still verifies: the hash covers the stored bytes, never a re-encoding.
    payload = (
        b'{"type":"conversation_created","system_prompt":null,"provider":"scripted","model":"m",'
        b'"temperature":null,"max_tokens":null,"thinking":false,"tenant":"","title":"","subject":""}'
    )
    h = chain_hash("0" * 64, "old", 1, "", "2026-01-01T00:00:00Z", "conversation_created", 1, payload)
    rec = load("old", 1, 1, "", "2026-01-01T00:00:00Z", "conversation_created", 1, "0" * 64, h, payload)
    assert isinstance(rec.event, ConversationCreated) and not rec.event.parent
    assert chain_hash("0" * 64, "old", 1, "", rec.recorded_at, rec.type, rec.schema, rec.payload) == rec.hash
    # A conversation that is not a fork is written with those very bytes: no "parent" key.
    assert msgspec.json.encode(rec.event) == payload
    assert b'"parent":{' in msgspec.json.encode(ConversationCreated(parent=ForkPoint("p", 1, "0" * 64)))


async def test_a_turn_still_finalizes_on_the_fork_after_the_parent_moves_on(store) -> None:
    parent, boundary, _ = await parent_with_two_turns(store)
    engine = engine_for(store, [[{"text": "A.", "split": 1}], *ANSWER])
    fork = await engine.fork(parent, boundary)
    # The parent goes on; the fork's history stays the parent's up to the fork point.
    await live_turn(engine, parent, "Another?")
    await live_turn(engine, fork, "Wear?")
    sent = json.loads(engine.llm.bodies[-1])["messages"]
    assert [m["content"] for m in sent if m["role"] == "user"] == ["Weather in Paris?", "Wear?"]
    last = (await store.log.last(fork)).event
    assert isinstance(last, TurnFinalized)
