"""Synthetic bundles (issue 21): our pipeline against raw SDV in the same run.

    PYTHONPATH=. .venv/bin/python bench/bench_synthetic.py [--patients 10000] [--sample 1000]
        [--rounds 3]

1. **Fit + sample as FHIR.** ``connector.synthetic.model.fit`` on the flat views of
   ``--patients`` generated children (reading Parquet, encoding, one GaussianCopula per table,
   the quality/privacy/utility evaluation, saving), then ``--sample`` patients as a FHIR Bundle
   (bytes), against raw SDV ``GaussianCopulaSynthesizer`` (its defaults) fitted on the same
   pre-flattened training tables and sampling the same number of rows per table. Reported with
   and without the evaluation stage (target: <= 1.5x without it; the evaluation is extra work
   that raw SDV does not do). Stage times come from the progress callback.
2. **Sample from a cached model.** ``--sample`` patients as a Bundle from a model loaded once
   (the data plane's path), best and median of ``--rounds`` (target: under 2 s).

Generating the data and building the flat views are not timed.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from connector.sampledata import generate  # noqa: E402
from connector.synthetic.fhir import bundle_chunks, bundle_ref, resources  # noqa: E402
from connector.synthetic.flatten import write_flat_views  # noqa: E402
from connector.synthetic.model import LoadedModel, fit  # noqa: E402
from connector.synthetic.tables import encode, read_views  # noqa: E402
from tests.synthetic.flatviews import read_ndjson  # noqa: E402


def raw_sdv(tables: dict[str, object], rows: dict[str, int]) -> float:
    from sdv.metadata import Metadata
    from sdv.single_table import GaussianCopulaSynthesizer

    started = time.perf_counter()
    for name, table in tables.items():
        data = table.drop(columns=["patient_id"])  # type: ignore[attr-defined]
        metadata = Metadata.detect_from_dataframes({"table": data})
        model = GaussianCopulaSynthesizer(metadata)
        model.fit({"table": data})
        model.sample(num_rows=max(1, rows[name]))
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--patients", type=int, default=10_000)
    parser.add_argument("--sample", type=int, default=1_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        generate(root / "fhir", patients=args.patients, seed=1, profile="general")
        views = write_flat_views(read_ndjson(root / "fhir"), root / "views", dataset_id="bench",
                                 version="b1")  # fmt: skip
        tables, encoding = encode(read_views(views), min_code_patients=5)
        per_patient = {"patient": 1.0, **encoding.rows_per_patient}
        rows = {n: round(args.sample * per_patient.get(n, 0)) for n in tables}
        baseline = raw_sdv(tables, rows)

        marks: list[tuple[str, float]] = []
        started = time.perf_counter()
        result = fit(views, {"holdout": 0.2}, lambda s, _: marks.append((s, time.perf_counter())),
                     models_dir=root / "models")  # fmt: skip
        fitted = time.perf_counter()
        stage: dict[str, float] = {}
        for (name, at), (_, after) in zip(marks, marks[1:] + [("end", fitted)], strict=True):
            stage[name] = stage.get(name, 0.0) + after - at
        model = LoadedModel.load(Path(result.directory))
        loaded = time.perf_counter()
        first = resources(model.sample_frames(args.sample, seed=1), bundle_ref)
        body = b"".join(
            bundle_chunks(first, bundle_type="collection", bundle_id="b", timestamp="x")
        )
        sampled = time.perf_counter()
        ours = sampled - started
        evaluation = stage.get("evaluating", 0.0) + stage.get("saving", 0.0)

        rounds = []
        for n in range(args.rounds):
            t0 = time.perf_counter()
            frames = model.sample_frames(args.sample, seed=100 + n)
            chunks = bundle_chunks(resources(frames, bundle_ref), bundle_type="collection",
                                   bundle_id="b", timestamp="x")  # fmt: skip
            size = sum(len(c) for c in chunks)
            rounds.append(time.perf_counter() - t0)

    print(f"patients {args.patients}, sampled {args.sample} ({len(body) / 2**20:.1f} MiB bundle)")
    print("| measure | raw SDV | ours | ratio |")
    print("|---|---|---|---|")
    without = ours - evaluation
    print(f"| fit + sample as FHIR, without evaluation | {baseline:.2f} s | {without:.2f} s | "
          f"{without / baseline:.2f} |")  # fmt: skip
    print(f"| fit + sample as FHIR, with evaluation | {baseline:.2f} s | {ours:.2f} s | "
          f"{ours / baseline:.2f} |")  # fmt: skip
    print("stages: " + ", ".join(f"{k} {v:.2f} s" for k, v in stage.items())
          + f", load {loaded - fitted:.2f} s, sample+bundle {sampled - loaded:.2f} s")  # fmt: skip
    print(
        f"| sample {args.sample} patients as a Bundle from a cached model | best "
        f"{min(rounds):.2f} s | median {statistics.median(rounds):.2f} s | {size} bytes |"
    )


if __name__ == "__main__":
    main()
