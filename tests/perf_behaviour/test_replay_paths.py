"""Replay's fast paths give what the general ones give (issue 14, target 1): a stream's rows read
without their stream id load as the full rows do, the chain check's per-header templates hash
exactly ``chain_hash``'s bytes (whatever the ids hold, ``%`` included), and the SSE text frames
made from a step's cached head are the frames of the step struct encoded whole."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest
from turnlog.adapters.stores import SqliteEventLog
from turnlog.engine import (
    ConversationCreated,
    IntegrityError,
    IterationStarted,
    NewEvent,
    ReasoningDelta,
    Recorded,
    TextDelta,
    ToolCall,
    ToolCallsRequested,
    ToolCallStarted,
    ToolResultRecorded,
    TurnFinalized,
    TurnStarted,
    Usage,
    UsageRecorded,
    chain_hash,
    load_rows,
    seal,
)
from turnlog.engine._errors import UnknownEventType
from turnlog.engine._events import GENESIS_HASH
from turnlog.engine._log import ChainCheck
from turnlog.projections import SseProjector, project
from turnlog.projections._sse import _TextStep

from .conftest import AT, turn_started

#: Header values a template must carry through unchanged: % (the template's own syntax), quotes,
#: backslashes, control characters, non-ASCII.
AWKWARD = ["c1", "c%s%%d%", 'q"uo\\te', "tab\tnew\nline", "ünï-😀"]


def two_turns() -> list[NewEvent]:
    """Two turns: reasoning and text in each iteration, a tool call between the iterations."""
    events = [NewEvent(ConversationCreated(model="m"))]
    for turn in ("t1", "t2"):
        events += [
            NewEvent(turn_started(f"u-{turn}", f"a-{turn}", thinking=True), turn),
            NewEvent(IterationStarted(1, "0" * 64, "m"), turn),
        ]
        events += [NewEvent(ReasoningDelta(1, f"think {i} "), turn) for i in range(3)]
        events += [NewEvent(TextDelta(1, f'w{i} "é"\n'), turn) for i in range(4)]
        events += [
            NewEvent(ToolCallsRequested(1, [ToolCall("k1", "f", "{}")]), turn),
            NewEvent(ToolCallStarted(1, "k1", "f", "{}"), turn),
            NewEvent(ToolResultRecorded(1, "k1", "f", "ok", True, 1.0), turn),
            NewEvent(IterationStarted(2, "1" * 64, "m"), turn),
        ]
        events += [NewEvent(ReasoningDelta(2, "again "), turn), NewEvent(TextDelta(2, "done"), turn)]
        events += [NewEvent(TextDelta(2, f" {i}"), turn) for i in range(3)]
        events += [
            NewEvent(UsageRecorded(2, 1, 2, 3), turn),
            NewEvent(TurnFinalized(f"a-{turn}", 9, Usage(1, 2, 3)), turn),
        ]
    return events


def sealed(stream_id: str = "c1", turn: str | None = None, recorded_at: str = AT) -> list[Recorded]:
    events = two_turns()
    if turn is not None:
        events = [NewEvent(e.event, turn if e.turn_id else "") for e in events]
    return seal(stream_id, events, head_version=0, head_hash=GENESIS_HASH, first_position=1, recorded_at=recorded_at)


def full_rows(recs: list[Recorded]) -> list[tuple]:
    return [tuple(getattr(r, f) for f in Recorded.__struct_fields__ if f != "event") for r in recs]


def test_rows_without_the_stream_id_load_as_the_full_rows() -> None:
    recs = sealed()
    rows = full_rows(recs)
    stream_id = "c1"
    loaded = load_rows([row[1:] for row in rows], stream_id)
    assert loaded == load_rows(rows) == recs
    assert all(r.stream_id is stream_id for r in loaded)  # one string for the page, not one a row


def test_a_buffer_payload_loads_as_bytes_on_both_paths() -> None:
    rows = full_rows(sealed())
    views = [(*row[:9], memoryview(row[9])) for row in rows]
    for loaded in (load_rows(views), load_rows([row[1:] for row in views], "c1")):
        assert all(type(r.payload) is bytes for r in loaded)
        assert [r.payload for r in loaded] == [row[9] for row in rows]


@pytest.mark.parametrize("change", [("type", "no_such_event"), ("schema", 99)])
def test_an_unknown_type_or_schema_after_a_run_of_known_ones_is_refused(change: tuple[str, object]) -> None:
    # The stream path looks the (type, schema) pair up once per run: a row that changes it is
    # still looked up, wherever it falls in the page.
    field, value = change
    rows = full_rows(sealed())
    at = 8  # in a run of text deltas
    assert rows[at - 1][5] == rows[at][5] == rows[at + 1][5] == "text_delta"
    index = 5 if field == "type" else 6
    broken = [list(row) for row in rows]
    broken[at][index] = value
    for attempt in (lambda: load_rows(broken), lambda: load_rows([row[1:] for row in broken], "c1")):
        with pytest.raises(UnknownEventType):
            attempt()


@pytest.mark.parametrize("stream_id", AWKWARD)
@pytest.mark.parametrize("turn", AWKWARD)
def test_the_chain_check_hashes_chain_hashs_bytes(stream_id: str, turn: str) -> None:
    recs = sealed(stream_id, turn, recorded_at=f"{AT}%d%s")
    for rec in recs:  # the reference: one event at a time, the canonical header
        assert rec.hash == chain_hash(
            rec.prev_hash, rec.stream_id, rec.version, rec.turn_id, rec.recorded_at, rec.type, rec.schema, rec.payload
        )
    chain = ChainCheck(stream_id)
    chain.check(recs[:7])
    chain.check(recs[7:])
    assert (chain.version, chain.hash) == (recs[-1].version, recs[-1].hash)
    # One changed byte anywhere is still found, at its version.
    for at in (0, 5, len(recs) - 1):
        changed = list(recs)
        changed[at] = msgspec.structs.replace(recs[at], payload=recs[at].payload.replace(b"}", b" }", 1))
        with pytest.raises(IntegrityError) as err:
            ChainCheck(stream_id).check(changed)
        assert err.value.version == at + 1


def reference_frames(events: list[Recorded], mode: str) -> list[bytes]:
    """The text and thinking frames as the step struct encodes them whole (no cached head)."""
    enc = msgspec.json.Encoder().encode
    out: list[bytes] = []
    index = 0
    step: dict[str, int] = {}
    texts: dict[str, str] = {}
    for rec in events:
        ev = rec.event
        if isinstance(ev, (TurnStarted, IterationStarted)):
            step, texts = {}, {}
            if isinstance(ev, TurnStarted):
                index = 0
        elif isinstance(ev, (ToolCallStarted, ToolResultRecorded)):
            index += 1
        elif isinstance(ev, (TextDelta, ReasoningDelta)):
            kind = "text" if isinstance(ev, TextDelta) else "thinking"
            if kind not in step:
                step[kind] = index
                index += 1
            texts[kind] = texts.get(kind, "") + ev.text
            content = texts[kind] if mode == "full" else ev.text
            data = enc({"step": _TextStep(f"step-{step[kind]}", step[kind], kind, content)})
            out.append(b"id: %d\nevent: process_step\ndata: %s\n\n" % (rec.version, data))
    return out


@pytest.mark.parametrize("mode", ["delta", "full"])
def test_text_frames_are_the_step_struct_encoded_whole(mode: str) -> None:
    recs = sealed()
    frames = project(recs, mode)  # type: ignore[arg-type]
    text_frames = [f for f in frames if b'"type":"text"' in f or b'"type":"thinking"' in f]
    assert text_frames == reference_frames(recs, mode)
    # Two projectors, one after the other in the same process (the heads are shared): the same.
    again = SseProjector(mode)  # type: ignore[arg-type]
    assert [f for rec in recs if (f := again.frame(rec)) is not None] == frames


async def test_a_sqlite_stream_read_is_the_appended_events(tmp_path: Path) -> None:
    # The stream read selects no stream id: its envelopes are still the ones appended (the id
    # from the query's parameter), on an awkward id too.
    async with await SqliteEventLog.open(tmp_path / "t.db") as log:
        for stream_id in ("c1", "c%s%%d%"):
            events = [NewEvent(e.event, e.turn_id) for e in two_turns()]
            appended = await log.append(stream_id, events, 0, recorded_at=AT)
            assert await log.read(stream_id, 0, 1000) == appended
            pages = [page async for page in log.iter_pages(stream_id, page_size=7)]
            assert [r for page in pages for r in page] == appended
