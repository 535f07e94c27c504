"""Parse throughput of the OpenAI-compatible adapter, against httpx reading the same bytes raw.

A large stream (~100k events) is built by repeating the data events of the recorded corpus
(``../shared/corpus/openai-streams``), served by ``LocalServer`` on 127.0.0.1, and read in one run:

- ``httpx aiter_raw``: the bytes only (the floor: network + HTTP/1.1 chunked decoding);
- ``httpx aiter_text``: plus incremental UTF-8 decoding;
- ``adapter stream()``: ``OpenAILLM.stream_batches`` (``stream`` in older trees; WHATWG SSE
  lines and events cut from the bytes, msgspec decoding, normalisation to chunks, every chunk
  visited) — what the engine consumes (``engine/_model_call.py``);
- ``normaliser only``: ``StreamNormalizer.event`` over the pre-split events, no I/O;
- ``wire only`` and ``decode only``: the parts of the adapter's work no normaliser change removes,
  offline: ``SseEvents.feed_messages`` over the body in 64 KiB pieces (httpx's read size), and
  msgspec decoding each event's data bytes into the normaliser's structs. ``raw + wire + decode``
  is the adapter's floor here; the ratio it would give is printed as ``ceiling``.

Run: ``.venv/bin/python bench/parse_throughput.py [--events N]`` (well under a minute).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path

import httpx
from turnlog.adapters.llm import (
    LocalServer,
    OpenAILLM,
    ProviderConfig,
    Reply,
    SseEvents,
    StreamNormalizer,
    Timeouts,
    _normalise,
)

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "openai-streams"


def corpus_events() -> list[bytes]:
    events: list[bytes] = []
    for path in sorted(CORPUS.glob("*.sse")):
        body = path.read_bytes().replace(b"\r\n", b"\n")
        if body.lstrip().startswith(b"{") or b'"error"' in body:
            continue  # error recordings end a stream
        for block in body.split(b"\n\n"):
            if block.startswith(b"data: {"):
                events.append(block + b"\n\n")
    return events


def build(n: int) -> tuple[bytes, list[str]]:
    base = corpus_events()
    picked = [base[i % len(base)] for i in range(n)]
    return b"".join(picked) + b"data: [DONE]\n\n", [e[6:-2].decode() for e in picked]


async def main(n: int, rounds: int, as_json: bool = False) -> None:
    body, datas = build(n)
    mb = len(body) / 1e6
    print(f"stream: {n} events, {mb:.1f} MB, {len(corpus_events())} distinct corpus events repeated")
    results: dict[str, float] = {}

    cpu: dict[str, float] = {}

    def keep(name: str, seconds: float) -> None:
        results[name] = min(results.get(name, seconds), seconds)
        spent = time.process_time() - c
        cpu[name] = min(cpu.get(name, spent), spent)

    async with LocalServer([Reply(body=body)]) as server:
        url = server.url + "/v1/chat/completions"
        async with httpx.AsyncClient(timeout=30) as client:
            for _ in range(rounds):
                t, c = time.perf_counter(), time.process_time()
                async with client.stream("POST", url, content=b"{}") as r:
                    size = sum([len(b) async for b in r.aiter_raw()])
                keep("httpx aiter_raw", time.perf_counter() - t)
                assert size == len(body)
                t, c = time.perf_counter(), time.process_time()
                async with client.stream("POST", url, content=b"{}") as r:
                    chars = sum([len(s) async for s in r.aiter_text()])
                keep("httpx aiter_text", time.perf_counter() - t)
                assert chars > 0
        config = ProviderConfig(name="bench", base_url=server.url + "/v1", model="m")
        async with OpenAILLM(config, timeouts=Timeouts(idle=30)) as llm:
            for _ in range(rounds):
                t, c = time.perf_counter(), time.process_time()
                chunks = 0
                # What the engine reads (engine/_model_call.py): the lists of ``stream_batches``
                # where the adapter has it (every chunk of every list is visited), else ``stream``.
                batches = getattr(llm, "stream_batches", None)
                if batches is not None:
                    async for batch in batches(b"{}"):
                        for _chunk in batch:
                            chunks += 1
                else:
                    async for _chunk in llm.stream(b"{}"):
                        chunks += 1
                keep("adapter stream()", time.perf_counter() - t)
    for _ in range(rounds):
        norm = StreamNormalizer()
        event = norm.event
        t, c = time.perf_counter(), time.process_time()
        for data in datas:
            event("message", data)
        keep("normaliser only", time.perf_counter() - t)
    # The floor (older trees may lack ``feed_messages``: then ``feed_bytes``; a tree with neither
    # has no bytes reader, and no floor rows).
    cut = [body[i : i + 65536] for i in range(0, len(body), 65536)]
    bdatas = [d.encode() for d in datas]
    decode = _normalise._decode_chunk
    for _ in range(rounds if hasattr(SseEvents, "feed_messages") or hasattr(SseEvents, "feed_bytes") else 0):
        reader = SseEvents()
        feed = getattr(reader, "feed_messages", None) or reader.feed_bytes
        t, c = time.perf_counter(), time.process_time()
        for piece in cut:
            feed(piece)
        keep("wire only", time.perf_counter() - t)
        t, c = time.perf_counter(), time.process_time()
        for data in bdatas:
            decode(data)
        keep("decode only", time.perf_counter() - t)

    floor = results["httpx aiter_raw"]
    if as_json:
        print(
            json.dumps(
                {
                    "raw_events_s": round(n / floor),
                    "adapter_events_s": round(n / results["adapter stream()"]),
                    "normaliser_events_s": round(n / results["normaliser only"]),
                    "ratio_adapter_vs_raw": floor / results["adapter stream()"],
                    # CPU time of the process (server and client share it, as they share the wall
                    # clock): steadier than the wall clock on a shared machine.
                    "ratio_adapter_vs_raw_cpu": cpu["httpx aiter_raw"] / cpu["adapter stream()"],
                }
            )
        )
        return
    print(f"{'reader':<20}{'seconds':>9}{'MB/s':>9}{'events/s':>12}{'x raw time':>12}")
    for name, seconds in results.items():
        print(f"{name:<20}{seconds:>9.3f}{mb / seconds:>9.1f}{n / seconds:>12,.0f}{seconds / floor:>12.2f}")
    print(
        f"adapter chunks yielded: {chunks}; adapter events/s / raw events/s = {floor / results['adapter stream()']:.3f}"
        f" (CPU time: {cpu['httpx aiter_raw'] / cpu['adapter stream()']:.3f})"
    )
    if "wire only" in results:
        least = floor + results["wire only"] + results["decode only"]
        print(f"floor raw + wire + decode: {least:.3f} s, ceiling of the ratio {floor / least:.3f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3, help="best of N")
    parser.add_argument("--json", action="store_true", help="print one JSON object (bench/before_after.py)")
    args = parser.parse_args()
    asyncio.run(main(args.events, args.rounds, args.json))
