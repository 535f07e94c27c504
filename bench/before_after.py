"""Run one bench script against two trees, alternating, and print each figure's range.

    .venv/bin/python bench/before_after.py BEFORE_SITE SCRIPT [--repeat 3] [-- SCRIPT ARGS...]

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
        raise SystemExit(f"{script} ({'before' if site else 'after'}) failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("before_site")
    ap.add_argument("script", type=Path)
    ap.add_argument("--repeat", type=int, default=3)
    argv = sys.argv[1:]
    cut = argv.index("--") if "--" in argv else len(argv)
    args = ap.parse_args(argv[:cut])
    extra = argv[cut + 1 :]  # after --: the script's own arguments
    results: dict[str, list[dict[str, float]]] = {"before": [], "after": []}
    for i in range(args.repeat):
        order = ("before", "after") if i % 2 == 0 else ("after", "before")
        for which in order:
            results[which].append(run(args.script, extra, args.before_site if which == "before" else None))
            print(f"{which} #{i + 1}: {json.dumps(results[which][-1])}", file=sys.stderr)
    keys = [k for k, v in results["after"][0].items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
    print(f"{args.script.name} {' '.join(extra)}: {args.repeat} runs of each tree, alternating")
    print("| figure | before | after |")
    print("|---|---|---|")

    def span(which: str, key: str) -> str:
        vals = [r[key] for r in results[which] if key in r]
        if not vals:
            return "–"
        lo, hi = min(vals), max(vals)
        fmt = (lambda v: f"{v:.3f}") if max(abs(lo), abs(hi)) < 100 else (lambda v: f"{v:,.0f}")
        return fmt(lo) if lo == hi else f"{fmt(lo)}–{fmt(hi)}"

    for key in keys:
        print(f"| {key} | {span('before', key)} | {span('after', key)} |")


if __name__ == "__main__":
    main()
