"""The layering, read from the imports of every module (``ast``; imports inside functions count).

- turnlog.engine is the domain: msgspec, transitions and the standard library, nothing of
  projections or adapters, no I/O driver. Its ``testing`` subpackage may use pytest as well.
- turnlog.projections are folds: the engine's public names, msgspec, the standard library (the
  pytest plugin and its syrupy extension may use pytest and syrupy), no SQL, nothing of adapters.
- turnlog.adapters hold every piece of I/O, one subpackage per kind, importing only declared
  dependencies, with arrows that point one way (cli -> server -> stores -> projections -> engine).
- Nobody imports another package's private ``_module``; no import cycle between modules; no module
  over 450 lines; no class over 250 lines (a class that long is doing several jobs).
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FOLDERS = {"engine": "turnlog.engine", "projections": "turnlog.projections", "adapters": "turnlog.adapters"}
STDLIB = set(sys.stdlib_module_names)
MAX_MODULE_LINES = 450
MAX_CLASS_LINES = 250

#: package -> the turnlog packages it may import (the arrows of the architecture).
ALLOWED_TURNLOG = {
    "turnlog.engine": set(),
    "turnlog.engine.testing": {"turnlog.engine"},
    "turnlog.projections": {"turnlog.engine"},
    "turnlog.projections.testing": {"turnlog.engine", "turnlog.projections"},
    "turnlog.adapters": set(),
    "turnlog.adapters.llm": {"turnlog.engine"},
    "turnlog.adapters.crypto": {"turnlog.engine", "turnlog.projections"},
    "turnlog.adapters.stores": {"turnlog.engine", "turnlog.projections", "turnlog.adapters.crypto"},
    "turnlog.adapters.server": {
        "turnlog.engine",
        "turnlog.projections",
        "turnlog.adapters.stores",
        "turnlog.adapters.crypto",
    },
    "turnlog.adapters.signing": {"turnlog.engine"},
    "turnlog.adapters.otel": {"turnlog.engine", "turnlog.projections"},
    "turnlog.adapters.cli": {
        "turnlog.engine",
        "turnlog.projections",
        "turnlog.adapters.stores",
        "turnlog.adapters.llm",
        "turnlog.adapters.server",
        "turnlog.adapters.signing",
        "turnlog.adapters.crypto",
        "turnlog.adapters.otel",
    },
}
#: package -> third-party top-level modules it may import (beyond the standard library).
ALLOWED_THIRD_PARTY = {
    "turnlog.engine": {"msgspec", "transitions"},
    "turnlog.engine.testing": {"msgspec", "pytest", "pytest_asyncio"},
    "turnlog.projections": {"msgspec"},
    "turnlog.projections.testing": {"msgspec", "pytest", "pytest_asyncio"},
    "turnlog.adapters": set(),
    "turnlog.adapters.llm": {"msgspec", "httpx", "httpx_sse"},
    "turnlog.adapters.crypto": {"msgspec", "cryptography"},
    "turnlog.adapters.stores": {"msgspec", "sqlalchemy", "aiosqlite", "asyncpg", "alembic", "cryptography"},
    "turnlog.adapters.server": {"msgspec", "starlette", "uvicorn"},
    "turnlog.adapters.signing": {"cryptography"},
    # The otel extra: the API for emitting, the SDK for ``json_lines_provider``.
    "turnlog.adapters.otel": {"msgspec", "opentelemetry"},
    "turnlog.adapters.cli": {"msgspec", "uvicorn"},
}
#: Single modules with a wider allowance, and why.
MODULE_EXTRAS = {
    # The pytest11 entry point and the syrupy extension it serves.
    "turnlog.projections.pytest_plugin": {"pytest", "syrupy"},
    "turnlog.projections._snapshot": {"syrupy"},
}


@dataclass(frozen=True)
class Module:
    name: str
    package: str
    path: Path
    tree: ast.Module

    @property
    def is_package(self) -> bool:
        return self.path.name == "__init__.py"


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    parts[0] = FOLDERS[parts[0]]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _package_of(name: str, path: Path) -> str:
    """The deepest known package a module belongs to (Alembic's migration scripts are data files
    of turnlog.adapters.stores)."""
    if "migrations" in path.relative_to(ROOT).parts:
        return "turnlog.adapters.stores"
    candidates = [p for p in ALLOWED_TURNLOG if name == p or name.startswith(p + ".")]
    return max(candidates, key=len)


def modules() -> list[Module]:
    out = []
    for folder in FOLDERS:
        for path in sorted((ROOT / folder).rglob("*.py")):
            name = _module_name(path)
            out.append(Module(name, _package_of(name, path), path, ast.parse(path.read_text(), str(path))))
    return out


def imports(module: Module) -> Iterator[tuple[int, str]]:
    """(line, absolute module name) of every import, relative ones resolved. ``from X import y``
    yields ``X.y`` when that is a module of ours (a submodule import), else ``X``."""
    for node in ast.walk(module.tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.name.split(".")
                if not module.is_package:
                    base = base[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            yield node.lineno, target
            for alias in node.names:
                yield node.lineno, f"{target}.{alias.name}"


MODULES = modules()
NAMES = {m.name for m in MODULES}


def _ours(target: str) -> str | None:
    """The module of ours that an import target names, or None."""
    while target:
        if target in NAMES:
            return target
        target = target.rpartition(".")[0]
    return None


def _package_of_name(name: str) -> str:
    return next(m.package for m in MODULES if m.name == name)


def test_every_module_is_seen() -> None:
    # The test must read the real tree: the runner, the server's app and a migration among them.
    assert {"turnlog.engine._runner", "turnlog.adapters.server._app", "turnlog.projections._sse"} <= NAMES
    assert len(MODULES) > 40


def violations() -> list[str]:
    found: list[str] = []
    for m in MODULES:
        where = m.path.relative_to(ROOT)
        extras = MODULE_EXTRAS.get(m.name, set())
        for line, target in imports(m):
            top = target.split(".")[0]
            if top == "turnlog":
                ours = _ours(target)
                if ours is None:
                    if target not in ("turnlog", *ALLOWED_TURNLOG):
                        found.append(f"{where}:{line}: imports {target}, which does not exist")
                    continue
                other = _package_of_name(ours)
                if other != m.package and other not in ALLOWED_TURNLOG[m.package]:
                    found.append(f"{where}:{line}: {m.package} must not import {ours} ({other})")
                private = [p for p in ours.split(".") if p.startswith("_") and p != "__main__"]
                if other != m.package and private:
                    found.append(f"{where}:{line}: imports the private module {ours} of another package")
            elif top and top not in STDLIB and top not in ALLOWED_THIRD_PARTY[m.package] | extras:
                # `from X import y` also yields "X.y"; only the top-level name matters here.
                found.append(f"{where}:{line}: {m.package} must not import {top}")
    return sorted(set(found))


def test_imports_follow_the_layers() -> None:
    assert violations() == []


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {m.name: set() for m in MODULES}
    for m in MODULES:
        for _, target in imports(m):
            ours = _ours(target) if target.startswith("turnlog") else None
            if ours is not None and ours != m.name:
                # A package's own __init__ importing its modules is how it exports; a module
                # importing its package back (or a parent) would be a cycle and is kept.
                graph[m.name].add(ours)
    return graph


def cycles() -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    graph = _graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = 0

    def visit(v: str) -> None:
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles() -> None:
    assert cycles() == []


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.name)
def test_module_and_class_sizes(module: Module) -> None:
    lines = len(module.path.read_text().splitlines())
    assert lines <= MAX_MODULE_LINES, f"{module.name} has {lines} lines (at most {MAX_MODULE_LINES})"
    for node in ast.walk(module.tree):
        if isinstance(node, ast.ClassDef):
            size = (node.end_lineno or node.lineno) - node.lineno + 1
            assert size <= MAX_CLASS_LINES, f"{module.name}.{node.name} has {size} lines: split its jobs"
