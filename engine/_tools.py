"""Tools the model may call: a registry of async and sync callables with OpenAI-style specs.

A tool never raises into the engine. An exception, a timeout, an unknown name, arguments that are
not a JSON object, or a caller whose permission level is too low all become a result with
``success=False`` and a message that says what went wrong; the model sees it and the turn goes on.

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


class ToolContext(msgspec.Struct, frozen=True):
    """What a tool may know about its caller. A tool receives it when its signature has a
    parameter named ``context``."""

    conversation_id: str
    turn_id: str
    call_id: str
    permission_level: int = 1
    user_id: str | None = None
    username: str | None = None
    workspace: str | None = None


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
    wants_context: bool = False

    @property
    def spec(self) -> dict[str, Any]:
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": self.parameters},
        }


_EMPTY_SCHEMA: dict[str, Any] = {"type": "object", "properties": {}}


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
    ) -> Tool:
        tool_name = name or fn.__name__
        if tool_name in self._tools:
            raise ConfigError(f"a tool named {tool_name!r} is already registered")
        sig = inspect.signature(fn)
        tool = Tool(
            name=tool_name,
            fn=fn,
            description=description if description is not None else inspect.getdoc(fn) or "",
            parameters=parameters or _EMPTY_SCHEMA,
            permission_level=permission_level,
            timeout=timeout,
            is_async=inspect.iscoroutinefunction(fn),
            wants_context="context" in sig.parameters,
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
        try:
            args = json.loads(call.arguments) if call.arguments.strip() else {}
        except ValueError as exc:
            return result(
                f"error: arguments for tool {call.name!r} are not valid JSON ({exc}): {call.arguments[:200]!r}", False
            )
        if not isinstance(args, dict):
            return result(
                f"error: arguments for tool {call.name!r} must be a JSON object, got {type(args).__name__}", False
            )
        if tool.wants_context:
            args["context"] = context
        timeout = tool.timeout if tool.timeout is not None else self.default_timeout
        try:
            async with asyncio.timeout(timeout):
                if tool.is_async:
                    value = await tool.fn(**args)
                else:
                    value = await asyncio.to_thread(tool.fn, **args)
        except TimeoutError:
            return result(f"error: tool {call.name!r} timed out after {timeout:g} s", False)
        except TypeError as exc:
            # Wrong or missing argument names land here: say which call was malformed.
            return result(f"error: tool {call.name!r} rejected its arguments: {exc}", False)
        except Exception as exc:
            return result(f"error: tool {call.name!r} raised {type(exc).__name__}: {exc}", False)
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
