"""Interleaved A/B of the DSP negotiation benchmark: a git revision against this checkout.

    PYTHONPATH=. .venv/bin/python bench/ab_negotiation.py BASE_REV [--pairs 4] [--seconds 10]
        [--levels 32] [--env PHEMS_X=Y]

Single runs of ``bench_negotiation.py`` vary by ±15% from one minute to the next on a shared
2-core machine (the floor too), so a change is judged by pairs run back to back: BASE_REV (a
temporary ``git worktree``, with this checkout's ``../shared`` beside it), then this checkout,
``--pairs`` times. Each run is a full ``bench_negotiation.py`` (this checkout's script on
both sides, each side's code; its own processes and databases) at ``--levels``; the script
prints every run's row for the last level and the mean of each side. Uncommitted changes
of this checkout are measured as they are.

Everything it starts is stopped by the runs themselves; the worktree is removed at the end.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ROW = re.compile(r"^\| (\d+) \|(.*)\|\s*$")
COLUMNS = ("rate", "p50", "p99", "failed", "floor", "floor_p50", "floor_p99", "ratio")
CPU = ("provider", "consumer", "postgres", "bench", "all")


def run(checkout: Path, args: argparse.Namespace) -> dict[str, float]:
    """One bench_negotiation.py run from ``checkout``: the last level's figures."""
    command = [
        sys.executable,
        # This checkout's bench script for both sides (the same measurement), run against
        # the side's code: connector, tests (and the connectors they start) come from
        # PYTHONPATH.
        str(REPO / "bench" / "bench_negotiation.py"),
        "--levels",
        args.levels,
        "--seconds",
        str(args.seconds),
        *(f"--env={e}" for e in args.env),
    ]
    env = os.environ | {"PYTHONPATH": str(checkout)}
    done = subprocess.run(
        command, cwd=checkout, env=env, capture_output=True, text=True, timeout=1800
    )
    if done.returncode != 0:
        raise SystemExit(f"bench failed in {checkout}:\n{done.stdout}\n{done.stderr}")
    level = args.levels.split(",")[-1]
    # The level's row in the rates table, then in the CPU table.
    mine = [
        m.group(2)
        for line in done.stdout.splitlines()
        if (m := ROW.match(line)) and m.group(1) == level
    ]
    if len(mine) != 2:
        raise SystemExit(f"unexpected bench output:\n{done.stdout}")
    rates = [float(x) for x in mine[0].split("|")]
    cpu = [float(x) for x in mine[1].split("|")[:5]]
    return dict(zip(COLUMNS, rates, strict=True)) | dict(zip(CPU, cpu, strict=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("base", help="the git revision to compare against (e.g. HEAD~3)")
    parser.add_argument("--pairs", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--levels", default="32", help="as bench_negotiation.py; last one shown")
    parser.add_argument("--env", action="append", default=[], help="PHEMS_X=Y for both sides")
    args = parser.parse_args()
    shared = (REPO.parent / "shared").resolve()
    with tempfile.TemporaryDirectory(prefix="ab-negotiation-") as tmp:
        base = Path(tmp) / "base"
        (Path(tmp) / "shared").symlink_to(shared)  # tests and publishing read ../shared
        subprocess.run(
            ["git", "-C", str(REPO), "worktree", "add", "--detach", "-q", str(base), args.base],
            check=True,
        )
        try:
            results: dict[str, list[dict[str, float]]] = {"base": [], "this": []}
            print(f"| run | side | {' | '.join(COLUMNS)} | CPU ms: {' / '.join(CPU)} |")
            print("|---" * (len(COLUMNS) + 3) + "|")
            for pair in range(1, args.pairs + 1):
                for side, checkout in (("base", base), ("this", REPO)):
                    figures = run(checkout, args)
                    results[side].append(figures)
                    cells = " | ".join(f"{figures[c]:g}" for c in COLUMNS)
                    cpu = " / ".join(f"{figures[c]:.1f}" for c in CPU)
                    print(f"| {pair} | {side} | {cells} | {cpu} |", flush=True)
        finally:
            subprocess.run(
                ["git", "-C", str(REPO), "worktree", "remove", "--force", str(base)], check=False
            )
    print()
    for side, runs in results.items():
        mean = {k: statistics.mean(r[k] for r in runs) for k in (*COLUMNS, *CPU)}
        print(
            f"{side} ({args.base if side == 'base' else 'this checkout'}), mean of {len(runs)}: "
            f"{mean['rate']:.1f}/s, p50 {mean['p50']:.0f} ms, floor/ours {mean['ratio']:.2f}, "
            f"CPU {mean['all']:.1f} ms a negotiation"
        )
    base_rate = statistics.mean(r["rate"] for r in results["base"])
    this_rate = statistics.mean(r["rate"] for r in results["this"])
    wins = sum(t["rate"] > b["rate"] for b, t in zip(results["base"], results["this"], strict=True))
    print(
        f"rate {this_rate / base_rate - 1:+.1%}; "
        f"this checkout faster in {wins} of {args.pairs} pairs"
    )


if __name__ == "__main__":
    main()
