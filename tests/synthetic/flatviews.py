"""Test fixtures' flat views: SQL-on-FHIR views over NDJSON written as Parquet (DuckDB).

Until the seam's view cache lands, this builds ``FlatViews`` with the synthetic package's
interim builder (``connector.synthetic.flatten``) from generated sample data or the 40 Synthea
patients of ``../shared``.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

from connector.ports import FlatViews
from connector.sampledata import generate
from connector.synthetic.flatten import write_flat_views
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
    return write_flat_views(read_ndjson(source), out, dataset_id=dataset_id, version=version)


def generated_views(
    tmp: Path, *, patients: int, seed: int = 1, profile: str = "general", version: str = "v1"
) -> tuple[FlatViews, dict[str, list[dict[str, Any]]]]:
    """Flat views of ``patients`` generated children, and their FHIR resources."""
    ndjson = tmp / f"ndjson-{profile}-{patients}-{seed}"
    generate(ndjson, patients=patients, seed=seed, profile=profile)
    resources = read_ndjson(ndjson)
    views = write_flat_views(resources, tmp / f"views-{version}", dataset_id="ds", version=version)
    return views, resources
