"""Issue 14, constant memory: the folds of ``turnlog replay --format transcript`` and ``turnlog
rebuild`` hold a step's text, not an object per delta; the transcript is written a line at a time;
rebuild and verify read in bounded pages; a row is sealed without extra copies. Behaviour only:
the peak RSS figures are bench/memory_profile.py's."""

from __future__ import annotations

import os

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from turnlog.adapters.crypto._fields import seal_text, synthetic_nonce
from turnlog.adapters.crypto._rows import seal_row_content
from turnlog.engine import (
    ERASED_TEXT,
    InMemoryEventLog,
    IterationStarted,
    PriorTurns,
    Recorded,
    TextDelta,
    TextParts,
    ToolCall,
    ToolCallsRequested,
    TurnHistory,
    TurnStarted,
    replay,
    verify,
)
from turnlog.engine._log import STREAM_PAGE
from turnlog.engine._text import CHUNK as _CHUNK
from turnlog.projections import MemoryMessageStore, catch_up, fold_rows, render, transcript_lines
from turnlog.projections._messages import MessageFold, ShownText
from turnlog.projections._rows import CATCH_UP_PAGE
from turnlog.projections._transcript import _lines

from .conftest import AT, CountingLog, turn_events

DELTAS = 3 * _CHUNK + 17  # a few chunks and a bit


async def recorded(deltas: int = DELTAS) -> list[Recorded]:
    log = InMemoryEventLog()
    await log.append("c1", turn_events(deltas), 0, recorded_at=AT)
    return [rec async for rec in replay(log, "c1")]


def answer(deltas: int = DELTAS) -> str:
    return "".join(f"w{i} " for i in range(deltas))


def test_text_parts_join_every_delta_holding_at_most_a_chunk_of_parts() -> None:
    parts = TextParts()
    texts = [f"w{i} " for i in range(DELTAS)]
    for i, t in enumerate(texts):
        parts.add(t)
        assert len(parts) <= _CHUNK + 1, i
    assert parts.join() == "".join(texts)
    assert len(parts.chunks) == DELTAS // _CHUNK


@pytest.mark.parametrize("where", [0, _CHUNK - 1, _CHUNK, _CHUNK + 1, 2 * _CHUNK])
def test_a_run_of_erased_deltas_is_kept_once_across_a_chunk(where: int) -> None:
    texts = ["a"] * where + [ERASED_TEXT] * (_CHUNK + 3) + ["b", ERASED_TEXT, ERASED_TEXT, "c"]
    shown, exact = ShownText(), TextParts()
    for t in texts:
        shown.add(t)
        exact.add(t)
    assert shown.join() == "a" * where + ERASED_TEXT + "b" + ERASED_TEXT + "c"
    # The request builder's text is what the model is sent: every part, as added.
    assert exact.join() == "".join(texts)


async def test_the_transcript_is_written_a_step_at_a_time() -> None:
    events = await recorded()
    consumed = 0

    def feed():
        nonlocal consumed
        for rec in events:
            consumed += 1
            yield rec

    lines = transcript_lines(feed())
    shown: list[str] = []
    for line in lines:
        shown.append(line)
        if line.startswith("    text ("):
            # Yielded as the step ends (at the event after its last delta), not at the end.
            assert consumed == len(events) - 1
            assert line == f"    text ({DELTAS} deltas): {answer()!r}\n".replace("'", '"')
    assert all(s.endswith("\n") and "\n" not in s[:-1] for s in shown)
    assert "".join(shown) == render(events)
    assert render([]) == "\n"  # no events: one empty line, as before


async def test_the_transcript_fold_holds_no_parts_once_a_step_is_shown() -> None:
    events = await recorded()
    lines = _lines(iter(events))
    line = next(line for line in lines if line.startswith("    text ("))
    assert line.startswith(f"    text ({DELTAS} deltas): ")
    state = lines.gi_frame.f_locals  # paused right after the step's line
    assert state["text"].count == 0 and state["text"].parts.join() == "" and not state["text"].parts.chunks
    assert state["thinking"].count == 0
    # The request builder was fed the answer's first word, not every delta (it shows roles).
    assert state["history"]._text.join() == "w0 " and state["prior"]._text.join() == "w0 "


def started() -> TurnStarted:
    return turn_events(0)[1].event  # type: ignore[return-value]


def test_the_request_builders_hold_chunks_not_deltas_and_let_go_at_the_end() -> None:
    prior = PriorTurns()
    history = TurnHistory([], started(), round_trip_reasoning=False)
    prior.apply(started())
    for ev in [IterationStarted(1, "0" * 64, "m"), *(TextDelta(1, f"w{i} ") for i in range(DELTAS))]:
        prior.apply(ev)
        history.apply(ev)
        assert len(prior._text.parts) <= _CHUNK and len(history._text.parts) <= _CHUNK
    calls = ToolCallsRequested(1, [ToolCall("c1", "f", "{}")])
    history.apply(calls)
    assert history.messages[-1]["content"] == answer()
    done = turn_events(0)[-1].event
    history.apply(done)
    prior.apply(done)
    assert prior.messages[-1].text == answer()
    assert not prior._text and not history._text  # the turn's parts are gone


async def test_the_rows_fold_shares_the_answer_and_releases_it_with_the_final_row() -> None:
    events = await recorded()
    fold = MessageFold("c1")
    rows = []
    for rec in events[:-1]:
        rows.extend(fold.apply(rec))
        turn = fold._turn
        if turn is not None and turn.step_list:
            # The answer and its text step are one accumulator: the text is held once.
            assert turn.step_list[0]["content"] is turn.text_parts
            assert len(turn.text_parts) <= _CHUNK + 1
    turn = fold._turn
    assert turn is not None
    rows.extend(fold.apply(events[-1]))
    assert fold._turn is None and not turn.step_list and not turn.parts and turn.text_parts.join() == ""
    assert rows[-1].content == fold_rows("c1", events)[-1].content


async def test_catch_up_reads_in_bounded_pages() -> None:
    log = CountingLog()
    await log.append("c1", turn_events(3 * CATCH_UP_PAGE + 10), 0, recorded_at=AT)
    log.reads.clear()
    store = MemoryMessageStore()
    assert await catch_up(log, store, "c1") == 2
    limits = {limit for _, limit, _, _ in log.reads}
    assert limits == {CATCH_UP_PAGE}
    assert len(log.reads) == (3 * CATCH_UP_PAGE + 15) // CATCH_UP_PAGE + 1
    assert await store.rows("c1") == fold_rows("c1", [rec async for rec in replay(log, "c1")])


async def test_verify_reads_in_pages_of_stream_page() -> None:
    log = CountingLog()
    await log.append("c1", turn_events(STREAM_PAGE + 10), 0, recorded_at=AT)
    log.reads.clear()
    report = await verify(log, "c1")
    assert report.ok and report.events == STREAM_PAGE + 15
    # The stream's pages (and a one-event read of its first event, for forks).
    assert [limit for _, limit, _, _ in log.reads if limit > 1] == [STREAM_PAGE, STREAM_PAGE]


@pytest.mark.parametrize("content", ["", "short", "é" * 1000 + "\u2603", '{"text": "' + "tok " * 50_000 + '"}'])
def test_a_sealed_row_is_the_same_string_as_before(content: str) -> None:
    aead, siv, aad = AESGCM(os.urandom(32)), os.urandom(32), b"turnlog-row:c1:m2"
    assert seal_row_content(aead, siv, aad, content) == seal_text(
        aead, aad, content, synthetic_nonce(siv, aad, content)
    )
