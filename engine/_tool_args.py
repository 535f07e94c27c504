"""A tool's arguments, declared once: the JSON schema offered to the model comes from the tool's
signature, and the same declaration checks every call's arguments before the tool runs.

Each parameter becomes a field of a msgspec Struct (``defstruct``: its annotation, its default);
the schema offered is msgspec's schema of that Struct with its ``$defs`` inlined (some providers
do not follow ``$ref``; a recursive type keeps them). A call's arguments are decoded against the
same Struct, so a wrong type, a missing or an unknown argument is refused with msgspec's message
and path (``Expected `str`, got `int` - at `$.units```) and never reaches the tool as Python's
``TypeError: f() got an unexpected keyword argument``. The tool receives only the arguments the
model gave (converted: a Struct parameter arrives as the Struct); Python fills in the defaults.

- A parameter without an annotation takes its default's type when that is a JSON scalar
  (``units="c"`` is a string); otherwise it accepts any JSON value.
- The caller's context (a parameter annotated ``ToolContext``, or named ``context``) is injected
  by the registry and is never part of the schema; a model that sends it is refused.
- A parameter typed with a pydantic model (or that model ``| None``) is offered with the model's
  ``model_json_schema()`` and checked with ``model_validate``. pydantic is not a dependency: it is
  looked up in ``sys.modules`` (a program whose tools use it has imported it), never imported here.
- An explicit ``parameters=`` schema wins: it is what the model is offered, and the arguments are
  checked against it (``_json_check``) and then against the signature where that can be derived.
- A signature that cannot be derived (an annotation that does not resolve, a type msgspec cannot
  describe) without an explicit schema is a ``ConfigError`` at registration, not a tool offered
  with no parameters.
"""

from __future__ import annotations

import functools
import inspect
import json
import sys
import types
import typing
from collections.abc import Callable
from typing import Any

import msgspec

from ._errors import ConfigError
from ._json_check import check_json

_REF = "#/$defs/"
_UNRESOLVED = object()


class InvalidArguments(Exception):
    """One call's arguments do not fit its tool; the message says which field and why."""


class ToolArguments:
    """How one tool takes its arguments: ``schema`` (offered to the model), ``context`` (the
    parameter the caller's context is injected as, if any) and ``parse`` (the check before a
    call)."""

    def __init__(
        self,
        name: str,
        schema: dict[str, Any],
        *,
        explicit: dict[str, Any] | None = None,
        struct: type[msgspec.Struct] | None = None,
        context: str | None = None,
        pydantic: dict[str, tuple[type, bool]] | None = None,
        extra_ok: bool = False,
        signature: inspect.Signature | None = None,
    ) -> None:
        self.name = name
        self.schema = schema
        self.explicit = explicit
        self.struct = struct
        self.context = context
        self.pydantic = pydantic or {}
        self.extra_ok = extra_ok
        self.signature = signature
        self._decoder = msgspec.json.Decoder(struct) if struct is not None else None
        self._fields = frozenset(struct.__struct_fields__) if struct is not None else frozenset()

    @classmethod
    def of(
        cls, fn: Callable[..., Any], name: str, parameters: dict[str, Any] | None, context_type: type
    ) -> ToolArguments:
        """Derive from ``fn``'s signature; ``parameters`` (an explicit schema) wins for the schema."""
        try:
            signature = inspect.signature(fn)
        except (TypeError, ValueError) as exc:
            if parameters:
                return cls(name, parameters, explicit=parameters)
            raise ConfigError(f"tool {name!r}: its signature cannot be read ({exc}); give parameters=") from None
        namespace = _namespace(fn)
        fields: list[tuple[Any, ...]] = []
        context: str | None = None
        pydantic: dict[str, tuple[type, bool]] = {}
        extra_ok = False
        for p in signature.parameters.values():
            if p.kind is p.VAR_POSITIONAL:
                continue  # nothing fills it: arguments are passed by name
            if p.kind is p.VAR_KEYWORD:
                extra_ok = True
                continue
            tp = _resolve(p.annotation, namespace)
            if context is None and (p.name == "context" or _is_context(tp, context_type)):
                context = p.name
                continue
            if p.kind is p.POSITIONAL_ONLY:
                raise ConfigError(
                    f"tool {name!r}: parameter {p.name!r} is positional-only; tools take arguments by name"
                )
            if tp is _UNRESOLVED:
                if not parameters:
                    raise ConfigError(
                        f"tool {name!r}: the annotation {p.annotation!r} of parameter {p.name!r} does not resolve in "
                        "the function's module; import the type there (not only under TYPE_CHECKING) or give parameters="
                    )
                tp = Any
            elif tp is p.empty:
                tp = type(p.default) if type(p.default) in (str, bool, int, float) else Any
            model = _pydantic_model(tp)
            if model is not None:
                pydantic[p.name] = model  # (the model, whether None is allowed)
                tp = Any
            fields.append((p.name, tp) if p.default is p.empty else (p.name, tp, _default(p.default)))
        try:
            struct = msgspec.defstruct(
                f"{name}_arguments", fields, kw_only=True, forbid_unknown_fields=not extra_ok, module=__name__
            )
            schema = _schema(struct, pydantic)
        except (TypeError, ValueError) as exc:
            if not parameters:
                why = str(exc).strip().splitlines()[-1]  # msgspec's last line names the type
                raise ConfigError(
                    f"tool {name!r}: no JSON schema can be derived from its signature ({why}); "
                    "use types msgspec can describe or give parameters="
                ) from None
            struct, schema = None, parameters
        if parameters:
            schema = parameters
        return cls(
            name,
            schema,
            explicit=parameters or None,
            struct=struct,
            context=context,
            pydantic=pydantic,
            extra_ok=extra_ok,
            signature=signature,
        )

    def parse(self, raw: str) -> dict[str, Any]:
        """The keyword arguments to call the tool with (without the context), from the model's
        JSON. Raises ``InvalidArguments`` naming the field when they do not fit."""
        text = raw if raw.strip() else "{}"
        try:
            args = json.loads(text)
        except ValueError as exc:
            raise InvalidArguments(
                f"arguments for tool {self.name!r} are not valid JSON ({exc}): {raw[:200]!r}"
            ) from None
        if not isinstance(args, dict):
            raise InvalidArguments(f"arguments for tool {self.name!r} must be a JSON object, got {type(args).__name__}")
        if self.explicit is not None:
            self._refuse(check_json(args, self.explicit))
        if self.context is not None and self.context in args:
            self._refuse(f"Object contains unknown field `{self.context}`")
        kwargs = args
        if self._decoder is not None:
            try:
                decoded = self._decoder.decode(text)
            except msgspec.DecodeError as exc:
                self._refuse(str(exc))
            # Only what the model gave: Python fills in the defaults, exactly as declared.
            kwargs = {k: (getattr(decoded, k) if k in self._fields else v) for k, v in args.items()}
            for field, (model, nullable) in self.pydantic.items():
                if field in kwargs and not (nullable and kwargs[field] is None):
                    kwargs[field] = self._pydantic(field, model, kwargs[field])
        if self.signature is not None:
            try:
                self.signature.bind(**kwargs, **({self.context: None} if self.context else {}))
            except TypeError as exc:
                self._refuse(str(exc))
        return kwargs

    def _refuse(self, problem: str | None) -> None:
        if problem:
            raise InvalidArguments(f"invalid arguments for tool {self.name}: {problem}")

    def _pydantic(self, field: str, model: type, value: Any) -> Any:
        error = getattr(sys.modules.get("pydantic"), "ValidationError", None)
        try:
            return model.model_validate(value)  # type: ignore[attr-defined]
        except Exception as exc:
            if error is None or not isinstance(exc, error):
                raise
            first = exc.errors()[0]  # type: ignore[attr-defined]
            where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in first.get("loc", ()))
            count = exc.error_count()  # type: ignore[attr-defined]
            more = f" (and {count - 1} more)" if count > 1 else ""
            raise InvalidArguments(
                f"invalid arguments for tool {self.name}: {first.get('msg')}{more} - at `$.{field}{where}`"
            ) from None


def _namespace(fn: Callable[..., Any]) -> dict[str, Any]:
    """Where ``fn``'s string annotations resolve: its module's globals and its closure."""
    target: Any = inspect.unwrap(fn)
    if isinstance(target, functools.partial):
        target = target.func
    target = getattr(target, "__func__", target)  # a bound method
    if not inspect.isfunction(target) and callable(target):
        target = type(target).__call__  # a callable object
    namespace = dict(getattr(target, "__globals__", {}))
    try:
        namespace.update(inspect.getclosurevars(target).nonlocals)
    except (TypeError, ValueError):
        pass
    return namespace


def _resolve(annotation: Any, namespace: dict[str, Any]) -> Any:
    if not isinstance(annotation, str):
        return annotation
    try:
        return eval(annotation, namespace)
    except Exception:
        return _UNRESOLVED


def _is_context(tp: Any, context_type: type) -> bool:
    return tp is context_type or (_is_union(tp) and context_type in typing.get_args(tp))


def _is_union(tp: Any) -> bool:
    return typing.get_origin(tp) in (typing.Union, types.UnionType)


def _pydantic_model(tp: Any) -> tuple[type, bool] | None:
    """``(model, nullable)`` when ``tp`` is a pydantic model or ``model | None``."""
    base = getattr(sys.modules.get("pydantic"), "BaseModel", None)
    if base is None:
        return None
    if isinstance(tp, type) and issubclass(tp, base):
        return tp, False
    if _is_union(tp):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(tp)) == 2 and isinstance(args[0], type) and issubclass(args[0], base):
            return args[0], True
    return None


def _default(value: Any) -> Any:
    """The field default msgspec accepts: the value, or a factory for a mutable or non-JSON one
    (its schema then shows no default)."""
    if isinstance(value, (list, dict, set, bytearray)) and value:
        return msgspec.field(default_factory=lambda: value)
    try:
        msgspec.json.encode(value)
    except (TypeError, msgspec.EncodeError):
        return msgspec.field(default_factory=lambda: value)
    return value


def _schema(struct: type[msgspec.Struct], pydantic: dict[str, tuple[type, bool]]) -> dict[str, Any]:
    (_,), defs = msgspec.json.schema_components([struct], ref_template=_REF + "{name}")
    top = defs.pop(struct.__name__)
    top.pop("title", None)
    properties = top["properties"]
    for field, (model, nullable) in pydantic.items():
        own = model.model_json_schema(ref_template=_REF + "{model}")  # type: ignore[attr-defined]
        defs.update(own.pop("$defs", {}))
        described = {"anyOf": [own, {"type": "null"}]} if nullable else own
        if "default" in properties[field]:
            described["default"] = properties[field]["default"]
        properties[field] = described
    if not properties:
        # A tool without arguments: the schema (and so the bytes) older logs recorded for one.
        return {"type": "object", "properties": {}}
    if not top.get("required"):
        top.pop("required", None)
    kept: set[str] = set()
    schema = _inline(top, defs, (), kept)
    if kept:
        schema["$defs"] = defs
    return schema


def _inline(node: Any, defs: dict[str, Any], seen: tuple[str, ...], kept: set[str]) -> Any:
    """``node`` with every ``$ref`` into ``defs`` replaced by its definition; a recursive
    reference stays a ``$ref`` (and ``kept`` names it)."""
    if isinstance(node, list):
        return [_inline(item, defs, seen, kept) for item in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith(_REF) and ref[len(_REF) :] in defs:
        name = ref[len(_REF) :]
        if name in seen:
            kept.add(name)
            return node
        rest = {k: v for k, v in node.items() if k != "$ref"}
        return {**_inline(defs[name], defs, (*seen, name), kept), **_inline(rest, defs, seen, kept)}
    return {k: _inline(v, defs, seen, kept) for k, v in node.items()}
