"""The flags of ``turnlog serve`` and ``turnlog recover`` (``_serve`` runs them): what a server
offers, who may do what, how it recovers, and every limit on what a client may hold (each maps
onto a ``ServerConfig`` or ``EngineConfig`` field; absent, that config's own default)."""

from __future__ import annotations

import argparse

from ._common import add_tools
from ._controls import add_engine_options
from ._usage import add_serve_flags


def add_serve_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="processes serving the port, each a whole service over the one log (PostgreSQL only; default 1)",
    )
    p.add_argument(
        "--llm",
        choices=("scripted", "openai"),
        default="scripted",
        help="scripted (default): a local model that echoes each message (/call NAME {json} calls a tool); "
        "openai: an OpenAI-compatible model from OPENAI_BASE_URL, OPENAI_API_KEY, TURNLOG_MODEL, TURNLOG_PROVIDER",
    )
    p.add_argument("--echo-delay", type=float, default=0.0, help="scripted model: seconds before each text delta")
    p.add_argument(
        "--tokens",
        help='JSON file {"TOKEN": {"tenant": "...", "subject": "...", "level": N}}; without it, no auth',
    )
    p.add_argument(
        "--auditor-level",
        type=int,
        default=10,
        help="principals at this level or above read every conversation of their tenant and its model requests",
    )
    add_tools(p, "the demo's with --llm scripted, none with --llm openai")
    add_serve_flags(p)
    p.add_argument("--heartbeat", type=float, default=15.0, help="seconds of SSE silence before a keep-alive comment")
    p.add_argument(
        "--recover-grace",
        type=float,
        default=60.0,
        help="turns silent longer than this are ended as interrupted, at start and by a periodic sweep "
        "(0: all at start, no sweep; on several servers keep it above the longest silence of a live turn)",
    )
    p.add_argument("--max-body", type=int, default=1 << 20, help="largest request body in bytes")
    p.add_argument(
        "--allow-model",
        action="append",
        default=[],
        metavar="NAME",
        help="a model clients may name (repeat the flag); by default the server's policy decides the model",
    )
    p.add_argument("--allow-system-prompt", action="store_true", help="let clients set a conversation's system prompt")
    p.add_argument("--system-prompt", metavar="TEXT", help="the system prompt of every new conversation")
    p.add_argument(
        "--max-tokens-cap", type=int, default=32_768, metavar="N", help="the largest max_tokens a client may ask"
    )
    p.add_argument(
        "--checkpoint-key",
        metavar="KEYFILE",
        help="sign a checkpoint of the log's Merkle tree head on a schedule with this private key (turnlog keygen)",
    )
    p.add_argument(
        "--checkpoint-every",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="seconds between signed checkpoints (only when the log grew; with --checkpoint-key)",
    )
    p.add_argument("--shutdown-grace", type=float, default=10.0, help="seconds running turns get at shutdown")
    p.add_argument(
        "--approval-tool",
        action="append",
        default=[],
        metavar="NAME",
        help="calls of this tool wait for a person's decision (POST .../approvals); repeat the flag",
    )
    p.add_argument(
        "--resume-interrupted",
        action="store_true",
        help="recovery continues a turn whose server died instead of ending it (see turnlog recover --resume)",
    )
    _add_limits(p)


def add_recover_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--older-than", type=float, default=0.0, help="spare turns whose newest event is younger (seconds)")
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue each interrupted turn here instead of ending it: finished tool results reused, the model "
        "called again, a started tool re-run only if idempotent (else its outcome is recorded as unknown)",
    )
    add_engine_options(p)


def _add_limits(p: argparse.ArgumentParser) -> None:
    """What a careless or hostile client may hold (``ServerConfig``; its default when absent)."""
    g = p.add_argument_group("limits on what a client may hold")
    g.add_argument(
        "--header-timeout",
        type=float,
        metavar="S",
        help="seconds for a request's head to arrive (from the connection's opening or its first byte); "
        "then the connection is closed (default 10)",
    )
    g.add_argument(
        "--body-timeout",
        type=float,
        metavar="S",
        help="seconds for a request's body to arrive: 408 request_timeout after (default 30)",
    )
    g.add_argument("--keep-alive", type=float, metavar="S", help="seconds an idle connection stays open (default 5)")
    g.add_argument(
        "--max-connections",
        type=int,
        metavar="N",
        help="connections served at once (SSE streams count); beyond, 503 server_busy (default 1000, 0: no cap)",
    )
    g.add_argument("--max-title", type=int, metavar="N", help="longest conversation title, characters (default 200)")
    g.add_argument(
        "--max-system-prompt", type=int, metavar="N", help="longest system prompt a body may set (default 65536)"
    )
    g.add_argument(
        "--conversation-cache", type=int, metavar="N", help="conversations whose owner is cached (default 100000)"
    )
    g.add_argument(
        "--conversation-cache-bytes",
        type=int,
        metavar="BYTES",
        help="bytes the conversation cache may hold (default 33554432)",
    )
    g.add_argument("--max-message-bytes", type=int, metavar="BYTES", help="largest user message (default 262144)")
    g.add_argument(
        "--max-turn-bytes", type=int, metavar="BYTES", help="most model output in one turn (default 1048576)"
    )
    g.add_argument("--max-turn-deltas", type=int, metavar="N", help="most deltas in one turn (default 262144)")
    g.add_argument(
        "--max-conversation-bytes",
        type=int,
        metavar="BYTES",
        help="a new turn is refused past this much conversation (default 8388608)",
    )
    g.add_argument(
        "--max-conversation-events",
        type=int,
        metavar="N",
        help="a new turn is refused past this many events (default 1000000)",
    )
    g.add_argument(
        "--max-full-mode-events",
        type=int,
        metavar="N",
        help="mode=full is refused (422) for a conversation with more events (default 4096)",
    )
    g.add_argument(
        "--server-id",
        metavar="ID",
        help="this server's id: the turns it runs record it; recovery at start ends its own orphans at once "
        "(default: host:pid:random)",
    )
    g.add_argument(
        "--not-found-ttl",
        type=float,
        metavar="S",
        help="seconds a 404 is remembered for the caller it answered (default 10; 0: none)",
    )
    g.add_argument(
        "--retention-days", type=float, metavar="N", help="erase conversations quiet for N days (default: keep)"
    )
    g.add_argument("--retention-every", type=float, metavar="S", help="seconds between retention sweeps (default 3600)")
    g.add_argument(
        "--admin-level", type=int, metavar="N", help="level that may erase any of its tenant's conversations"
    )
    g.add_argument("--key-cache", type=int, default=10_000, metavar="N", help="data keys kept in memory (LRU)")
    g.add_argument("--key-ttl", type=float, default=2.0, metavar="S", help="seconds before a cached key is re-read")
