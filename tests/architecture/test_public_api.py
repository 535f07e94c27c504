"""The public face, pinned as httpx pins its own: each package's ``__all__`` is checked both ways.

Every public name a package holds is exported, and nothing is exported by accident; exported
classes and functions report the package they are exported from as their ``__module__``; every
module that is not part of the public face starts with ``_``.
"""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
FOLDERS = {"engine": "turnlog.engine", "projections": "turnlog.projections", "adapters": "turnlog.adapters"}

#: The public packages: the only import paths a user needs.
PACKAGES = [
    "turnlog.engine",
    "turnlog.engine.testing",
    "turnlog.projections",
    "turnlog.projections.testing",
    "turnlog.adapters",
    "turnlog.adapters.cli",
    "turnlog.adapters.crypto",
    "turnlog.adapters.llm",
    "turnlog.adapters.otel",
    "turnlog.adapters.server",
    "turnlog.adapters.signing",
    "turnlog.adapters.stores",
]
#: Public modules that are not packages, and why each is public.
PUBLIC_MODULES = {
    "turnlog.projections.pytest_plugin",  # named by the pytest11 entry point
    "turnlog.adapters.cli.__main__",  # python -m turnlog.adapters.cli
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    parts[0] = FOLDERS[parts[0]]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _submodules(package: str) -> set[str]:
    """Public subpackages and modules: attributes of the package once imported, never exports."""
    return {p.rpartition(".")[2] for p in (*PACKAGES, *PUBLIC_MODULES) if p.rpartition(".")[0] == package}


def public_attributes(module: ModuleType) -> set[str]:
    """Names a user finds on the package without an underscore (public submodules aside)."""
    return {n for n in vars(module) if not n.startswith("_")} - _submodules(module.__name__)


def misplaced_exports(package: str) -> list[str]:
    """Exported classes and functions that report another module than the package's own."""
    module = importlib.import_module(package)
    wrong = []
    for name in module.__all__:
        obj = getattr(module, name)
        if (inspect.isclass(obj) or inspect.isfunction(obj)) and obj.__module__ != package:
            wrong.append(f"{package}.{name} reports __module__ {obj.__module__!r}")
    return wrong


@pytest.mark.parametrize("package", PACKAGES)
def test_all_is_exactly_the_public_names(package: str) -> None:
    module = importlib.import_module(package)
    exported = list(module.__all__)
    assert len(exported) == len(set(exported)), f"{package}.__all__ repeats a name"
    missing = sorted(public_attributes(module) - set(exported))
    phantom = sorted(set(exported) - set(vars(module)))
    assert missing == [], f"{package} holds public names it does not export: {missing}"
    assert phantom == [], f"{package}.__all__ names what it does not hold: {phantom}"


@pytest.mark.parametrize("package", PACKAGES)
def test_exported_objects_report_their_package(package: str) -> None:
    assert misplaced_exports(package) == []


def test_each_object_has_one_public_home() -> None:
    homes: dict[int, str] = {}
    clashes = []
    for package in PACKAGES:
        module = importlib.import_module(package)
        for name in module.__all__:
            obj = getattr(module, name)
            if inspect.isclass(obj) or inspect.isfunction(obj):
                if id(obj) in homes:
                    clashes.append(f"{name}: {homes[id(obj)]} and {package}")
                homes[id(obj)] = package
    assert clashes == []


def test_modules_outside_the_public_face_are_private() -> None:
    public = set(PACKAGES) | PUBLIC_MODULES
    leaks = []
    for folder in FOLDERS:
        for path in (ROOT / folder).rglob("*.py"):
            if "migrations" in path.relative_to(ROOT).parts:
                continue  # Alembic's scripts: data files loaded by path, never imported by name
            name = _module_name(path)
            if name not in public and not path.stem.startswith("_"):
                leaks.append(name)
    assert sorted(leaks) == []


def test_the_core_of_each_package_is_exported() -> None:
    # What the README and the docs teach must stay where they say it is.
    assert {"TurnEngine", "TurnRequest", "EventLog", "replay", "verify", "recover", "TurnlogError"} <= set(
        importlib.import_module("turnlog.engine").__all__
    )
    assert {"SseProjector", "render", "fold_rows", "rebuild", "stream_sse", "MessageStore"} <= set(
        importlib.import_module("turnlog.projections").__all__
    )
    assert {"open_store", "SqliteEventLog", "PostgresEventLog", "SqlMessageStore", "upgrade"} <= set(
        importlib.import_module("turnlog.adapters.stores").__all__
    )
    assert {"OpenAILLM", "ProviderConfig", "PRESETS", "RecordedLLM", "ScriptedLLM", "EchoLLM"} <= set(
        importlib.import_module("turnlog.adapters.llm").__all__
    )
