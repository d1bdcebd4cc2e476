"""Benchmark: SQL-on-FHIR views as the connector runs them against a hand-written orjson loop.

The connector runs views in one place, the view cache (``connector.fulfilment.flatten``): the
file source names its NDJSON files (``NdjsonFileSource.ndjson_files``) and ``flatten_views``
runs each view's SQL form in DuckDB over them (``adapters.sof``'s ``ViewSql``), or the runner
over the resources where a view has none, into DuckDB tables. Here it runs three views
(patients: id, birth date, sex; conditions: patient, system, code for every coding; body
weight observations, a view-level ``where``: patient, value, unit, time) and the tables are
read back as DataFrames. The baseline streams ``Type.*.ndjson`` line by line, parses with
orjson and builds the same three DataFrames by hand. The frames are checked equal, then the
same pandas step joins them into one table (patient id, age, sex, condition codes, latest
weight). A third line runs the same with the runner alone (what views without an SQL form
cost). Best of ``--repeat``; wall time and the process's CPU time (DuckDB uses every core).

    python bench/bench_views.py --patients 34000          # ~1M resources, generated first
    python bench/bench_views.py --data DIR                # existing Bulk NDJSON

Data come from ``connector.sampledata.generate`` (``--profile``, default ``general``: about 30
resources a patient, so ``--patients 34000`` gives about one million). Target (issue 20):
connector / hand <= 2.
"""

from __future__ import annotations

import argparse
import gzip
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from typing import Any

import orjson
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from anywhere

from adapters.ndjson_source import NdjsonFileSource
from adapters.sof.port import SqlOnFhirRunner
from connector.fulfilment.flatten import flatten_views
from connector.sampledata import PROFILES, generate

REFERENCE_DAY = date(2026, 1, 1)
WEIGHT = "29463-7"

PATIENT_VIEW = {
    "resource": "Patient",
    "select": [
        {
            "column": [
                {"name": "patient", "path": "getResourceKey()", "type": "id"},
                {"name": "birth_date", "path": "birthDate", "type": "date"},
                {"name": "sex", "path": "gender", "type": "code"},
            ]
        }
    ],
}
CONDITION_VIEW = {
    "resource": "Condition",
    "select": [
        {"column": [{"name": "patient", "path": "subject.getReferenceKey(Patient)", "type": "id"}]},
        {
            "forEach": "code.coding",
            "column": [
                {"name": "system", "path": "system", "type": "uri"},
                {"name": "code", "path": "code", "type": "code"},
            ],
        },
    ],
}
WEIGHT_VIEW = {
    "resource": "Observation",
    "constant": [{"name": "weight", "valueCode": WEIGHT}],
    "where": [{"path": "code.coding.where(system = %loinc and code = %weight).exists()"}],
    "select": [
        {
            "column": [
                {"name": "patient", "path": "subject.getReferenceKey(Patient)", "type": "id"},
                {"name": "value", "path": "value.ofType(Quantity).value", "type": "decimal"},
                {"name": "unit", "path": "value.ofType(Quantity).code", "type": "code"},
                {"name": "time", "path": "effective.ofType(dateTime)", "type": "dateTime"},
            ]
        }
    ],
}


def read_ndjson(data: Path, resource_type: str) -> Iterator[dict[str, Any]]:
    """Stream one type's resources from ``Type.*.ndjson`` / ``Type.*.ndjson.gz`` files."""
    paths = sorted(data.glob(f"{resource_type}.*ndjson")) + sorted(
        data.glob(f"{resource_type}.*ndjson.gz")
    )
    for path in paths:
        with gzip.open(path, "rb") if path.suffix == ".gz" else path.open("rb") as fh:
            for line in fh:
                if line.strip():
                    yield orjson.loads(line)


class RunnerOnly:
    """The SQL-on-FHIR runner without its SQL form: every view goes through the runner."""

    def __init__(self) -> None:
        self._inner = SqlOnFhirRunner()

    def compile(self, view: Any) -> Any:
        return self._inner.compile(view)


VIEWS = {"patients": PATIENT_VIEW, "conditions": CONDITION_VIEW, "weights": WEIGHT_VIEW}
DTYPES = [
    {"patient": "string", "birth_date": "string", "sex": "string"},
    {"patient": "string", "system": "string", "code": "string"},
    {"patient": "string", "value": "Float64", "unit": "string", "time": "string"},
]


def through_connector(data: Path, runner: Any = None) -> list[pd.DataFrame]:
    """The three views as the view cache runs them, read back as DataFrames."""
    import duckdb

    source = NdjsonFileSource(data)
    files = {v["resource"]: source.ndjson_files(str(v["resource"])) for v in VIEWS.values()}
    con = duckdb.connect()
    try:
        flatten_views(con, runner or SqlOnFhirRunner(), VIEWS, files, lambda stage, pct: None)
        frames = [con.table(f"raw_{name}").df() for name in VIEWS]
    finally:
        con.close()
    return [frame.astype(dtypes) for frame, dtypes in zip(frames, DTYPES, strict=True)]


def with_runner_only(data: Path) -> list[pd.DataFrame]:
    return through_connector(data, RunnerOnly())


def _patient_key(ref: dict[str, Any] | None) -> str | None:
    text = (ref or {}).get("reference", "")
    kind, _, ident = text.rpartition("/")
    return ident if kind.endswith("Patient") and ident else None


def by_hand(data: Path) -> list[pd.DataFrame]:
    pid, birth, sex = [], [], []
    for r in read_ndjson(data, "Patient"):
        pid.append(r.get("id"))
        birth.append(r.get("birthDate"))
        sex.append(r.get("gender"))
    c_pid, c_sys, c_code = [], [], []
    for r in read_ndjson(data, "Condition"):
        key = _patient_key(r.get("subject"))
        for coding in (r.get("code") or {}).get("coding", []):
            c_pid.append(key)
            c_sys.append(coding.get("system"))
            c_code.append(coding.get("code"))
    o_pid, o_val, o_unit, o_time = [], [], [], []
    for r in read_ndjson(data, "Observation"):
        codings = (r.get("code") or {}).get("coding", [])
        if not any(
            c.get("system") == "http://loinc.org" and c.get("code") == WEIGHT for c in codings
        ):
            continue
        qty = r.get("valueQuantity") or {}
        o_pid.append(_patient_key(r.get("subject")))
        o_val.append(qty.get("value"))
        o_unit.append(qty.get("code"))
        o_time.append(r.get("effectiveDateTime"))
    s = "string"
    return [
        pd.DataFrame(
            {
                "patient": pd.Series(pid, dtype=s),
                "birth_date": pd.Series(birth, dtype=s),
                "sex": pd.Series(sex, dtype=s),
            }
        ),
        pd.DataFrame(
            {
                "patient": pd.Series(c_pid, dtype=s),
                "system": pd.Series(c_sys, dtype=s),
                "code": pd.Series(c_code, dtype=s),
            }
        ),
        pd.DataFrame(
            {
                "patient": pd.Series(o_pid, dtype=s),
                "value": pd.Series(o_val, dtype="Float64"),
                "unit": pd.Series(o_unit, dtype=s),
                "time": pd.Series(o_time, dtype=s),
            }
        ),
    ]


def combine(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """The analysis table: patient, age (years at REFERENCE_DAY), sex, condition codes, weight."""
    patients, conditions, weights = frames
    born = pd.to_datetime(patients["birth_date"], errors="coerce")
    age = (pd.Timestamp(REFERENCE_DAY) - born).dt.days // 365
    table = pd.DataFrame({"patient": patients["patient"], "age": age, "sex": patients["sex"]})
    codes = conditions.groupby("patient")["code"].agg(lambda c: sorted(set(c)))
    latest = weights.sort_values("time").groupby("patient")["value"].last()
    table = table.join(codes.rename("condition_codes"), on="patient")
    return table.join(latest.rename("weight_kg"), on="patient")


def timed(
    fn: Callable[[Path], list[pd.DataFrame]], data: Path
) -> tuple[float, float, list[pd.DataFrame]]:
    wall, cpu = time.perf_counter(), time.process_time()
    frames = fn(data)
    return time.perf_counter() - wall, time.process_time() - cpu, frames


def _rows(frame: pd.DataFrame) -> list[tuple[Any, ...]]:
    plain = frame.astype(object).where(frame.notna(), None)
    return sorted(plain.itertuples(index=False, name=None), key=repr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, help="directory of Bulk NDJSON (Type.*.ndjson)")
    parser.add_argument("--patients", type=int, default=42_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--profile", default="general", choices=sorted(PROFILES))
    parser.add_argument("--repeat", type=int, default=1, help="best of N runs for each side")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-views-") as tmp:
        data = args.data
        if data is None:
            data = Path(tmp)
            start = time.perf_counter()
            counts = generate(data, patients=args.patients, seed=args.seed, profile=args.profile)
            print(
                f"generated {sum(counts.values()):,} resources {counts} with "
                f"connector.sampledata (profile {args.profile}, seed {args.seed}) "
                f"in {time.perf_counter() - start:.1f}s",
                flush=True,
            )
        sides = {"hand": by_hand, "connector": through_connector, "runner": with_runner_only}
        best: dict[str, tuple[float, float]] = {k: (float("inf"), 0.0) for k in sides}
        frames: dict[str, list[pd.DataFrame]] = {}
        for r in range(args.repeat):
            order = list(sides.items())
            for name, fn in order if r % 2 == 0 else reversed(order):
                wall, cpu, frames[name] = timed(fn, data)
                if wall < best[name][0]:
                    best[name] = (wall, cpu)
        for name in ("connector", "runner"):
            for ours, hand in zip(frames[name], frames["hand"], strict=True):
                assert _rows(ours) == _rows(hand), name
        table = combine(frames["connector"])
        pd.testing.assert_frame_equal(table, combine(frames["hand"]), check_like=True)
        rows = sum(len(f) for f in frames["hand"])
        print(
            f"rows: {', '.join(str(len(f)) for f in frames['hand'])} ({rows:,}); "
            f"analysis table {table.shape}; best of {args.repeat}, wall (CPU)"
        )
        hand_s, hand_cpu = best["hand"]
        print(f"hand-written orjson loop:              {hand_s:6.2f}s ({hand_cpu:.2f}s CPU)")
        for name, label in (
            ("connector", "connector (file source, SQL form):"),
            ("runner", "connector, runner only:            "),
        ):
            wall, cpu = best[name]
            print(f"{label}     {wall:6.2f}s ({cpu:.2f}s CPU)  ratio {wall / hand_s:.2f}x")
        ratio = best["connector"][0] / hand_s
        print(f"ratio connector/hand: {ratio:.2f}x (target <= 2x)")


if __name__ == "__main__":
    main()
