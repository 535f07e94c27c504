"""The yardstick for bench/server_load.py: a bare Starlette SSE relay of the same frames, with no
persistence, no hash chain, no state machine, no projection at request time.

    .venv/bin/python bench/relay_baseline.py --port 8001 [--words 100] [--delay 0.005]

At start it runs one turn of the scripted ``EchoLLM`` through turnlog's engine over the in-memory
log and projects it to SSE (``mode=delta``): those bytes are the frames every turn relays, so a
client receives exactly what ``turnlog serve`` would send (the same frames, the same sizes, the
same ``id:`` lines). Per turn the relay sleeps ``delay`` before each delta frame, as the
``EchoLLM`` does before each delta, and writes each frame as it comes: what a plain streaming
endpoint does with a model's tokens. ``POST /conversations`` answers an id, ``POST
/conversations/{id}/turns`` streams, ``GET /health`` answers 200: the routes the load uses.
"""

from __future__ import annotations

import argparse
import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

FRAMES: list[tuple[bool, bytes]] = []
"""(is a delta, the frame's bytes), in order."""


async def build_frames(words: int) -> list[tuple[bool, bytes]]:
    from turnlog.adapters.llm import EchoLLM
    from turnlog.engine import InMemoryEventLog, TextDelta, TurnEngine, TurnRequest
    from turnlog.projections import SseProjector

    log = InMemoryEventLog()
    engine = TurnEngine(log, EchoLLM())
    conv = await engine.create_conversation()
    message = " ".join(f"w{i}" for i in range(words))
    projector = SseProjector("delta")
    out = []
    async for rec in engine.run_turn(conv, TurnRequest(message)):
        frame = projector.frame(rec)
        if frame is not None:
            out.append((type(rec.event) is TextDelta, frame))
    return out


def create_app(delay: float) -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response, StreamingResponse
    from starlette.routing import Route

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def create(request: Request) -> Response:
        await request.body()
        return JSONResponse({"id": f"conv_{uuid.uuid4().hex}"}, status_code=201)

    async def frames() -> AsyncIterator[bytes]:
        yield b"retry: 3000\n\n"
        for is_delta, frame in FRAMES:
            if is_delta and delay:
                await asyncio.sleep(delay)
            yield frame

    async def turn(request: Request) -> Response:
        await request.body()
        headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        return StreamingResponse(frames(), media_type="text/event-stream", headers=headers)

    return Starlette(
        routes=[
            Route("/health", health),
            Route("/conversations", create, methods=["POST"]),
            Route("/conversations/{id}/turns", turn, methods=["POST"]),
        ]
    )


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--words", type=int, default=100)
    parser.add_argument("--delay", type=float, default=0.005)
    args = parser.parse_args()
    FRAMES[:] = asyncio.run(build_frames(args.words))
    uvicorn.run(
        create_app(args.delay),
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        backlog=4096,
        timeout_keep_alive=60,
    )


if __name__ == "__main__":
    main()
