"""Benchmark: wall time of ``phems-connector sample generate`` (the CLI, in a fresh process).

Runs the command the way a user does, ``phems-connector sample generate --patients N --seed S
--profile P --out DIR`` (through ``python -m connector``, the same entry point as the installed
``phems-connector`` script, so it works from a checkout), into a temporary directory, and
reports per run: wall time including interpreter start-up, the child's CPU time and peak RSS,
the resources written (counted from the files) and their size on disk.

    python bench/bench_sample.py --patients 100000            # the issue's "a few minutes"
    python bench/bench_sample.py --patients 100000 --profile picu --repeat 3
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from anywhere

from connector.sampledata import PROFILES

REPO = Path(__file__).resolve().parent.parent


def run_once(patients: int, seed: int, profile: str, out: Path) -> tuple[float, float, int]:
    """(wall seconds, child CPU seconds, child peak RSS in KiB) of one CLI run."""
    command = [sys.executable, "-m", "connector", "sample", "generate"]
    command += ["--patients", str(patients), "--seed", str(seed)]
    command += ["--profile", profile, "--out", str(out)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr}")
    print(f"  cli: {done.stdout.strip()}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, after.ru_maxrss


def written(out: Path) -> tuple[int, int]:
    """(resources, bytes) in the NDJSON files under ``out``."""
    count = size = 0
    for path in out.glob("*.ndjson"):
        size += path.stat().st_size
        with path.open("rb") as fh:
            count += sum(1 for line in fh if line.strip())
    return count, size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--profile", default="general", choices=sorted(PROFILES))
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    walls: list[float] = []
    for run in range(args.repeat):
        with tempfile.TemporaryDirectory(prefix="bench-sample-") as tmp:
            out = Path(tmp) / "out"
            wall, cpu, rss = run_once(args.patients, args.seed, args.profile, out)
            resources, size = written(out)
            walls.append(wall)
            print(
                f"run {run + 1}: {args.patients:,} patients ({args.profile}, seed {args.seed}) "
                f"-> {resources:,} resources, {size / 2**20:,.0f} MiB in {wall:.1f} s wall "
                f"({cpu:.1f} s CPU, peak RSS {rss / 1024:,.0f} MiB, "
                f"{resources / wall:,.0f} resources/s)"
            )
    if args.repeat > 1:
        print(f"wall best {min(walls):.1f} s, median {statistics.median(walls):.1f} s")


if __name__ == "__main__":
    main()
