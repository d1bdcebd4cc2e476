"""Benchmark: building the view cache against the SQL-on-FHIR runner alone over the same files.

Ours is the build as the ``view-cache`` job runs it: the file source names its NDJSON files
(``NdjsonFileSource.ndjson_files``, as ``ViewCache._snapshot`` does for a local source), and
``build_flat_views`` runs in a worker process started with ``spawn`` (the job pool's way) with
the SQL-on-FHIR adapter's runner (``SqlOnFhirRunner``, as the composition root wires it): the
views' SQL form in DuckDB over the files (the runner for what does not compile), the dataset's
scope and opt-outs applied, one Parquet file per table. The scope is the whole data (every
resource type, no period, no group), with no opt-outs.

The baseline reads the same files once and runs the same views with the runner alone, in the
bench process: each file streamed line by line, ``orjson.loads``, every view of its resource
type turned into row tuples, and nothing kept (the least any build by the runner must do).

The two alternate, the order flipping every round; best and median of ``--rounds``, wall time
and CPU time (ours: the worker's; DuckDB uses every core). Target (issue 17): ours / runner
<= 1.2.

    python bench/bench_view_cache.py --patients 100000 --rounds 3
    python bench/bench_view_cache.py --data DIR            # existing Bulk NDJSON
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import shutil
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from anywhere

from adapters.ndjson_source import NdjsonFileSource
from adapters.sof.port import SqlOnFhirRunner
from connector.fulfilment.flatten import _all_views, _resources, build_flat_views
from connector.fulfilment.scope import DatasetScope
from connector.sampledata import PROFILES, generate


def files_of(data: Path, scope: DatasetScope) -> dict[str, list[str]]:
    """What the view cache hands the job for a local NDJSON source."""
    source = NdjsonFileSource(data)
    types = {"Patient", "Consent", "Group", *scope.resource_types}
    return {t: [str(p) for p in source.ndjson_files(t)] for t in sorted(types)}


def _build_in_worker(files: dict[str, list[str]], out: str) -> tuple[dict[str, Any], float]:
    """The job's call (``context.run_cpu(build_flat_views, ...)``), timed by its CPU."""
    cpu = time.process_time()
    counts = build_flat_views(
        lambda stage, pct: None,
        SqlOnFhirRunner(),
        files,
        {},
        [],
        out,
        datetime.now(UTC).isoformat(),
    )
    return counts, time.process_time() - cpu


def runner_alone(files: dict[str, list[str]], scope: DatasetScope) -> int:
    runner = SqlOnFhirRunner()
    by_type: dict[str, list[Any]] = {}
    for view in _all_views(scope).values():
        by_type.setdefault(str(view["resource"]), []).append(runner.compile(view)[1])
    rows = 0
    for rtype, processors in by_type.items():
        for path in files.get(rtype, []):
            for resource_, _ in _resources(Path(path), rtype):
                for process in processors:
                    rows += len(process(resource_))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, help="directory of Bulk NDJSON (Type.*.ndjson)")
    parser.add_argument("--patients", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--profile", default="general", choices=sorted(PROFILES))
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    scope = DatasetScope.parse({})
    with tempfile.TemporaryDirectory(prefix="bench-view-cache-") as tmp:
        data = args.data
        if data is None:
            data = Path(tmp) / "fhir"
            started = time.perf_counter()
            counts = generate(data, patients=args.patients, seed=args.seed, profile=args.profile)
            print(
                f"generated {sum(counts.values()):,} resources for {args.patients:,} patients "
                f"(profile {args.profile}, seed {args.seed}) in "
                f"{time.perf_counter() - started:.1f} s",
                flush=True,
            )
        files = files_of(data, scope)
        size = sum(Path(p).stat().st_size for ps in files.values() for p in ps)
        print(f"{sum(len(ps) for ps in files.values())} files, {size / 2**20:,.0f} MiB read")
        out = Path(tmp) / "views"
        timings: dict[str, list[tuple[float, float]]] = {"cache": [], "runner": []}
        pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))
        try:
            pool.submit(time.time).result()  # the worker is started (a job pool keeps it)
            for r in range(args.rounds):
                for side in ("cache", "runner") if r % 2 == 0 else ("runner", "cache"):
                    shutil.rmtree(out, ignore_errors=True)
                    wall = time.perf_counter()
                    if side == "cache":
                        built, cpu = pool.submit(_build_in_worker, files, str(out)).result()
                    else:
                        cpu = time.process_time()
                        rows = runner_alone(files, scope)
                        cpu = time.process_time() - cpu
                    timings[side].append((time.perf_counter() - wall, cpu))
                    print(f"  round {r + 1} {side:6} {timings[side][-1][0]:7.2f} s", flush=True)
        finally:
            pool.shutdown()
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        print(f"runner rows {rows:,}; tables {built}; worker peak RSS {peak:,.0f} MiB")
        print(f"{'':8} {'best s':>8} {'median s':>9} {'CPU s (best)':>13}")
        for side, label in (("runner", "runner"), ("cache", "cache")):
            walls = [w for w, _ in timings[side]]
            cpu = min(timings[side])[1]
            print(f"{label:8} {min(walls):8.2f} {statistics.median(walls):9.2f} {cpu:13.2f}")
        best = min(timings["cache"])[0] / min(timings["runner"])[0]
        median = statistics.median(w for w, _ in timings["cache"]) / statistics.median(
            w for w, _ in timings["runner"]
        )
        print(f"ratio cache/runner: best {best:.2f}, median {median:.2f} (target <= 1.2)")


if __name__ == "__main__":
    main()
