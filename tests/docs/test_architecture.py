"""docs/architecture.md is kept true: its state diagram is the machine's, and its file map names
every module of the three packages and nothing that does not exist."""

from __future__ import annotations

import re
from pathlib import Path

from turnlog.engine import mermaid
from turnlog.engine._machine import MACHINE

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "architecture.md").read_text()


def diagram_edges(text: str) -> set[tuple[str, str, str]]:
    edges = set()
    for line in text.splitlines():
        m = re.fullmatch(r"\s*(\S+) --> (\S+?)(?:: (\w+))?", line)
        if m:
            edges.add((m.group(1), m.group(2), m.group(3) or ""))
    return edges


def machine_edges() -> set[tuple[str, str, str]]:
    """Read off the transitions Machine itself (not the TRANSITIONS list that built it)."""
    edges = {("[*]", "init", "turn_started"), ("finalized", "[*]", ""), ("failed", "[*]", "")}
    for name, event in MACHINE.events.items():
        for source, transitions in event.transitions.items():
            for tr in transitions:
                edges.add((source, tr.dest or source, name))
    return edges


def test_the_state_diagram_is_the_machines() -> None:
    (block,) = re.findall(r"```mermaid\n(.*?)```", DOC, re.S)
    assert diagram_edges(block) == machine_edges()
    assert block.strip() == mermaid().strip()


def mapped_files() -> set[str]:
    """Paths named by the file map (the code block that starts with ``engine/``)."""
    block = next(b for b in re.findall(r"```\n(.*?)```", DOC, re.S) if b.startswith("engine/"))
    stack: list[str] = []
    files: set[str] = set()
    for line in block.splitlines():
        if not line.strip():
            continue
        indent = (len(line) - len(line.lstrip(" "))) // 2
        names = re.split(r"\s{2,}", line.strip())[0]
        stack = stack[:indent]
        for name in (n.strip() for n in names.split(",")):
            if name.endswith("/"):
                stack.append(name.rstrip("/"))
            else:
                files.add("/".join([*stack, name]))
    return files


def real_modules() -> set[str]:
    out = set()
    for folder in ("engine", "projections", "adapters"):
        for path in (ROOT / folder).rglob("*.py"):
            rel = path.relative_to(ROOT)
            if "migrations" in rel.parts or path.name in ("__init__.py", "__main__.py"):
                continue
            out.add(rel.as_posix())
    return out


def test_every_module_the_map_names_exists() -> None:
    named = mapped_files()
    assert len(named) > 40
    missing = sorted(f for f in named if not (ROOT / f).exists())
    assert missing == []


def test_every_module_is_on_the_map() -> None:
    assert sorted(real_modules() - mapped_files()) == []


def test_paths_named_in_the_text_exist() -> None:
    cited = set(re.findall(r"`((?:engine|projections|adapters)/[\w/]+\.py)", DOC))
    assert sorted(c for c in cited if not (ROOT / c).exists()) == []
