"""The batched read path gives what the event-at-a-time one gives: ``SseEvents.feed_messages``
(plain message events cut by one split) the events of ``feed_bytes``, whatever the piece
boundaries; ``StreamNormalizer.messages`` the chunks of decoding each event and walking it
(``_chunk``); ``OpenAILLM.stream_batches`` the chunks of ``stream``; and a turn read through
``stream_batches`` (with a read-ahead queue smaller than a batch) the events of one read through
``stream``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest
from turnlog.adapters.llm import LocalServer, OpenAILLM, ProviderConfig, Reply, SseEvents, StreamNormalizer, pieces
from turnlog.adapters.llm._normalise import _decode_chunk
from turnlog.engine import (
    EngineConfig,
    InMemoryEventLog,
    LLMChunk,
    LLMRequest,
    MalformedStream,
    TextChunk,
    TurnEngine,
    TurnRequest,
)

from .test_fast_paths import CORPUS, TRICKY

#: Plain events next to what must leave the fast path: comments, ids, event names, data lines
#: split in two, blank data, an event left open at a piece's end, CR and CRLF line ends.
MIXED = [
    b'data: {"a":1}\n\ndata: {"b":2}\n\n: keep-alive\n\ndata: {"c":3}\n\n',
    b'data: {"a":1}\n\nevent: error\ndata: {"error":"x"}\n\ndata: {"c":3}\n\n',
    b'data: {"a":1}\n\ndata: {"b":\ndata: 2}\n\ndata: [DONE]\n\n',
    b'data: {"a":1}\n\ndata: \n\ndata:\n\ndata: {"c":3}\n\nid: 4\ndata: {"d":4}\n\n',
    b'data: {"a":1}\r\n\r\ndata: {"b":2}\r\n\r\ndata: {"c":3}\r\rdata: {"d":4}\n\n',
    b'data: {"a":1}\n\ndata: {"b":2}\ndata: {"b2":2}\n\n\n\ndata: {"c":3}\ndata: open-at-the-end',
    b'data: {"a":1}\n\ndata: {"b":2}\n\ndata: {"c":3}\n\n',
]


def bodies() -> list[bytes]:
    return MIXED + TRICKY + [p.read_bytes() for p in sorted(CORPUS.glob("*.sse"))]


def by_fast_path(raw: bytes, cuts: list[bytes]) -> tuple[list[tuple[str, bytes]], int]:
    reader = SseEvents()
    out: list[tuple[str, bytes]] = []
    fast = 0
    for piece in cuts:
        datas, events = reader.feed_messages(piece)
        fast += len(datas)
        out += [("message", d) for d in datas] + events
    return out + reader.close_bytes(), fast


@pytest.mark.parametrize("seed", [None, 1, 2, 3, 4])
def test_feed_messages_gives_the_events_of_feed_bytes(seed: int | None) -> None:
    fast_events = 0
    for raw in bodies():
        # Small pieces (every boundary: inside a line, between CR and LF) and big ones (where
        # the fast path runs: many whole events in a piece).
        for cuts in (list(pieces(raw, seed, 1, 9)), list(pieces(raw, seed, 40, 4000))):
            reader = SseEvents()
            expected: list[tuple[str, bytes]] = []
            for piece in cuts:
                expected += reader.feed_bytes(piece)
            expected += reader.close_bytes()
            got, fast = by_fast_path(raw, cuts)
            assert got == expected, raw[:80]
            fast_events += fast
    assert fast_events > 500  # the fast path did run


def general(norm: StreamNormalizer, data: bytes) -> list[LLMChunk]:
    """One event the long way: decoded, then ``_chunk``'s general walk (no one-pass path)."""
    if not data:
        return []
    if data == b"[DONE]":
        norm.done = True
        return []
    try:
        chunk = _decode_chunk(data)
    except msgspec.DecodeError:
        return norm.event("message", data)  # the malformed-data rules (tested elsewhere)
    norm.events += 1
    return norm._chunk(chunk, "delta")


def test_messages_makes_the_general_walks_chunks() -> None:
    checked = 0
    for raw in bodies()[len(MIXED) + len(TRICKY) :]:
        reader = SseEvents()
        datas = [d for name, d in reader.feed_bytes(raw) + reader.close_bytes() if name == "message"]
        fast, slow = StreamNormalizer(), StreamNormalizer()
        got: list[LLMChunk] = []
        expected: list[LLMChunk] = []
        i = 0
        try:
            while i < len(datas) and not fast.done:
                i = fast.messages(datas, i, got)
                if i < len(datas):
                    got += fast.event("message", datas[i])
                    i += 1
        except MalformedStream:
            with pytest.raises(MalformedStream):
                for data in datas:
                    expected += general(slow, data)
            continue
        for data in datas[:i]:
            expected += general(slow, data)
        assert got == expected, raw[:200]
        assert (fast.events, fast.finished, fast.done) == (slow.events, slow.finished, slow.done)
        checked += len(datas)
    assert checked > 300


async def test_stream_batches_are_the_chunks_of_stream() -> None:
    for path in sorted(CORPUS.glob("*.sse"))[:40]:
        raw = path.read_bytes()
        replies = [Reply(body=raw, seed=7, piece_max=3000), Reply(body=raw, seed=7, piece_max=3000)]
        async with LocalServer(replies) as server:
            config = ProviderConfig(name="t", base_url=server.url + "/v1", model="m")
            async with OpenAILLM(config) as llm:
                one: list[Any] = []
                try:
                    async for chunk in llm.stream(b"{}"):
                        one.append(chunk)
                except Exception as exc:
                    one.append(str(exc))
                lists: list[Any] = []
                try:
                    async for batch in llm.stream_batches(b"{}"):
                        assert batch, "no empty lists"
                        lists += batch
                except Exception as exc:
                    lists.append(str(exc))
        assert lists == one, path.name


class _Chunks:
    """A model answering a fixed list of chunks, through ``stream`` only or also in lists."""

    provider = "t"
    round_trip_reasoning = False

    def __init__(self, chunks: list[LLMChunk]) -> None:
        self.chunks = chunks

    def render(self, request: LLMRequest) -> bytes:
        return b"{}"

    async def stream(self, body: bytes) -> AsyncIterator[LLMChunk]:
        for chunk in self.chunks:
            yield chunk


class _Batches(_Chunks):
    async def stream_batches(self, body: bytes) -> AsyncIterator[list[LLMChunk]]:
        for i in range(0, len(self.chunks), 50):
            yield self.chunks[i : i + 50]


async def test_a_turn_read_in_lists_records_what_one_read_chunk_by_chunk_records() -> None:
    chunks: list[LLMChunk] = [TextChunk(f"w{i} ") for i in range(1000)]
    recorded = []
    for llm in (_Chunks(chunks), _Batches(chunks)):
        log = InMemoryEventLog()
        engine = TurnEngine(log, llm, config=EngineConfig(queue_size=8))  # a list is bigger
        conv = await engine.create_conversation(system_prompt="s", model="m")
        events = [e async for e in engine.run_turn(conv, TurnRequest("hi"))]
        recorded.append([(type(e.event).__name__, getattr(e.event, "text", None)) for e in events])
    assert recorded[0] == recorded[1]
    assert [text for _, text in recorded[1] if text] == [f"w{i} " for i in range(1000)]
