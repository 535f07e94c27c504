"""Run one bench script against two trees (or more), alternating, and print each figure's range.

    .venv/bin/python bench/before_after.py BEFORE_SITE SCRIPT [--repeat 3] [--site NAME=DIR ...]
                                           [-- SCRIPT ARGS...]

``--site NAME=DIR`` adds a tree between before and after (a column of its own: e.g. the tree at
the start of a session, to show what the session changed beside what the whole work changed).

``BEFORE_SITE`` is a directory holding ``turnlog/engine``, ``turnlog/adapters`` and
``turnlog/projections`` of the older tree (symlinks into a ``git worktree`` of it), put first on
``PYTHONPATH`` for the "before" runs; the "after" runs import the installed (editable) package.
The script runs with ``--json`` and prints one JSON object; every numeric field is reported as
``min–max`` over the repeats, before and after, so a ratio is always taken within one run of one
tree (runs of the two trees alternate, so both see the same machine load).

Making a BEFORE_SITE for the commit before this work:

    git worktree add /tmp/before a3142d5
    mkdir -p /tmp/before_site/turnlog
    for p in engine adapters projections; do ln -sfn /tmp/before/$p /tmp/before_site/turnlog/$p; done
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path


def run(script: Path, extra: list[str], site: str | None) -> dict[str, float]:
    env = dict(os.environ)
    if site:
        env["PYTHONPATH"] = site + os.pathsep + env.get("PYTHONPATH", "")
    out = subprocess.run(
        [sys.executable, str(script), "--json", *extra], env=env, capture_output=True, text=True, check=False
    )
    if out.returncode:
        raise SystemExit(f"{script} ({site or 'the installed tree'}) failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("before_site")
    ap.add_argument("script", type=Path)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument(
        "--site",
        action="append",
        default=[],
        metavar="NAME=DIR",
        help="another tree to run between before and after (a column of its own), e.g. start=/tmp/mid_site",
    )
    argv = sys.argv[1:]
    cut = argv.index("--") if "--" in argv else len(argv)
    args = ap.parse_args(argv[:cut])
    extra = argv[cut + 1 :]  # after --: the script's own arguments
    sites: dict[str, str | None] = {"before": args.before_site}
    for spec in args.site:
        name, _, path = spec.partition("=")
        sites[name] = path
    sites["after"] = None  # the installed tree
    results: dict[str, list[dict[str, float]]] = {name: [] for name in sites}
    for i in range(args.repeat):
        order = list(sites) if i % 2 == 0 else list(reversed(sites))
        for which in order:
            results[which].append(run(args.script, extra, sites[which]))
            print(f"{which} #{i + 1}: {json.dumps(results[which][-1])}", file=sys.stderr)
    keys = [k for k, v in results["after"][0].items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
    print(f"{args.script.name} {' '.join(extra)}: {args.repeat} runs of each tree, alternating")
    print("| figure | " + " | ".join(sites) + " |")
    print("|---" * (len(sites) + 1) + "|")

    def span(which: str, key: str) -> str:
        vals = [r[key] for r in results[which] if key in r]
        if not vals:
            return "–"
        lo, hi = min(vals), max(vals)
        fmt = (lambda v: f"{v:.3f}") if max(abs(lo), abs(hi)) < 100 else (lambda v: f"{v:,.0f}")
        return fmt(lo) if lo == hi else f"{fmt(lo)}–{fmt(hi)}"

    for key in keys:
        print(f"| {key} | " + " | ".join(span(name, key) for name in sites) + " |")


if __name__ == "__main__":
    main()
