"""Test fixtures' flat views: the seam's own build (``connector.fulfilment.flatten``, as the
view cache runs it, no scope, no opt-outs) over generated sample data or the 40 Synthea
patients of ``../shared``.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

from adapters.sof.port import SqlOnFhirRunner
from connector.fulfilment.flatten import build_flat_views
from connector.fulfilment.views import TABLES
from connector.ports import FlatViews
from connector.sampledata import generate
from tests.conftest import SHARED

SYNTHEA = SHARED / "conformance" / "fhir" / "synthea-r4-40-patients"


def read_ndjson(directory: Path) -> dict[str, list[dict[str, Any]]]:
    resources: dict[str, list[dict[str, Any]]] = {}
    for path in sorted(directory.glob("*.ndjson*")):
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt", encoding="utf-8") as lines:
            rtype = path.name.split(".")[0]
            resources.setdefault(rtype, []).extend(
                json.loads(line) for line in lines if line.strip()
            )
    return resources


def views_of(source: Path, out: Path, *, dataset_id: str, version: str) -> FlatViews:
    files: dict[str, list[str]] = {}
    for path in sorted(source.glob("*.ndjson*")):
        files.setdefault(path.name.split(".")[0], []).append(str(path))
    counts = build_flat_views(
        lambda stage, percent: None,
        SqlOnFhirRunner(),
        files,
        {},
        [],
        str(out),
        "2026-01-01T00:00:00+00:00",
    )
    return FlatViews(
        dataset_id=dataset_id,
        version=version,
        directory=out,
        tables={t: out / f"{t}.parquet" for t in TABLES},
        patients=int(counts["patient"]),
    )


def generated_views(
    tmp: Path, *, patients: int, seed: int = 1, profile: str = "general", version: str = "v1"
) -> tuple[FlatViews, dict[str, list[dict[str, Any]]]]:
    """Flat views of ``patients`` generated children, and their FHIR resources."""
    ndjson = tmp / f"ndjson-{profile}-{patients}-{seed}"
    generate(ndjson, patients=patients, seed=seed, profile=profile)
    views = views_of(ndjson, tmp / f"views-{version}", dataset_id="ds", version=version)
    return views, read_ndjson(ndjson)
