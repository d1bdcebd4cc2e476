"""Benchmark: SQL-on-FHIR views vs a hand-written orjson loop over the same Bulk NDJSON files.

Both sides stream ``Type.*.ndjson`` line by line, parse with orjson and build the same three
DataFrames (patients: id, birth date, sex; conditions: patient, system, code; body weight
observations: patient, value, unit, time); then the same pandas step joins them into one table
(patient id, age, sex, condition codes, latest weight). Frames are checked equal.

    python bench/bench_views.py --patients 34000          # ~1M resources, generated first
    python bench/bench_views.py --data DIR                # existing Bulk NDJSON

Data come from ``connector.sampledata.generate`` (``--profile``, default ``general``: about 30
resources a patient, so ``--patients 34000`` gives about one million).
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

from adapters.sof import compile_view
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


def with_views(data: Path) -> list[pd.DataFrame]:
    views = [(compile_view(v), str(v["resource"])) for v in (PATIENT_VIEW, CONDITION_VIEW)]
    views.append((compile_view(WEIGHT_VIEW), "Observation"))
    return [view.to_frame(read_ndjson(data, rtype)) for view, rtype in views]


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


def timed(fn: Callable[[Path], list[pd.DataFrame]], data: Path) -> tuple[float, list[pd.DataFrame]]:
    start = time.perf_counter()
    frames = fn(data)
    return time.perf_counter() - start, frames


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
                f"in {time.perf_counter() - start:.1f}s"
            )
        hand_s, view_s = float("inf"), float("inf")
        for _ in range(args.repeat):
            t, hand = timed(by_hand, data)
            hand_s = min(hand_s, t)
            t, viewed = timed(with_views, data)
            view_s = min(view_s, t)
        for a, b in zip(viewed, hand, strict=True):
            pd.testing.assert_frame_equal(a, b, check_dtype=False)
        table = combine(viewed)
        pd.testing.assert_frame_equal(table, combine(hand))
        rows = sum(len(f) for f in viewed)
        print(
            f"rows: {', '.join(str(len(f)) for f in viewed)} ({rows:,}); "
            f"analysis table {table.shape}"
        )
        print(f"hand-written orjson loop: {hand_s:.2f}s")
        print(f"SQL-on-FHIR views:        {view_s:.2f}s")
        print(f"ratio views/hand: {view_s / hand_s:.2f}x (target <= 2x)")


if __name__ == "__main__":
    main()
