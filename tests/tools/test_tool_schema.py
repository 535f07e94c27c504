"""A tool is declared once: the JSON schema offered to the model is derived from its signature
(type hints and defaults), the caller's context left out; an explicit ``parameters=`` wins; a
signature no schema can be derived from is refused at registration, never offered empty."""

from __future__ import annotations

from typing import Annotated, Any, Literal, TypedDict

import msgspec
import pytest
from turnlog.engine import ConfigError, ToolContext, ToolRegistry


class Trip(msgspec.Struct):
    """Where and how long."""

    city: str
    days: int = 1


class Stop(TypedDict):
    city: str
    nights: int


class Node(msgspec.Struct):
    name: str
    children: list[Node] = []


class Station:
    """Not a type msgspec can describe."""


def schema_of(fn: Any, **options: Any) -> dict[str, Any]:
    return ToolRegistry().register(fn, **options).spec["function"]["parameters"]


def test_get_weather_is_no_longer_offered_without_properties() -> None:
    def get_weather(city: str, units="c"):
        return city

    assert schema_of(get_weather) == {
        "type": "object",
        "properties": {"city": {"type": "string"}, "units": {"type": "string", "default": "c"}},
        "required": ["city"],
        "additionalProperties": False,
    }


def test_scalars_defaults_literals_lists_and_optionals() -> None:
    def search(
        query: str,
        limit: int = 10,
        order: Literal["new", "old"] = "new",
        tags: list[str] | None = None,
        exact: bool = False,
        weight: Annotated[float, msgspec.Meta(ge=0, le=1, description="how much it counts")] = 0.5,
    ) -> str:
        return query

    assert schema_of(search)["properties"] == {
        "query": {"type": "string"},
        "limit": {"type": "integer", "default": 10},
        "order": {"enum": ["new", "old"], "default": "new"},
        "tags": {"anyOf": [{"type": "array", "items": {"type": "string"}}, {"type": "null"}], "default": None},
        "exact": {"type": "boolean", "default": False},
        "weight": {"description": "how much it counts", "type": "number", "minimum": 0, "maximum": 1, "default": 0.5},
    }
    assert schema_of(search)["required"] == ["query"]


def test_a_struct_and_a_typed_dict_are_inlined() -> None:
    def book(trip: Trip, stops: list[Stop]) -> str:
        return trip.city

    schema = schema_of(book)
    assert "$defs" not in schema and "$ref" not in str(schema)
    assert schema["properties"]["trip"] == {
        "title": "Trip",
        "description": "Where and how long.",
        "type": "object",
        "properties": {"city": {"type": "string"}, "days": {"type": "integer", "default": 1}},
        "required": ["city"],
    }
    assert schema["properties"]["stops"]["items"]["properties"] == {
        "city": {"type": "string"},
        "nights": {"type": "integer"},
    }


def test_a_recursive_type_keeps_its_definitions() -> None:
    def walk(root: Node) -> str:
        return root.name

    schema = schema_of(walk)
    assert schema["properties"]["root"]["properties"]["children"]["items"] == {"$ref": "#/$defs/Node"}
    assert schema["$defs"]["Node"]["properties"]["name"] == {"type": "string"}


def test_the_context_is_never_offered() -> None:
    def by_type(city: str, ctx: ToolContext) -> str:
        return city

    def by_name(city: str, context) -> str:
        return city

    def optional(city: str, ctx: ToolContext | None = None) -> str:
        return city

    for fn, param in ((by_type, "ctx"), (by_name, "context"), (optional, "ctx")):
        tool = ToolRegistry().register(fn)
        assert tool.context_param == param and tool.wants_context
        assert list(tool.parameters["properties"]) == ["city"] and tool.parameters["required"] == ["city"]


def test_a_tool_without_arguments_keeps_the_schema_older_logs_recorded() -> None:
    def ping() -> str:
        return "pong"

    def ping_with_context(context: ToolContext) -> str:
        return "pong"

    assert schema_of(ping) == schema_of(ping_with_context) == {"type": "object", "properties": {}}


def test_kwargs_allow_more_properties() -> None:
    def tag(name: str, **extra: Any) -> str:
        return name

    assert "additionalProperties" not in schema_of(tag)


def test_an_explicit_schema_wins() -> None:
    explicit = {"type": "object", "properties": {"city": {"type": "string", "description": "a city"}}}

    def get_weather(city: str, units: str = "c") -> str:
        return city

    assert schema_of(get_weather, parameters=explicit) == explicit


def test_pydantic_models_use_their_own_schema() -> None:
    pydantic = pytest.importorskip("pydantic")

    class Passenger(pydantic.BaseModel):
        name: str
        age: int = pydantic.Field(ge=0)

    def board(passenger: Passenger, seat: str = "any") -> str:
        return passenger.name

    board.__annotations__["passenger"] = Passenger  # a local class: no module-level name to resolve
    schema = schema_of(board)
    assert schema["properties"]["passenger"] == Passenger.model_json_schema()
    assert schema["required"] == ["passenger"]


def test_a_signature_without_a_schema_is_refused_at_registration() -> None:
    def weather_at(station: Station) -> str:
        return "?"

    with pytest.raises(ConfigError, match=r"tool 'weather_at': no JSON schema can be derived .*Station"):
        ToolRegistry().register(weather_at)
    # ...unless the schema is given.
    explicit = {"type": "object", "properties": {"station": {"type": "string"}}, "required": ["station"]}
    assert schema_of(weather_at, parameters=explicit) == explicit


def test_an_annotation_that_does_not_resolve_is_named() -> None:
    def forecast(city: NotImportedHere) -> str:  # type: ignore[name-defined]  # noqa: F821
        return city

    with pytest.raises(ConfigError, match=r"'NotImportedHere' of parameter 'city' does not resolve"):
        ToolRegistry().register(forecast)


def test_positional_only_parameters_are_refused() -> None:
    def add(a: int, b: int, /) -> int:
        return a + b

    with pytest.raises(ConfigError, match="positional-only"):
        ToolRegistry().register(add)
