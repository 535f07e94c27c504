"""The fast paths give what the general ones give: the bytes SSE reader (httpx-sse's events,
whatever the piece boundaries), the normaliser's one-pass common events (the general walk's
chunks), a large recording played in big pieces (the same chunks), a long answer's parts joined
as they come (the same row text)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from turnlog.adapters.llm import LocalServer, RecordedLLM, Reply, SseEvents, StreamNormalizer, pieces
from turnlog.adapters.llm._fakeserver import BIG_PIECE, _pieces
from turnlog.adapters.llm._normalise import _decode_chunk
from turnlog.engine import InMemoryEventLog, TextChunk, replay
from turnlog.projections import fold_rows

from ..adapters.test_wire import TRICKY as WIRE_TRICKY
from ..adapters.test_wire import httpx_sse_events
from .conftest import AT, turn_events

CORPUS = Path(os.environ.get("TURNLOG_CORPUS") or Path(__file__).parents[1] / "adapters" / "corpus" / "openai-streams")
#: The wire tests' awkward bodies, and one more: CR, CRLF and LF mixed in one body.
TRICKY = [*WIRE_TRICKY, b"data: a\r\n\r\ndata: b\r\rdata: c\n\r\ndata: d\r"]


def bodies() -> list[bytes]:
    return TRICKY + [p.read_bytes() for p in sorted(CORPUS.glob("*.sse"))]


@pytest.mark.parametrize("seed", [None, 1, 2, 3])
def test_the_bytes_reader_agrees_with_httpx_sse(seed: int | None) -> None:
    for raw in bodies():
        reader = SseEvents()
        mine: list[tuple[str, bytes]] = []
        for piece in pieces(raw, seed, 1, 9):
            mine += reader.feed_bytes(piece)
        mine += reader.close_bytes()
        assert [(e, d.decode()) for e, d in mine if d] == httpx_sse_events(raw.decode()), raw[:80]


def test_the_normaliser_fast_path_makes_the_general_walks_chunks() -> None:
    checked = 0
    for raw in bodies()[len(TRICKY) :]:
        reader = SseEvents()
        events = reader.feed_bytes(raw) + reader.close_bytes()
        fast, general = StreamNormalizer(), StreamNormalizer()
        for name, data in events:
            if name != "message" or data == b"[DONE]":
                continue
            try:
                chunk = _decode_chunk(data)
            except Exception:
                continue
            checked += 1
            assert fast.event(name, data) == general._chunk(chunk, "delta"), data[:200]
            assert fast.finished == general.finished
    assert checked > 100


def test_text_and_bytes_give_the_same_chunks() -> None:
    for raw in bodies()[len(TRICKY) :]:
        reader = SseEvents()
        a, b = StreamNormalizer(), StreamNormalizer()
        for name, data in reader.feed_bytes(raw) + reader.close_bytes():
            try:
                expected = b.event(name, data.decode())
            except Exception as exc:
                with pytest.raises(type(exc)):
                    a.event(name, data)
                continue
            assert a.event(name, data) == expected


def test_a_large_recording_comes_in_small_pieces_then_big_ones() -> None:
    body = b"data: x\n\n" * 100_000
    reply = Reply(body=body, seed=3, piece_max=64, random_until=1000)
    sent = list(_pieces(reply))
    assert b"".join(sent) == body
    small = [len(p) for p in sent[:-20]]
    assert sum(len(p) for p in sent if len(p) <= 64) >= 1000 and max(small[:10]) <= 64
    assert max(len(p) for p in sent) == BIG_PIECE
    # Without a limit every piece is small, as the conformance tests want them.
    assert max(len(p) for p in _pieces(Reply(body=body[:50_000], seed=3, piece_max=64))) <= 64


async def test_a_large_recording_plays_every_delta() -> None:
    n = 20_000
    body = b'data: {"choices":[{"index":0,"delta":{"content":"t"}}]}\n\n' * n
    body += b'data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n'
    async with RecordedLLM([body], random_until=4096) as llm:
        chunks = [c async for c in llm.stream(b"{}")]
    assert chunks[:-1] == [TextChunk("t")] * n


async def test_a_long_answers_row_holds_its_text() -> None:
    log = InMemoryEventLog()
    deltas = 20_000
    await log.append("c1", turn_events(deltas), 0, recorded_at=AT)
    rows = fold_rows("c1", [rec async for rec in replay(log, "c1")])
    answer = json.loads(rows[-1].content)
    assert answer["text"] == "".join(f"w{i} " for i in range(deltas))
    assert answer["steps"][0]["content"] == answer["text"]


async def test_local_server_still_serves_small_pieces_by_default() -> None:
    body = b"data: x\n\n" * 100
    async with LocalServer([Reply(body=body, seed=1, piece_max=8)]) as server:
        assert server.url.startswith("http://127.0.0.1:")
    assert max(len(p) for p in pieces(body, 1, 1, 8)) <= 8
