"""Tools the model may call: a registry of async and sync callables with OpenAI-style specs.

A tool is declared once, by its signature: the JSON schema offered to the model is derived from
its type hints, and every call's arguments are checked against the same declaration before the
tool runs (``_tool_args``; an explicit ``parameters=`` schema wins).

A tool never raises into the engine. An exception, a timeout, an unknown name, arguments that do
not fit the tool (not JSON, not an object, a wrong type, a missing or unknown field), or a caller
whose permission level is too low all become a result with ``success=False`` and a message that
says what went wrong (``tool get_weather failed: ValueError: ...``, ``invalid arguments for tool
get_weather: ... - at `$.units```); the model sees it, the stream shows it, the turn goes on.

Sync tools run in the default thread pool so they never block the event loop. A sync tool that
overruns its timeout is reported as timed out at once; its thread cannot be killed and finishes
in the background (Python offers no safe way to stop a thread), so sync tools should keep their
own I/O timeouts.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import msgspec

from ._errors import ConfigError
from ._events import ToolCall
from ._tool_args import InvalidArguments, ToolArguments


class ToolContext(msgspec.Struct, frozen=True):
    """What a tool may know about its caller. A tool receives it as its parameter annotated
    ``ToolContext`` (or named ``context``); that parameter is never offered to the model."""

    conversation_id: str
    turn_id: str
    call_id: str
    permission_level: int = 1
    user_id: str | None = None
    username: str | None = None
    workspace: str | None = None
    #: For a tool declared ``idempotent``: the call id, the same on the first run and on a re-run
    #: after a crash (recovery's resume), so the tool can perform its effect at most once ("" for
    #: other tools).
    idempotency_key: str = ""


class ToolResult(msgspec.Struct, frozen=True):
    call_id: str
    name: str
    content: str
    success: bool
    duration_ms: float


class Tool(msgspec.Struct, frozen=True):
    name: str
    fn: Callable[..., Any]
    description: str
    parameters: dict[str, Any]
    permission_level: int = 1
    timeout: float | None = None
    is_async: bool = False
    #: The parameter the caller's ``ToolContext`` is passed as, if the tool takes one.
    context_param: str | None = None
    #: The declaration calls are checked against (None: ``parameters`` alone).
    arguments: ToolArguments | None = None
    #: A person approves or denies each call before it runs (the turn parks until then).
    requires_approval: bool = False
    #: Running it twice with the same ``ToolContext.idempotency_key`` does what once does: recovery
    #: may run a call again whose result a crash lost (other tools' results become "outcome unknown").
    idempotent: bool = False

    @property
    def wants_context(self) -> bool:
        return self.context_param is not None

    @property
    def spec(self) -> dict[str, Any]:
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": self.parameters},
        }


class ToolRegistry:
    def __init__(self, *, default_timeout: float = 30.0) -> None:
        self.default_timeout = default_timeout
        self._tools: dict[str, Tool] = {}

    def register(
        self,
        fn: Callable[..., Any],
        *,
        name: str | None = None,
        description: str | None = None,
        parameters: dict[str, Any] | None = None,
        permission_level: int = 1,
        timeout: float | None = None,
        requires_approval: bool = False,
        idempotent: bool = False,
    ) -> Tool:
        """Register ``fn`` as a tool. Its JSON schema is derived from its signature (type hints
        and defaults; the ``ToolContext`` parameter left out) unless ``parameters`` gives one; a
        signature no schema can be derived from, without ``parameters``, is a ``ConfigError``.
        ``requires_approval``: each call waits for a person's decision (the turn parks);
        ``idempotent``: the call id is its ``ToolContext.idempotency_key`` and recovery may run a
        call again whose result was lost."""
        tool_name = name or fn.__name__
        if tool_name in self._tools:
            raise ConfigError(f"a tool named {tool_name!r} is already registered")
        arguments = ToolArguments.of(fn, tool_name, parameters, ToolContext)
        tool = Tool(
            name=tool_name,
            fn=fn,
            description=description if description is not None else inspect.getdoc(fn) or "",
            parameters=arguments.schema,
            permission_level=permission_level,
            timeout=timeout,
            is_async=inspect.iscoroutinefunction(fn),
            context_param=arguments.context,
            arguments=arguments,
            requires_approval=requires_approval,
            idempotent=idempotent,
        )
        self._tools[tool_name] = tool
        return tool

    def tool(self, **options: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Decorator form of ``register``."""

        def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
            self.register(fn, **options)
            return fn

        return wrap

    def __contains__(self, name: str) -> bool:
        return name in self._tools

    def names(self) -> list[str]:
        return list(self._tools)

    def get(self, name: str) -> Tool | None:
        return self._tools.get(name)

    def specs(self, enabled: Sequence[str] | None, permission_level: int) -> list[dict[str, Any]]:
        """Specs offered to the model: the enabled tools the caller may use, in registry order.
        ``enabled=None`` offers none (as the seed does when no tools are enabled)."""
        if not enabled:
            return []
        wanted = set(enabled)
        return [t.spec for t in self._tools.values() if t.name in wanted and t.permission_level <= permission_level]

    async def run_one(self, call: ToolCall, context: ToolContext, clock: Callable[[], float]) -> ToolResult:
        start = clock()

        def result(content: str, success: bool) -> ToolResult:
            return ToolResult(call.id, call.name, content, success, round((clock() - start) * 1000.0, 3))

        tool = self._tools.get(call.name)
        if tool is None:
            return result(f"error: unknown tool {call.name!r}; available: {', '.join(self._tools) or 'none'}", False)
        if tool.permission_level > context.permission_level:
            return result(
                f"error: permission denied: tool {call.name!r} needs level {tool.permission_level}, "
                f"caller has {context.permission_level}",
                False,
            )
        # A Tool built by hand (not by register) is checked against its schema alone.
        arguments = tool.arguments or ToolArguments(tool.name, tool.parameters, explicit=tool.parameters)
        try:
            args = arguments.parse(call.arguments)
        except InvalidArguments as exc:
            return result(f"error: {exc}", False)
        if tool.context_param is not None:
            if tool.idempotent:
                context = msgspec.structs.replace(context, idempotency_key=call.id)
            args[tool.context_param] = context
        timeout = tool.timeout if tool.timeout is not None else self.default_timeout
        deadline = asyncio.timeout(timeout)
        try:
            async with deadline:
                if tool.is_async:
                    value = await tool.fn(**args)
                else:
                    value = await asyncio.to_thread(tool.fn, **args)
        except TimeoutError as exc:
            if deadline.expired():
                return result(f"error: tool {call.name!r} timed out after {timeout:g} s", False)
            return result(_failed(call.name, exc), False)
        except Exception as exc:
            return result(_failed(call.name, exc), False)
        content = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
        return result(content, _seed_success(content))

    def run_all(
        self,
        calls: Sequence[ToolCall],
        context: Callable[[ToolCall], ToolContext],
        clock: Callable[[], float] = time.monotonic,
    ) -> list[Awaitable[ToolResult]]:
        """Start every call at once; await the returned tasks in order to get results in call order."""
        return [asyncio.ensure_future(self.run_one(c, context(c), clock)) for c in calls]


def _failed(name: str, exc: BaseException) -> str:
    # What the model and the stream are told: the tool, the exception's type and its words.
    return f"error: tool {name} failed: {type(exc).__name__}: {exc}"


def _seed_success(content: str) -> bool:
    # The seed's rule, kept for compatibility: a tool that returns a JSON object with
    # "success": false reports a failure even though it did not raise.
    if not content.startswith("{"):
        return True
    try:
        obj = json.loads(content)
    except ValueError:
        return True
    return not (isinstance(obj, dict) and obj.get("success", True) is False)
