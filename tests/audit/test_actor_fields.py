"""Who acted: ``ConversationCreated`` records its creator (``tenant``, ``subject``) and every
``TurnStarted`` the turn's (``TurnRequest.tenant``/``subject``), on every store; the transcript
shows them; logs written before the fields existed still load, verify and replay."""

from __future__ import annotations

import msgspec
import pytest
from turnlog.adapters.llm import ScriptedLLM
from turnlog.engine import (
    GENESIS_HASH,
    ConversationCreated,
    FixedClock,
    InMemoryEventLog,
    IterationStarted,
    NewEvent,
    SequentialIds,
    TurnEngine,
    TurnRequest,
    TurnStarted,
    chain_hash,
    load,
    replay,
    verify,
)
from turnlog.projections import project, rebuild, render, stream_sse


async def test_the_actor_is_recorded_on_every_store(store) -> None:  # type: ignore[no-untyped-def]
    llm = ScriptedLLM([[{"text": "Hi Alice.", "split": 3}], [{"text": "Hi Bob.", "split": 3}]])
    engine = TurnEngine(store.log, llm, messages=store.messages, clock=FixedClock(), ids=SequentialIds())
    conv = await engine.create_conversation(system_prompt="Greet.", model="m", tenant="acme", subject="alice")
    live: list[bytes] = []
    for text, subject in (("hello", "alice"), ("hello again", "bob")):
        request = TurnRequest(text, tenant="acme", subject=subject, user_id="u-1")
        live += [f async for f in stream_sse(engine, conv, request, "delta")]

    events = [rec async for rec in replay(store.log, conv)]
    assert project(events, "delta") == live  # live == replayed
    fresh = store.fresh_messages()
    live_rows = await store.messages.rows(conv)
    await rebuild(store.log, fresh)
    assert await fresh.rows(conv) == live_rows  # live rows == rebuilt rows
    assert (await verify(store.log)).ok

    created = events[0].event
    assert isinstance(created, ConversationCreated) and (created.tenant, created.subject) == ("acme", "alice")
    turns = [(e.event.tenant, e.event.subject) for e in events if isinstance(e.event, TurnStarted)]
    assert turns == [("acme", "alice"), ("acme", "bob")]
    lines = render(events).splitlines()
    assert lines[0] == 'conversation <conv-1> provider=scripted model=m tenant="acme" subject="alice"'
    assert [line for line in lines if line.startswith("turn ")] == [
        'turn <turn-1> v2 tenant="acme" subject="alice"',
        f"turn <turn-2> v{events[[type(e.event) for e in events].index(TurnStarted, 2)].version} "
        'tenant="acme" subject="bob"',
    ]


async def test_without_an_actor_the_fields_are_empty() -> None:
    log = InMemoryEventLog()
    engine = TurnEngine(log, ScriptedLLM([[{"text": "ok"}]]), clock=FixedClock(), ids=SequentialIds())
    conv = await engine.create_conversation()
    [r async for r in engine.run_turn(conv, TurnRequest("hi"))]
    events = [r async for r in replay(log, conv)]
    assert (events[0].event.tenant, events[0].event.subject) == ("", "")  # type: ignore[attr-defined]
    assert (events[1].event.tenant, events[1].event.subject) == ("", "")  # type: ignore[attr-defined]
    assert 'tenant="" subject=""' in render(events).splitlines()[0]


#: Payloads as a build from before the actor and model fields wrote them (schema 1, same tags).
OLD = [
    (
        "conversation_created",
        b'{"type":"conversation_created","system_prompt":"s","provider":"openai","model":"","temperature":null,'
        b'"max_tokens":null,"thinking":false,"tenant":"acme","title":""}',
    ),
    (
        "turn_started",
        b'{"type":"turn_started","user_message":"hi","user_message_id":"m1","assistant_message_id":"m2",'
        b'"provider":"openai","model":"","temperature":null,"max_tokens":null,"thinking":false,"tools":[],'
        b'"system_prompt":"s","max_iterations":20,"permission_level":1}',
    ),
    ("iteration_started", b'{"type":"iteration_started","iteration":1,"request_sha256":"' + b"ab" * 32 + b'"}'),
]


def test_old_payloads_load_with_the_new_fields_empty_and_their_chain_still_verifies() -> None:
    prev = GENESIS_HASH
    loaded = []
    for version, (type_, payload) in enumerate(OLD, start=1):
        turn = "" if version == 1 else "t1"
        at = "2025-01-01T00:00:00Z"
        h = chain_hash(prev, "c", version, turn, at, type_, 1, payload)
        rec = load("c", version, version, turn, at, type_, 1, prev, h, payload)
        assert rec.payload == payload  # the stored bytes, not a re-encoding
        loaded.append(rec.event)
        prev = h
    created, started, iteration = loaded
    assert isinstance(created, ConversationCreated) and (created.tenant, created.subject) == ("acme", "")
    assert isinstance(started, TurnStarted) and (started.tenant, started.subject, started.model) == ("", "", "")
    assert isinstance(iteration, IterationStarted) and iteration.model == ""
    # A new build writes the fields (with their defaults when nobody is named).
    assert msgspec.json.decode(msgspec.json.encode(created))["subject"] == ""


@pytest.mark.parametrize("field", ["subject"])
def test_the_new_fields_are_added_last_with_defaults(field: str) -> None:
    # The evolution rule: add with a default, never rename or retype (positional construction of
    # the older fields keeps its meaning).
    # parent (issue 12: a fork's link) came after it, the same way.
    assert ConversationCreated.__struct_fields__[-2:] == (field, "parent")
    assert ConversationCreated.__struct_defaults__[-1] is msgspec.UNSET  # not written when unset
    # owner (issue 13: the server running the turn) came after them, then history and
    # history_dropped (issue 12: how earlier turns were repeated), the same way.
    assert TurnStarted.__struct_fields__[-5:] == ("tenant", "subject", "owner", "history", "history_dropped")
    assert TurnStarted.__struct_defaults__[-5:] == ("", "", "", "text", 0)
    assert IterationStarted.__struct_fields__ == ("iteration", "request_sha256", "model")
    assert NewEvent(ConversationCreated()).event.subject == ""  # type: ignore[attr-defined]
