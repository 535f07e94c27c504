"""What encryption at rest costs per event, with and without it, in one run (issue 15).

    .venv/bin/python bench/encryption_cost.py [--deltas 20000] [--rounds 3] [--json]

Each round, in alternating order, on SQLite (``open_store``, synchronous=FULL as shipped):

- ``write``: one turn of N text deltas through the engine (group commit, rows and summary
  saved), with ``encryption=False`` and with ``encryption=True`` (the default): per event;
- ``replay``: the turn read back checked (``iter_stream``: hash chain) and folded
  (``ConversationFold``) and projected to SSE frames, as ``turnlog replay`` does: per event;
- ``seal`` / ``open``: ``FieldCipher`` alone on a text delta (AES-256-GCM + base64 + the struct
  copy), the floor of what encryption adds to each event.

The best round of each is reported, and the difference per event.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from turnlog.adapters.crypto import FieldCipher
from turnlog.adapters.llm import ScriptedLLM
from turnlog.adapters.stores import open_store
from turnlog.engine import ConversationFold, FinishChunk, TextChunk, TextDelta, TurnEngine, TurnRequest, UsageChunk
from turnlog.projections import SseProjector


async def write(db: Path, n: int, encryption: bool) -> tuple[str, float, int]:
    chunks = [TextChunk("tok ") for _ in range(n)] + [UsageChunk(10, n, n + 10), FinishChunk("stop")]
    store = await open_store(db, encryption=encryption)
    try:
        engine = TurnEngine(store.log, ScriptedLLM([chunks]), messages=store.messages)
        start = time.perf_counter()
        conv = await engine.create_conversation(model="bench", system_prompt="Be brief.")
        events = 0
        async for _ in engine.run_turn(conv, TurnRequest("go")):
            events += 1
        return conv, time.perf_counter() - start, events
    finally:
        await store.close()


async def replay(db: Path, conv: str, encryption: bool) -> tuple[float, int]:
    store = await open_store(db, encryption=encryption, create=False)
    try:
        start = time.perf_counter()
        fold, sse, n = ConversationFold(), SseProjector("delta"), 0
        async for rec in store.log.iter_stream(conv):
            fold.apply(rec)
            sse.frame(rec)
            n += 1
        return time.perf_counter() - start, n
    finally:
        await store.close()


def cipher_floor(n: int) -> tuple[float, float]:
    cipher = FieldCipher("conv-bench", AESGCM(AESGCM.generate_key(256)))
    delta = TextDelta(iteration=1, text="tok ")
    start = time.perf_counter()
    sealed = [cipher.seal(delta) for _ in range(n)]
    mid = time.perf_counter()
    for i, ev in enumerate(sealed):
        cipher.open(ev, i)
    return (mid - start) / n, (time.perf_counter() - mid) / n


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--deltas", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    best: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            order = (False, True) if r % 2 == 0 else (True, False)
            for enc in order:
                db = Path(tmp) / f"r{r}-{enc}.db"
                conv, secs, events = await write(db, args.deltas, enc)
                name = "on" if enc else "off"
                best[f"write_{name}_us"] = min(best.get(f"write_{name}_us", 1e9), secs / events * 1e6)
                rsecs, revents = await replay(db, conv, enc)
                best[f"replay_{name}_us"] = min(best.get(f"replay_{name}_us", 1e9), rsecs / revents * 1e6)
        seal, open_ = cipher_floor(args.deltas)
    best["seal_us"], best["open_us"] = seal * 1e6, open_ * 1e6
    best["write_cost_us"] = best["write_on_us"] - best["write_off_us"]
    best["replay_cost_us"] = best["replay_on_us"] - best["replay_off_us"]
    if args.json:
        print(json.dumps({k: round(v, 3) for k, v in best.items()}))
        return
    print(f"{args.deltas} deltas, best of {args.rounds} rounds (SQLite, synchronous=FULL), per event:")
    print(
        f"  write  (engine, rows): off {best['write_off_us']:7.2f} us  on {best['write_on_us']:7.2f} us  "
        f"(+{best['write_cost_us']:.2f} us)"
    )
    print(
        f"  replay (checked, fold, SSE): off {best['replay_off_us']:7.2f} us  on {best['replay_on_us']:7.2f} us  "
        f"(+{best['replay_cost_us']:.2f} us)"
    )
    print(f"  FieldCipher alone: seal {best['seal_us']:.2f} us, open {best['open_us']:.2f} us")


if __name__ == "__main__":
    asyncio.run(main())
