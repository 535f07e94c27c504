"""A row store as the engine's ``Messages`` port: ``sink(...).committed`` saves a batch's rows
before it returns, ``catch_up`` and ``history`` bring rows that fell behind the log up to its
head, and ``history`` gives the engine the very messages it would fold from the log."""

from __future__ import annotations

from turnlog.engine import (
    ErrorChunk,
    FinishChunk,
    LogHistory,
    PriorMessage,
    ReasoningChunk,
    TextChunk,
    ToolCall,
    ToolCallChunk,
    TurnEngine,
    TurnFailed,
    TurnFinalized,
    TurnRequest,
    TurnStarted,
)
from turnlog.projections import fold_rows, rebuild, row_text

from ._support import Opened, RowsHarness, ScriptLLM, head, run_turns, tools

STOP, TOOLS = FinishChunk("stop"), FinishChunk("tool_calls")
PLAIN = ("one", [[TextChunk("Hello"), TextChunk(" there."), STOP]])
TOOL_THEN_ANSWER = (
    "two",
    [
        [TextChunk("Let me look."), ToolCallChunk(0, "call_1", "lookup", '{"q": "x"}'), TOOLS],
        [TextChunk("Found "), TextChunk("it."), STOP],
    ],
)
#: Turns that end every way a turn can: (user words, the model's answers), the assistant words the
#: next request repeats (the last iteration's text; an empty answer is left out), and the end.
DONE = "finalized"
TURNS = [
    (PLAIN, ["Hello there."], DONE),
    (TOOL_THEN_ANSWER, ["Found it."], DONE),  # not "Let me look.": only the last iteration's words
    (("three", [[TextChunk("Partial"), ErrorChunk("overloaded (503)")]]), ["Partial"], "llm_error"),
    (("four", [[ErrorChunk("down")]]), [], "llm_error"),  # before a word
    (("five", [[ToolCallChunk(0, "call_1", "lookup", '{"q": "y"}'), TOOLS], [STOP]]), [], DONE),  # empty answer
    (("six", [[ToolCallChunk(0, "c", "explode", "{}"), TOOLS], [TextChunk("It failed."), STOP]]), ["It failed."], DONE),
    (("seven", [[ToolCallChunk(0, "c", "nope", "{"), TOOLS], [TextChunk("No tool."), STOP]]), ["No tool."], DONE),
    (
        ("Grüße 👋", [[ReasoningChunk("hmm"), TextChunk("Hallo, "), TextChunk("Welt 🌍"), STOP]]),
        ["Hallo, Welt 🌍"],
        DONE,
    ),
    (("nine", [[TextChunk("Again."), ToolCallChunk(0, "c", "lookup", "{}"), TOOLS]] * 2), ["Again."], "max_iterations"),
    (("ten", [[ReasoningChunk("just thinking"), STOP]]), [], DONE),  # reasoning only: an empty answer
]


class PortContract(RowsHarness):
    async def test_the_sink_saves_each_batch_before_it_returns(self, store: Opened) -> None:
        log, m = store
        # The log of a finished turn, written without rows; then its batches are handed to a sink.
        conv = await run_turns(log, None, None, [TOOL_THEN_ANSWER])
        events = await log.read(conv)
        started = next(i for i, r in enumerate(events) if type(r.event) is TurnStarted)
        first, rest = events[started : started + 2], events[started + 2 :]
        sink = m.sink(conv, events[started - 1].version)
        await sink.committed(first)
        assert [(r.role, r.status, row_text(r)) for r in await m.rows(conv)] == [("user", "live", "two")]
        assert await m.applied_version(conv) == first[-1].version
        await sink.committed(rest)
        assert await m.rows(conv) == fold_rows(conv, events)
        assert [(r.role, r.status, row_text(r)) for r in await m.rows(conv)] == [
            ("user", "finalized", "two"),
            ("assistant", "finalized", "Found it."),
        ]
        assert await m.applied_version(conv) == events[-1].version

    async def test_the_engine_finds_the_rows_of_each_event_it_yields(self, store: Opened) -> None:
        log, m = store
        conv = await run_turns(log, m, None, [PLAIN])
        user, answers = TOOL_THEN_ANSWER
        engine = TurnEngine(log, ScriptLLM(answers), tools=tools(), messages=m)
        seen = []
        async for rec in engine.run_turn(conv, TurnRequest(user, enabled_tools=["lookup"])):
            if type(rec.event) in (TurnStarted, TurnFinalized):
                mine = [(r.role, r.status) for r in await m.rows(conv) if r.turn_id == rec.turn_id]
                seen.append((type(rec.event).__name__, mine, await m.applied_version(conv) >= rec.version))
        assert seen == [
            ("TurnStarted", [("user", "live")], True),
            ("TurnFinalized", [("user", "finalized"), ("assistant", "finalized")], True),
        ]
        assert [row_text(r) for r in await m.rows(conv)] == ["one", "Hello there.", "two", "Found it."]

    async def test_catch_up_writes_what_the_log_holds_and_can_repeat(self, store: Opened) -> None:
        log, m = store
        conv = await run_turns(log, None, None, [PLAIN, TOOL_THEN_ANSWER])  # no rows were written
        assert await m.rows(conv) == []
        assert await m.catch_up(log, conv) == 4
        expected = fold_rows(conv, await log.read(conv))
        assert await m.rows(conv) == expected and len(expected) == 4
        assert await m.applied_version(conv) == await head(log, conv)
        await m.catch_up(log, conv)
        assert await m.rows(conv) == expected  # upserts: nothing doubled

    async def test_history_catches_up_rows_that_fell_behind_the_log(self, store: Opened) -> None:
        log, m = store
        conv = await run_turns(log, m, None, [PLAIN])
        # The second turn commits, and its process dies before the rows are written.
        await run_turns(log, None, conv, [TOOL_THEN_ANSWER])
        assert len(await m.rows(conv)) == 2
        version = await head(log, conv)
        assert await m.history(log, conv, version) == [
            PriorMessage("user", "one"),
            PriorMessage("assistant", "Hello there."),
            PriorMessage("user", "two"),
            # Earlier turns in full: the call, its result (ids matching), then the answer.
            PriorMessage("assistant", "Let me look.", (ToolCall("call_1", "lookup", '{"q": "x"}'),)),
            PriorMessage("tool", "found x", (), "call_1"),
            PriorMessage("assistant", "Found it."),
        ]
        assert await m.applied_version(conv) == version and len(await m.rows(conv)) == 4

    async def test_history_equals_the_history_folded_from_the_log(self, store: Opened) -> None:
        log, m = store
        conv = await run_turns(log, m, None, [])
        expected: list[PriorMessage] = []
        boundaries: list[int] = []
        assert await m.history(log, conv, 1) == [] == await LogHistory().history(log, conv, 1)
        for (user, answers), said, _ in TURNS:
            await run_turns(log, m, conv, [(user, answers)], max_iterations=2)
            expected += [PriorMessage("user", user), *(PriorMessage("assistant", s) for s in said)]
            version = await head(log, conv)
            boundaries.append(version)
            from_rows = await m.history(log, conv, version)
            assert from_rows == await LogHistory().history(log, conv, version), user
            # The user's words and each turn's answer (tool traffic: pinned above, and equal to
            # the log's fold here).
            assert [p for p in from_rows if p.role == "user" or not (p.tool_calls or p.tool_call_id)] == expected, user
        # The turns ended as the table says.
        ends = [r.event for r in await log.read(conv) if type(r.event) in (TurnFinalized, TurnFailed)]
        assert [e.reason if type(e) is TurnFailed else DONE for e in ends] == [end for *_, end in TURNS]
        # Up to an earlier version (what a fork reads of its parent): the turns ended by then.
        for earlier in boundaries:
            assert await m.history(log, conv, earlier) == await LogHistory().history(log, conv, earlier)
        # Rows rebuilt from the log, and rows caught up from nothing, give the same history.
        live_rows = await m.rows(conv)
        assert await rebuild(log, m) == len(live_rows) == 2 * len(TURNS)
        assert await m.rows(conv) == live_rows
        assert await m.history(log, conv, version) == from_rows
        await m.clear()
        assert await m.history(log, conv, version) == from_rows
