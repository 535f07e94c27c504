"""``turnlog serve`` and ``turnlog recover``: the HTTP service over a log, and ending the turns a
crashed one left live.

    turnlog serve [--db PATH|URL] [--host 127.0.0.1] [--port 8000] [--workers N] [--llm scripted|openai]
                  [--tokens FILE] [--auditor-level N] [--tools MODULE:NAME] [--recover-grace SECONDS]
                  [--header-timeout S] [--body-timeout S] [--keep-alive S] [--max-connections N] ...
    turnlog recover [--db PATH|URL] [--older-than SECONDS] [--resume [--llm auto|scripted|openai] [--tools MODULE:NAME]]

``serve`` needs the ``server`` extra (Starlette, uvicorn), imported when ``serve`` runs: without it
every other command works and ``serve`` says what to install. It recovers interrupted turns before
it accepts a request (see ``turnlog.adapters.server`` for the grace period on several servers).
``--workers N`` runs N processes on the port (uvicorn's workers), each a whole service with a
server id of its own, over a PostgreSQL log (refused over SQLite: see ``_serve_workers``).
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
import contextlib
import dataclasses
import json
import logging
import os
from collections.abc import AsyncIterator
from typing import Any

from turnlog.adapters.signing import load_signer
from turnlog.adapters.stores import open_store
from turnlog.engine import LLM, ConfigError, EngineConfig, Recorded, ToolRegistry, recover

from ._common import Subparsers, add_command, load_tools, out, provider_config
from ._controls import engine_for
from ._demo import demo_tools
from ._serve_flags import add_recover_arguments, add_serve_arguments
from ._usage import attach_otel, serve_settings


def _tools(args: argparse.Namespace) -> ToolRegistry:
    if args.tools is not None:
        return load_tools(args.tools, {"demo": demo_tools})
    return demo_tools() if args.llm == "scripted" else ToolRegistry()


def _model(args: argparse.Namespace) -> LLM:
    from turnlog.adapters.llm import EchoLLM, OpenAILLM

    if args.llm == "openai":
        return OpenAILLM(provider_config())
    return EchoLLM(delay=args.echo_delay)


def _server_extra() -> Any:
    try:  # the server extra: optional, so imported here and not with the module
        import turnlog.adapters.server as server
        import uvicorn  # noqa: F401
    except ImportError as exc:
        raise ConfigError(f"turnlog serve needs the server extra: pip install 'turnlog[server]' ({exc})") from None
    return server


def _settings(args: argparse.Namespace, server: Any) -> tuple[Any, Any, EngineConfig]:
    """The service's settings from the flags: ``ServerConfig``, the authenticator, ``EngineConfig``."""
    authenticate: Any = server.open_access
    if args.tokens:
        try:
            authenticate = server.TokenAuth.from_file(args.tokens)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"--tokens {args.tokens}: {exc}") from None
    else:
        logging.getLogger("turnlog.server").warning("no --tokens: every caller is one tenant with level 1")
    config = server.ServerConfig(
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
        approval_tools=tuple(args.approval_tool),
        resume_interrupted=args.resume_interrupted,
        # Limits whose flag is absent keep ServerConfig's defaults (one place says them).
        **{name: getattr(args, name) for name in _LIMITS if getattr(args, name) is not None},
        **serve_settings(args),  # --prices, --usage-level (``_usage``)
    )
    engine_config = EngineConfig(
        **{name: getattr(args, name) for name in _ENGINE_LIMITS if getattr(args, name) is not None}
    )
    return config, authenticate, engine_config


async def cmd_serve(args: argparse.Namespace) -> int:
    server = _server_extra()
    import uvicorn

    if args.workers < 1:
        raise ConfigError(f"--workers must be at least 1, not {args.workers}")
    if args.workers > 1:
        return _serve_workers(args, server)
    # The key is read once, here: the service holds the signer, the database never sees the key.
    signer = load_signer(args.checkpoint_key) if args.checkpoint_key else None
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    config, authenticate, engine_config = _settings(args, server)
    tools = _tools(args)
    llm = _model(args)
    log, messages = await open_store(args.db, key_cache=(args.key_cache, args.key_ttl))
    attach_otel(args, messages)  # --otel: each turn's spans as it ends
    async with log:
        service = server.TurnService(
            log,
            messages,
            llm,
            tools=tools,
            authenticate=authenticate,
            config=config,
            engine_config=engine_config,
            signer=signer,
        )
        app = server.create_app(service)
        uv = uvicorn.Server(server.uvicorn_config(app, config, **_uvicorn_options(args)))
        await uv.serve()
        if hasattr(llm, "aclose"):
            await llm.aclose()
    # uvicorn reports a failed start (port in use, lifespan error) by not starting.
    return 0 if uv.started else 1


def _uvicorn_options(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "host": args.host,
        "port": args.port,
        "log_level": "info",
        "lifespan": "on",
        # SSE streams hold connections open: past this, uvicorn closes them and the app's
        # shutdown gives the running turns their own grace.
        "timeout_graceful_shutdown": max(1, int(args.shutdown_grace)),
    }


# -- turnlog serve --workers N --------------------------------------------------------------------

#: The flags, for each worker process (uvicorn spawns them and imports ``worker_app`` by name).
WORKER_ARGS_ENV = "TURNLOG_SERVE_ARGS"


def _serve_workers(args: argparse.Namespace, server: Any) -> int:
    """N processes on one port (uvicorn's workers), each a whole service over the one log.

    Only over PostgreSQL: each process's followers are woken by LISTEN/NOTIFY when a sibling
    commits, and each process holds its own server id (``TurnStarted.owner``; an advisory lock),
    so recovery in one never ends a turn a sibling runs. Over SQLite a process hears another's
    commits only by polling, so a stream followed on one worker of a turn run by another would
    lag: refused, with the reason."""
    from uvicorn.supervisors import Multiprocess

    if not str(args.db).startswith(("postgresql://", "postgres://")):
        raise ConfigError(
            f"--workers {args.workers} needs a PostgreSQL log (--db postgresql://...): over SQLite a process "
            "hears another's commits only by polling, so a client following a turn run by a sibling worker "
            "would lag. Run one process over SQLite, or several over PostgreSQL"
        )
    config, _, _ = _settings(args, server)  # the flags are checked here, before any worker starts
    os.environ[WORKER_ARGS_ENV] = json.dumps({k: v for k, v in vars(args).items() if k != "handler"})
    options = _uvicorn_options(args)
    uv_config = server.uvicorn_config(f"{__name__}:worker_app", config, factory=True, workers=args.workers, **options)
    sock = uv_config.bind_socket()
    Multiprocess(uv_config, sockets=[sock]).run()
    return 0


def worker_app() -> Any:
    """The app of one worker process of ``turnlog serve --workers N`` (uvicorn's app factory):
    the flags come from the parent's environment; the store is opened in the worker's lifespan."""
    args = argparse.Namespace(**json.loads(os.environ[WORKER_ARGS_ENV]))
    server = _server_extra()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    config, authenticate, engine_config = _settings(args, server)
    if args.server_id:
        # Each process holds an id of its own: two holding one would end each other's turns.
        config = dataclasses.replace(config, server_id=f"{args.server_id}:{os.getpid()}")
    signer = load_signer(args.checkpoint_key) if args.checkpoint_key else None

    @contextlib.asynccontextmanager
    async def service() -> AsyncIterator[Any]:
        llm = _model(args)
        log, messages = await open_store(args.db, key_cache=(args.key_cache, args.key_ttl))
        attach_otel(args, messages)
        async with log:
            yield server.TurnService(
                log,
                messages,
                llm,
                tools=_tools(args),
                authenticate=authenticate,
                config=config,
                engine_config=engine_config,
                signer=signer,
            )
            if hasattr(llm, "aclose"):
                await llm.aclose()

    return server.create_app(service)


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
    "retention_days",
    "retention_every",
    "admin_level",
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
        resume = None
        if args.resume:

            async def resume(conversation: str) -> Recorded | None:
                # Each turn runs to its end (or its next park) here, with the conversation's model.
                created = (await log.read(conversation, 0, 1))[0].event
                engine = engine_for(args, log, messages, created)  # type: ignore[arg-type]
                first = None
                try:
                    async for rec in engine.resume_turn(conversation, owner="turnlog recover"):
                        first = first or rec
                finally:
                    if hasattr(engine.llm, "aclose"):
                        await engine.llm.aclose()
                return first

        done = await recover(log, older_than=args.older_than, messages=messages, resume=resume)
        for r in done:
            if r.resumed:
                last = await log.last(r.stream_id)
                end = last.type if last is not None else "?"
                out(f"resumed {r.stream_id} turn {r.turn_id} at version {r.version}: now {end}\n")
            else:
                out(f"recovered {r.stream_id} turn {r.turn_id}: failed (interrupted) at version {r.version}\n")
    what = "resumed" if args.resume else "ended"
    out(f"{len(done)} interrupted turn(s) {what}\n")
    return 0


def register(subparsers: Subparsers) -> None:
    add_serve_arguments(add_command(subparsers, "serve", cmd_serve, "run the HTTP service (needs the server extra)"))
    add_recover_arguments(
        add_command(subparsers, "recover", cmd_recover, "end every turn a crash left live as failed (interrupted)")
    )
