"""What every command group shares: the default ``--db`` (``TURNLOG_DB``), writing to stdout, the
``--db``, ``--mode`` and ``--tools`` arguments, the model provider from the environment, and
running a command's coroutine so that an error is one line on stderr.

It imports no other module of the command: every group imports it, ``_main`` imports the groups.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import sys
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, TypeAlias

import msgspec
from turnlog.engine import ConfigError, ConversationNotFound, ToolRegistry, TurnlogError

if TYPE_CHECKING:  # the model adapters load (httpx) only in the commands that call a model
    from turnlog.adapters.llm import ProviderConfig

DEFAULT_DB = "turnlog.db"
#: Names the log once for every command (``--db`` still wins).
DB_VARIABLE = "TURNLOG_DB"
#: What ``--mode`` chooses between, as ``--help`` says it.
MODE_HELP = (
    "how SSE frames carry text: delta (default) sends each step's new text only; full re-sends the "
    "step's whole text in every frame (what frontends written for the original service expect)"
)

Handler: TypeAlias = Callable[[argparse.Namespace], Awaitable[int]]
"""A command: the parsed arguments in, the exit status out."""

Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
"""What ``ArgumentParser.add_subparsers`` returns; each group's ``register`` adds its commands to it."""


def out(text: str | bytes) -> None:
    """Write to stdout as is (bytes unencoded), flushed: frames show up as they are made."""
    if isinstance(text, bytes):
        sys.stdout.buffer.write(text)
    else:
        sys.stdout.write(text)
    sys.stdout.flush()


class FrameOut:
    """SSE frames to stdout, a burst at a time: the frames a turn yields without waiting (one
    committed batch) go out in one write, flushed as soon as the turn waits (a callback queued with
    ``call_soon`` runs only then) or once ``limit`` bytes are pending. A write and a flush per
    frame were a tenth of ``turnlog play`` (bench/play_throughput.py). ``close`` writes the rest."""

    def __init__(self, limit: int = 1 << 16) -> None:
        self.limit = limit
        self._parts: list[bytes] = []
        self._size = 0
        self._queued = False

    def __call__(self, frame: bytes) -> None:
        self._parts.append(frame)
        self._size += len(frame)
        if self._size >= self.limit:
            self.flush()
        elif not self._queued:
            self._queued = True
            asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        self._queued = False
        if self._parts:
            data = b"".join(self._parts)
            self._parts.clear()
            self._size = 0
            sys.stdout.buffer.write(data)
            sys.stdout.flush()

    def close(self) -> None:
        self.flush()


def add_db(parser: argparse.ArgumentParser) -> None:
    """``--db``: the log every command reads or writes; ``TURNLOG_DB`` when not given."""
    parser.add_argument(
        "--db",
        default=os.environ.get(DB_VARIABLE) or DEFAULT_DB,
        help=f"SQLite file or postgresql:// URL (default: ${DB_VARIABLE}, else {DEFAULT_DB})",
    )


def add_mode(parser: argparse.ArgumentParser) -> None:
    """``--mode``: the SSE projection's mode."""
    parser.add_argument("--mode", choices=("full", "delta"), default="delta", help=MODE_HELP)


def add_tools(parser: argparse.ArgumentParser, default: str) -> None:
    """``--tools``: the tools a command's turns may call."""
    parser.add_argument(
        "--tools",
        metavar="MODULE:NAME",
        help="the tools turns may call: a ToolRegistry, or a function returning one, importable as "
        f"MODULE:NAME; 'demo' for the demo's get_weather (default: {default})",
    )


def load_tools(spec: str, named: Mapping[str, Callable[[], ToolRegistry]] | None = None) -> ToolRegistry:
    """The registry ``--tools`` names: one of ``named`` (``demo``) or ``MODULE:NAME`` (a
    ``ToolRegistry``, or a function returning one)."""
    if named and spec in named:
        return named[spec]()
    module_name, _, attr = spec.partition(":")
    if not attr:
        raise ConfigError(f"--tools {spec!r}: expected MODULE:NAME (a ToolRegistry or a function returning one)")
    try:
        obj = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"--tools {spec!r}: {exc}") from None
    tools = obj() if callable(obj) and not isinstance(obj, ToolRegistry) else obj
    if not isinstance(tools, ToolRegistry):
        raise ConfigError(f"--tools {spec!r} is a {type(tools).__name__}, not a ToolRegistry")
    return tools


def provider_config(env: Mapping[str, str] | None = None) -> ProviderConfig:
    """The model provider of ``chat``, ``demo --llm openai`` and ``serve --llm openai`` (see
    ``ProviderConfig.from_env``). A hosted provider with no key is refused before anything is
    sent: the command says what to set instead of calling a public endpoint without one."""
    from turnlog.adapters.llm import PRESETS, ProviderConfig

    env = os.environ if env is None else env
    config = ProviderConfig.from_env(env)
    if config.api_key() or env.get("OPENAI_BASE_URL") or config.api_key_env is None:
        return config  # a key; or a server of one's own (OPENAI_BASE_URL, ollama, vllm), which may need none
    if "TURNLOG_PROVIDER" in env:
        keys = " or ".join(dict.fromkeys((config.api_key_env, "OPENAI_API_KEY")))
        raise ConfigError(f"TURNLOG_PROVIDER={config.name} needs an API key: set {keys}")
    raise ConfigError(
        "no model provider is configured. Set OPENAI_API_KEY (OpenAI; TURNLOG_MODEL picks the model, "
        f"default {config.model}); or OPENAI_BASE_URL for any OpenAI-compatible server (with OPENAI_API_KEY "
        f"if it needs one); or TURNLOG_PROVIDER to a preset ({', '.join(PRESETS)}) and its key"
    )


def add_command(subparsers: Subparsers, name: str, handler: Handler, help_: str) -> argparse.ArgumentParser:
    """A command with ``--db`` that runs ``handler``; the caller adds the rest of its arguments."""
    parser = subparsers.add_parser(name, help=help_, description=help_[:1].upper() + help_[1:] + ".")
    add_db(parser)
    parser.set_defaults(handler=handler)
    return parser


def unknown_conversation(conversation: str, db: str) -> ConversationNotFound:
    """``ConversationNotFound`` (code ``not_found``) worded for the command line: it names the log."""
    exc = ConversationNotFound(conversation)
    exc.args = (f"unknown conversation {conversation!r} in {db}",)
    return exc


def run(handler: Handler, args: argparse.Namespace) -> int:
    """Run a command to its exit status. An error is one line on stderr, never a traceback:
    ``TurnlogError`` and the usual I/O and input errors exit 1, a bug exits 2 (``TURNLOG_DEBUG=1``
    raises it instead), Ctrl-C exits 130 and a closed stdout (``| head``) is not an error."""
    try:
        return asyncio.run(handler(args))
    except TurnlogError as exc:
        print(f"turnlog: error: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        # The reader of our output went away (`turnlog replay ... | head`): not an error of ours.
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("turnlog: interrupted", file=sys.stderr)
        return 130
    except (OSError, msgspec.DecodeError, ValueError) as exc:
        print(f"turnlog: error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:
        # Still one line: a traceback is for developers, who ask for it with TURNLOG_DEBUG=1.
        if os.environ.get("TURNLOG_DEBUG"):
            raise
        first = str(exc).splitlines()[0] if str(exc) else ""
        print(
            f"turnlog: internal error: {type(exc).__name__}: {first} (TURNLOG_DEBUG=1 shows the traceback)",
            file=sys.stderr,
        )
        return 2
