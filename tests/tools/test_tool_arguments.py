"""Arguments are checked against the tool's declaration before the call: a bad one is a clear
``success: false`` result naming the field, and the tool is not called. A tool's own exception
reaches the model as ``tool NAME failed: Type: words``, never as Python's signature error."""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Annotated, Any, Literal

import msgspec
import pytest
from turnlog.engine import ToolCall, ToolContext, ToolRegistry, ToolResult


class Trip(msgspec.Struct):
    city: str
    days: int = 1


class Station:
    """Not a type msgspec can describe."""


CALLER = ToolContext(conversation_id="conv-1", turn_id="turn-1", call_id="", permission_level=1, user_id="ann")


async def call(registry: ToolRegistry, name: str, arguments: Any) -> ToolResult:
    raw = arguments if isinstance(arguments, str) else json.dumps(arguments)
    context = msgspec.structs.replace(CALLER, call_id="call-1")
    return await registry.run_one(ToolCall("call-1", name, raw), context, lambda: 0.0)


@pytest.fixture
def registry() -> tuple[ToolRegistry, list[dict[str, Any]]]:
    """Tools that record every call they receive (a refused call must not be one of them)."""
    tools, calls = ToolRegistry(default_timeout=2.0), []

    async def get_weather(city: str, units: Literal["c", "f"] = "c") -> dict[str, Any]:
        calls.append({"city": city, "units": units})
        if city == "Atlantis":
            raise ValueError("no station in Atlantis")
        return {"city": city, "units": units}

    def plan(trip: Trip, tags: list[str], count: Annotated[int, msgspec.Meta(ge=1)] = 1, note=None) -> str:
        calls.append({"trip": trip, "tags": tags, "count": count, "note": note})
        return f"{trip.city} for {trip.days} days x{count}"

    def whoami(context: ToolContext, greeting: str = "hi") -> str:
        calls.append({"greeting": greeting})
        return f"{greeting} {context.user_id} ({context.call_id})"

    tools.register(get_weather)
    tools.register(plan)
    tools.register(whoami)
    return tools, calls


@pytest.mark.parametrize(
    ("name", "arguments", "problem"),
    [
        ("get_weather", {"city": 42}, "Expected `str`, got `int` - at `$.city`"),
        ("get_weather", {"city": "Paris", "units": "kelvin"}, "Invalid enum value 'kelvin' - at `$.units`"),
        ("get_weather", {}, "Object missing required field `city`"),
        ("get_weather", {"city": "Paris", "town": "Paris"}, "Object contains unknown field `town`"),
        ("plan", {"trip": {"city": 1}, "tags": []}, "Expected `str`, got `int` - at `$.trip.city`"),
        ("plan", {"trip": {"city": "Rome"}, "tags": ["a", 2]}, "Expected `str`, got `int` - at `$.tags[1]`"),
        ("plan", {"trip": {"city": "Rome"}, "tags": [], "count": 0}, "Expected `int` >= 1 - at `$.count`"),
        ("whoami", {"context": {"user_id": "root"}}, "Object contains unknown field `context`"),
    ],
)
async def test_bad_arguments_name_the_field_and_never_reach_the_tool(
    registry: tuple[ToolRegistry, list[Any]], name: str, arguments: dict[str, Any], problem: str
) -> None:
    tools, calls = registry
    result = await call(tools, name, arguments)
    assert not result.success
    assert result.content == f"error: invalid arguments for tool {name}: {problem}"
    assert calls == []


async def test_good_arguments_arrive_converted_and_defaults_are_the_tools(
    registry: tuple[ToolRegistry, list[Any]],
) -> None:
    tools, calls = registry
    result = await call(tools, "plan", {"trip": {"city": "Rome"}, "tags": ["art"]})
    assert result.success and result.content == "Rome for 1 days x1"
    assert calls == [{"trip": Trip("Rome", 1), "tags": ["art"], "count": 1, "note": None}]
    # An unannotated parameter without a JSON-scalar default takes any JSON value.
    assert (await call(tools, "plan", {"trip": {"city": "Oslo"}, "tags": [], "note": {"any": [1]}})).success


async def test_the_context_is_injected(registry: tuple[ToolRegistry, list[Any]]) -> None:
    tools, _ = registry
    result = await call(tools, "whoami", {"greeting": "hello"})
    assert result.success and result.content == "hello ann (call-1)"


async def test_sync_tools_run_in_a_thread_async_tools_on_the_loop() -> None:
    tools, seen = ToolRegistry(), {}

    def sync_add(a: int, b: int = 1) -> int:
        seen["sync"] = threading.current_thread() is threading.main_thread()
        return a + b

    async def async_add(a: int, b: int = 1) -> int:
        seen["async"] = threading.current_thread() is threading.main_thread()
        await asyncio.sleep(0)
        return a + b

    tools.register(sync_add)
    tools.register(async_add)
    for name in ("sync_add", "async_add"):
        assert (await call(tools, name, {"a": 2})).content == "3"
        bad = await call(tools, name, {"a": "2"})
        assert bad.content == f"error: invalid arguments for tool {name}: Expected `int`, got `str` - at `$.a`"
    assert seen == {"sync": False, "async": True}


async def test_a_tools_exception_reaches_the_model_as_a_clear_message(
    registry: tuple[ToolRegistry, list[Any]],
) -> None:
    tools, _ = registry
    result = await call(tools, "get_weather", {"city": "Atlantis"})
    assert not result.success
    assert result.content == "error: tool get_weather failed: ValueError: no station in Atlantis"

    def broken(x: int) -> int:
        return len(x)  # type: ignore[arg-type]  # a TypeError of the tool's own, not of its arguments

    async def own_timeout() -> str:
        raise TimeoutError("the weather API did not answer")

    tools.register(broken)
    tools.register(own_timeout)
    assert (await call(tools, "broken", {"x": 1})).content == (
        "error: tool broken failed: TypeError: object of type 'int' has no len()"
    )
    # A TimeoutError the tool raises is its failure; the registry's own timeout is told apart.
    assert (await call(tools, "own_timeout", "")).content == (
        "error: tool own_timeout failed: TimeoutError: the weather API did not answer"
    )


async def test_the_registrys_timeout_is_still_a_timeout() -> None:
    tools = ToolRegistry()

    async def slow() -> str:
        await asyncio.sleep(5)
        return "late"

    tools.register(slow, timeout=0.05)
    assert (await call(tools, "slow", {})).content == "error: tool 'slow' timed out after 0.05 s"


async def test_not_json_and_not_an_object_keep_their_messages(registry: tuple[ToolRegistry, list[Any]]) -> None:
    tools, _ = registry
    assert "are not valid JSON" in (await call(tools, "get_weather", '{"city": "Par')).content
    assert (await call(tools, "get_weather", "[1]")).content == (
        "error: arguments for tool 'get_weather' must be a JSON object, got list"
    )


async def test_an_explicit_schema_checks_required_keys_and_types() -> None:
    tools = ToolRegistry()
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
        "required": ["city", "days"],
        "additionalProperties": False,
    }

    def stay(city: str, days: int = 1) -> str:
        return f"{city} x{days}"

    tools.register(stay, parameters=schema)
    # The schema asks for more than the signature: it is what the model was told, so it holds.
    assert (await call(tools, "stay", {"city": "Rome"})).content == (
        "error: invalid arguments for tool stay: Object missing required field `days`"
    )
    assert (await call(tools, "stay", {"city": "Rome", "days": "2"})).content == (
        "error: invalid arguments for tool stay: Expected `integer`, got `string` - at `$.days`"
    )
    assert (await call(tools, "stay", {"city": "Rome", "days": 2, "x": 1})).content == (
        "error: invalid arguments for tool stay: Object contains unknown field `x`"
    )
    assert (await call(tools, "stay", {"city": "Rome", "days": 2})).content == "Rome x2"


async def test_an_explicit_schema_over_a_signature_it_cannot_describe_still_guards_the_call() -> None:
    tools = ToolRegistry()

    def weather_at(station: Station) -> str:  # a type msgspec cannot describe
        return "sunny"

    tools.register(weather_at, parameters={"type": "object", "properties": {"station": {"type": "string"}}})
    # The schema does not require it; the signature does: refused before the call, by name.
    result = await call(tools, "weather_at", {})
    assert result.content == "error: invalid arguments for tool weather_at: missing a required argument: 'station'"
    assert (await call(tools, "weather_at", {"station": "LFPG"})).content == "sunny"


async def test_extra_keyword_arguments_pass_through() -> None:
    tools = ToolRegistry()

    def tag(name: str, **extra: Any) -> dict[str, Any]:
        return {"name": name, **extra}

    tools.register(tag)
    assert json.loads((await call(tools, "tag", {"name": "a", "color": "red"})).content) == {
        "name": "a",
        "color": "red",
    }
    assert "at `$.name`" in (await call(tools, "tag", {"name": 1})).content


async def test_pydantic_models_are_validated_by_pydantic() -> None:
    pydantic = pytest.importorskip("pydantic")

    class Passenger(pydantic.BaseModel):
        name: str
        age: int = pydantic.Field(ge=0)

    def board(passenger: Passenger, seat: str = "any") -> str:
        assert isinstance(passenger, Passenger)
        return f"{passenger.name} ({passenger.age}) in {seat}"

    board.__annotations__["passenger"] = Passenger
    tools = ToolRegistry()
    tools.register(board)
    assert (await call(tools, "board", {"passenger": {"name": "Ann", "age": 30}})).content == "Ann (30) in any"
    bad = await call(tools, "board", {"passenger": {"name": "Ann", "age": -1}})
    assert not bad.success and bad.content.startswith("error: invalid arguments for tool board: ")
    assert bad.content.endswith("- at `$.passenger.age`")
