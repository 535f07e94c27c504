"""The arguments of a call checked against an explicit JSON schema (a tool registered with
``parameters=``): enough of JSON Schema to catch what a model gets wrong, with no validator
dependency.

Checked: ``type`` (one or a list), ``required``, ``properties``, ``additionalProperties`` (false
or a schema), ``items``, ``enum``, ``const``, ``anyOf`` / ``oneOf`` (at least one option holds),
``allOf``. Anything else (``$ref``, formats, numeric and length bounds) is not checked here; the
tool's signature, when it can be derived, checks the arguments again (``_tool_args``). The message
names the place as msgspec does: ``Expected `string`, got `integer` - at `$.units```.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

_TYPES: dict[str, Callable[[Any], bool]] = {
    "string": lambda v: isinstance(v, str),
    # JSON Schema: 1.0 is an integer.
    "integer": lambda v: (isinstance(v, int) and not isinstance(v, bool)) or (isinstance(v, float) and v.is_integer()),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
}


def check_json(value: Any, schema: Any, path: str = "$") -> str | None:
    """The first way ``value`` (decoded JSON) breaks ``schema``, or None when it holds."""
    if schema is False:
        return f"no value is allowed{_at(path)}"
    if not isinstance(schema, dict):
        return None
    kind = schema.get("type")
    if kind is not None:
        kinds = [k for k in ([kind] if isinstance(kind, str) else kind) if k in _TYPES]
        if kinds and not any(_TYPES[k](value) for k in kinds):
            return f"Expected `{' | '.join(kinds)}`, got `{json_type(value)}`{_at(path)}"
    if isinstance(schema.get("enum"), list) and not any(_same(value, e) for e in schema["enum"]):
        return f"Invalid enum value {value!r}{_at(path)}"
    if "const" in schema and not _same(value, schema["const"]):
        return f"Expected {schema['const']!r}, got {value!r}{_at(path)}"
    for key in ("anyOf", "oneOf"):
        options = schema.get(key)
        if isinstance(options, list) and options:
            problems = [check_json(value, option, path) for option in options]
            if all(problems):
                return problems[0] if len(options) == 1 else f"{problems[0]} (and no other option of {key} fits)"
    for option in schema.get("allOf") or ():
        problem = check_json(value, option, path)
        if problem:
            return problem
    if isinstance(value, dict):
        return _check_object(value, schema, path)
    if isinstance(value, list) and isinstance(schema.get("items"), (dict, bool)):
        for i, item in enumerate(value):
            problem = check_json(item, schema["items"], f"{path}[{i}]")
            if problem:
                return problem
    return None


def _check_object(value: dict[str, Any], schema: dict[str, Any], path: str) -> str | None:
    for name in schema.get("required") or ():
        if name not in value:
            return f"Object missing required field `{name}`{_at(path)}"
    properties = schema.get("properties")
    properties = properties if isinstance(properties, dict) else {}
    extra = schema.get("additionalProperties", True)
    for name, item in value.items():
        if name in properties:
            problem = check_json(item, properties[name], f"{path}.{name}")
        elif extra is False:
            problem = f"Object contains unknown field `{name}`{_at(path)}"
        else:
            problem = check_json(item, extra, f"{path}.{name}")
        if problem:
            return problem
    return None


def json_type(value: Any) -> str:
    """The JSON name of a decoded value's type."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _same(a: Any, b: Any) -> bool:
    # JSON equality: true is not 1, 1 is 1.0.
    return a == b and (isinstance(a, bool) == isinstance(b, bool))


def _at(path: str) -> str:
    return "" if path == "$" else f" - at `{path}`"
