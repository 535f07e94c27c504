"""The wire: SSE framing by the WHATWG rules over httpx's incremental UTF-8 decoding, whatever
the piece boundaries (inside a multi-byte character, between CR and LF)."""

from __future__ import annotations

import json

import pytest
from turnlog.adapters.llm import LocalServer, OpenAILLM, ProviderConfig, Reply, Timeouts
from turnlog.engine import FinishChunk, ReasoningChunk, TextChunk

from .conftest import CORPUS

WORDS = ["naïve ", "日本語の", "テキスト", " 👋🏽", " Ωμέγα", " \u2028sep", " done"]


def body(newline: bytes) -> bytes:
    out = b": keep-alive\r\n" if newline == b"\r\n" else b": keep-alive\n"
    for w in WORDS:
        payload = json.dumps({"choices": [{"index": 0, "delta": {"content": w}}]}, ensure_ascii=False)
        # A multi-line data field: the lines join with "\n" (the JSON stays valid: whitespace).
        first, rest = payload[:1], payload[1:]
        out += b"event: message" + newline + b"data: " + first.encode() + newline + b"data:" + rest.encode()
        out += newline + newline
    out += b'data: {"choices":[{"index":0,"delta":{"reasoning":"r\xc3\xa9"},"finish_reason":"stop"}]}' + newline * 2
    return out + b"data: [DONE]" + newline * 2


@pytest.mark.parametrize("newline", [b"\n", b"\r\n", b"\r"], ids=["LF", "CRLF", "CR"])
@pytest.mark.parametrize("seed", [None, 1, 2, 3])
async def test_pieces_split_anywhere_give_the_same_chunks(newline: bytes, seed: int | None) -> None:
    raw = body(newline)
    reply = Reply(body=raw, seed=seed, piece_min=1, piece_max=3)
    async with LocalServer([reply]) as server:
        async with OpenAILLM(
            ProviderConfig(name="p", base_url=server.url, model="m"), timeouts=Timeouts(idle=5.0)
        ) as llm:
            chunks = [c async for c in llm.stream(b"{}")]
    assert chunks == [TextChunk(w) for w in WORDS] + [ReasoningChunk("ré"), FinishChunk("stop")]


async def test_one_byte_pieces_cut_every_utf8_character() -> None:
    raw = body(b"\r\n")
    # Sanity of the test itself: with 1-byte pieces every multi-byte character is split.
    assert any(b >= 0x80 for b in raw)
    # A pause after each byte, so that loopback TCP cannot coalesce the pieces again.
    reply = Reply(body=raw, seed=7, piece_min=1, piece_max=1, delay=0.0001)
    async with LocalServer([reply]) as server:
        async with OpenAILLM(ProviderConfig(name="p", base_url=server.url, model="m")) as llm:
            text = "".join([c.text async for c in llm.stream(b"{}") if isinstance(c, TextChunk)])
    assert text == "".join(WORDS)


TRICKY = [
    b'event: error\ndata: {"a":\n data: 1}\n\n',
    b"data\n\ndata:no-space\n\ndata:  two spaces\n\n",
    b": comment\nid: 5\nretry: 100\nunknown: x\ndata: after\n\n",
    b"event: a\n\nevent: b\ndata: x\n\n",
    b"data: first\rdata: second\r\rdata: crlf\r\n\r\n",
    b"data: \xf0\x9f\x91\x8b\ndata: line2\n\n\n\ndata: last-without-blank",
]


def httpx_sse_events(text: str) -> list[tuple[str, str]]:
    from httpx_sse._decoders import SSEDecoder, SSELineDecoder

    lines, sse = SSELineDecoder(), SSEDecoder()
    out = []
    for line in [*lines.decode(text), *lines.flush(), ""]:
        ev = sse.decode(line)
        if ev is not None and ev.data:
            out.append((ev.event, ev.data))
    return out


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_event_reader_agrees_with_httpx_sse(seed: int) -> None:

    from turnlog.adapters.llm import SseEvents, pieces

    corpus = CORPUS
    bodies = TRICKY + [p.read_bytes() for p in sorted(corpus.glob("*.sse"))]
    for raw in bodies:
        text = raw.decode("utf-8")
        reader = SseEvents()
        mine: list[tuple[str, str]] = []
        for piece in pieces(text.encode("utf-8"), seed, 1, 9):
            # Text pieces here (the adapter gets them from httpx's incremental decoder).
            mine += reader.feed(piece.decode("utf-8", "surrogateescape"))
        mine += reader.close()
        mine = [(e, d.encode("utf-8", "surrogateescape").decode("utf-8")) for e, d in mine if d]
        assert mine == httpx_sse_events(text), raw[:80]
