"""How the ``turnlog`` command is put together: one module per command group, imports pointing one
way (``_main`` -> groups -> ``_common``, function-level imports included), only public turnlog
packages imported, and a missing optional extra costing only its own command."""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from turnlog.adapters.cli import main
from turnlog.adapters.cli._common import unknown_conversation
from turnlog.engine import ConversationNotFound

CLI = Path(__file__).resolve().parents[2] / "adapters" / "cli"
PACKAGE = "turnlog.adapters.cli"
MODULES = sorted(p.stem for p in CLI.glob("*.py"))


def imports(module: str) -> list[str]:
    """Every module ``module`` imports, anywhere in its body, as absolute dotted names."""
    tree = ast.parse((CLI / f"{module}.py").read_text())
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: inside the cli package
                # `from . import _x` runs the package's __init__ too: an edge to it, as to _x.
                base = PACKAGE + (f".{node.module}" if node.module else "")
                found += (
                    [base] if node.module else [f"{PACKAGE}.__init__", *(f"{PACKAGE}.{a.name}" for a in node.names)]
                )
            else:
                found.append(node.module or "")
    return found


def cli_imports(module: str) -> set[str]:
    return {name.removeprefix(f"{PACKAGE}.") for name in imports(module) if name.startswith(f"{PACKAGE}.")} & set(
        MODULES
    )


def test_imports_between_the_cli_modules_have_no_cycle() -> None:
    graph = {m: cli_imports(m) for m in MODULES}
    assert graph["_common"] == set()
    assert not any("_main" in deps for m, deps in graph.items() if m not in ("__init__", "__main__"))
    done: set[str] = set()

    def visit(module: str, path: tuple[str, ...]) -> None:
        assert module not in path, f"import cycle: {' -> '.join((*path, module))}"
        if module not in done:
            for dep in graph[module]:
                visit(dep, (*path, module))
            done.add(module)

    for module in MODULES:
        visit(module, ())


def test_only_public_turnlog_packages_are_imported() -> None:
    for module in MODULES:
        for name in imports(module):
            if name.startswith("turnlog.") and not name.startswith(f"{PACKAGE}."):
                assert not any(part.startswith("_") for part in name.split(".")), f"{module} imports {name}"


@pytest.mark.parametrize("module", MODULES)
def test_modules_are_small_and_say_what_they_do(module: str) -> None:
    source = (CLI / f"{module}.py").read_text()
    assert len(source.splitlines()) <= 450
    assert ast.get_docstring(ast.parse(source))


def test_help_lists_every_command_in_order(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    listed = [
        line.split()[0]
        for line in capsys.readouterr().out.splitlines()
        if line.startswith("    ") and line[4:5].isalpha()
    ]
    assert listed == [
        "demo",
        "replay",
        "rebuild",
        "list",
        "usage",
        "otel",
        "verify",
        "keygen",
        "checkpoint",
        "export",
        "db",
        "serve",
        "recover",
        "cancel",
        "approve",
        "deny",
        "erase",
        "fork",
        "chat",
        "play",
    ]


def test_an_unknown_conversation_has_a_stable_code() -> None:
    exc = unknown_conversation("c1", "x.db")
    assert isinstance(exc, ConversationNotFound) and exc.code == "not_found"
    assert str(exc) == "unknown conversation 'c1' in x.db"


def test_without_the_server_extra_only_serve_is_missing(tmp_path: Path) -> None:
    script = textwrap.dedent(
        """
        import sys
        sys.modules["starlette"] = sys.modules["uvicorn"] = None  # as if not installed
        from turnlog.adapters.cli import main
        print(main(["db", "upgrade", "--db", "x.db"]), main(["verify", "--db", "x.db"]), flush=True)
        sys.exit(main(["serve", "--db", "x.db"]))
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout.splitlines()[-1:] == ["0 0"], proc.stderr
    assert proc.stderr.startswith("turnlog: error: turnlog serve needs the server extra: pip install 'turnlog[server]'")
    assert proc.stderr.count("\n") == 1
