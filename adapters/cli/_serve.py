"""``turnlog serve`` and ``turnlog recover``: the HTTP service over a log, and ending the turns a
crashed one left live.

    turnlog serve [--db PATH|URL] [--host 127.0.0.1] [--port 8000] [--llm scripted|openai]
                  [--tokens FILE] [--auditor-level N] [--tools MODULE:NAME] [--recover-grace SECONDS]
                  [--header-timeout S] [--body-timeout S] [--keep-alive S] [--max-connections N] ...
    turnlog recover [--db PATH|URL] [--older-than SECONDS]

``serve`` needs the ``server`` extra (Starlette, uvicorn), imported when ``serve`` runs: without it
every other command works and ``serve`` says what to install. It recovers interrupted turns before
it accepts a request (see ``turnlog.adapters.server`` for the grace period on several servers).
Tools: ``--tools MODULE:NAME`` (or ``demo``); without it the scripted echo model is served with the
demo's tools, a real model (``--llm openai``) with none: a demo tool answering made-up weather to
a real model is not something to offer unasked.

What a client may hold is bounded by flags that map onto ``ServerConfig`` (its defaults when a
flag is absent): the deadlines to send a request's head and body, the idle keep-alive, the
connections served at once (``turnlog.adapters.server.uvicorn_config``), the length of a title
and a system prompt, and the bytes and entries of the conversation cache.
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

from turnlog.adapters.llm import EchoLLM, OpenAILLM
from turnlog.adapters.signing import load_signer
from turnlog.adapters.stores import open_store
from turnlog.engine import LLM, ConfigError, EngineConfig, ToolRegistry, recover

from ._common import Subparsers, add_command, add_tools, load_tools, out, provider_config
from ._demo import demo_tools


def _tools(args: argparse.Namespace) -> ToolRegistry:
    if args.tools is not None:
        return load_tools(args.tools, {"demo": demo_tools})
    return demo_tools() if args.llm == "scripted" else ToolRegistry()


def _model(args: argparse.Namespace) -> LLM:
    if args.llm == "openai":
        return OpenAILLM(provider_config())
    return EchoLLM(delay=args.echo_delay)


async def cmd_serve(args: argparse.Namespace) -> int:
    try:  # the server extra: optional, so imported here and not with the module
        import uvicorn
        from turnlog.adapters.server import (
            ServerConfig,
            TokenAuth,
            TurnService,
            create_app,
            open_access,
            uvicorn_config,
        )
    except ImportError as exc:
        raise ConfigError(f"turnlog serve needs the server extra: pip install 'turnlog[server]' ({exc})") from None

    # The key is read once, here: the service holds the signer, the database never sees the key.
    signer = load_signer(args.checkpoint_key) if args.checkpoint_key else None
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    authenticate: Any = open_access
    if args.tokens:
        try:
            authenticate = TokenAuth.from_file(args.tokens)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"--tokens {args.tokens}: {exc}") from None
    else:
        logging.getLogger("turnlog.server").warning("no --tokens: every caller is one tenant with level 1")
    tools = _tools(args)
    llm = _model(args)
    config = ServerConfig(
        heartbeat=args.heartbeat,
        recover_grace=args.recover_grace,
        max_body=args.max_body,
        shutdown_grace=args.shutdown_grace,
        auditor_level=args.auditor_level,
        checkpoint_every=args.checkpoint_every,
        allowed_models=tuple(args.allow_model),
        allow_system_prompt=args.allow_system_prompt,
        system_prompt=args.system_prompt,
        max_tokens_cap=args.max_tokens_cap,
        # Limits whose flag is absent keep ServerConfig's defaults (one place says them).
        **{name: getattr(args, name) for name in _LIMITS if getattr(args, name) is not None},
    )
    log, messages = await open_store(args.db)
    async with log:
        engine_config = EngineConfig(
            **{name: getattr(args, name) for name in _ENGINE_LIMITS if getattr(args, name) is not None}
        )
        service = TurnService(
            log,
            messages,
            llm,
            tools=tools,
            authenticate=authenticate,
            config=config,
            engine_config=engine_config,
            signer=signer,
        )
        app = create_app(service)
        server = uvicorn.Server(
            uvicorn_config(
                app,
                config,
                host=args.host,
                port=args.port,
                log_level="info",
                lifespan="on",
                # SSE streams hold connections open: past this, uvicorn closes them and the
                # app's shutdown gives the running turns their own grace.
                timeout_graceful_shutdown=max(1, int(args.shutdown_grace)),
            )
        )
        await server.serve()
        if hasattr(llm, "aclose"):
            await llm.aclose()
    # uvicorn reports a failed start (port in use, lifespan error) by not starting.
    return 0 if server.started else 1


#: ``ServerConfig`` fields with a flag of the same name (``--header-timeout`` ...), default None:
#: the config's own default.
_LIMITS = (
    "header_timeout",
    "body_timeout",
    "keep_alive",
    "max_connections",
    "max_title",
    "max_system_prompt",
    "conversation_cache",
    "conversation_cache_bytes",
    "not_found_ttl",
    "max_full_mode_events",
    "server_id",
)
#: EngineConfig limits: what one message, turn and conversation may hold (the engine's defaults).
_ENGINE_LIMITS = (
    "max_message_bytes",
    "max_turn_bytes",
    "max_turn_deltas",
    "max_conversation_bytes",
    "max_conversation_events",
)


async def cmd_recover(args: argparse.Namespace) -> int:
    log, messages = await open_store(args.db, create=False)
    async with log:
        done = await recover(log, older_than=args.older_than, messages=messages)
    for r in done:
        out(f"recovered {r.stream_id} turn {r.turn_id}: failed (interrupted) at version {r.version}\n")
    out(f"{len(done)} interrupted turn(s) ended\n")
    return 0


def register(subparsers: Subparsers) -> None:
    p = add_command(subparsers, "serve", cmd_serve, "run the HTTP service (needs the server extra)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
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
    _add_limits(p)

    p = add_command(subparsers, "recover", cmd_recover, "end every turn a crash left live as failed (interrupted)")
    p.add_argument("--older-than", type=float, default=0.0, help="spare turns whose newest event is younger (seconds)")


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
