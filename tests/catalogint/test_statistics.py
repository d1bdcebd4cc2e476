"""Statistics from a dataset's flattened tables: the shared 10-patient Bulk NDJSON files and the
sample generator's output, flattened as the view cache does, then counted, made safe by
``catalog.statistics``."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from adapters.sof.port import SqlOnFhirRunner
from catalog.codes import CodingSystem
from catalog.statistics import SafeStatistics
from connector.fulfilment.flatten import build_flat_views
from connector.fulfilment.views import TABLES
from connector.ports import FhirResource
from connector.publishing.statistics import statistics_from_views
from connector.sampledata import generate

TEN = Path(__file__).resolve().parents[3] / "shared/conformance/fhir/bulk-ndjson-10-patients"
TODAY = dt.date(2026, 11, 28)
CLINICAL = ("Encounter", "Condition", "Observation", "Procedure", "MedicationRequest")
DATES = {
    "Encounter": ("period", "start"),
    "Condition": ("onsetDateTime",),
}


def _lines(directory: Path, rtype: str) -> list[FhirResource]:
    return [
        json.loads(line)
        for path in sorted(directory.glob(f"{rtype}.*.ndjson"))
        for line in path.read_text().splitlines()
        if line.strip()
    ]


def _statistics(data: Path, out: Path, min_cell: int = 10) -> SafeStatistics:
    files: dict[str, list[str]] = {}
    for path in sorted(data.glob("*.ndjson")):
        files.setdefault(path.name.split(".")[0], []).append(str(path))
    build_flat_views(
        lambda s, p: None, SqlOnFhirRunner(), files, {}, [], str(out), "2026-11-28T00:00:00+00:00"
    )
    tables = {t: str(out / f"{t}.parquet") for t in TABLES}
    return statistics_from_views(lambda s, p: None, tables, TODAY.isoformat(), min_cell)


def test_thirteen_patients_round_to_ten(tmp_path: Path) -> None:
    stats = _statistics(TEN, tmp_path / "out")
    records = sum(len(_lines(TEN, t)) for t in CLINICAL)
    assert len(_lines(TEN, "Patient")) == 13
    assert stats.number_of_unique_individuals == 10  # 13 rounded to the nearest 10
    assert stats.number_of_records == int(records / 10 + 0.5) * 10
    # Encounters and Conditions only (no Observations in these files): SNOMED CT alone.
    assert stats.coding_systems == (CodingSystem.SNOMED_CT,)
    dates = []
    for rtype, path in DATES.items():
        for resource in _lines(TEN, rtype):
            value: object = resource
            for key in path:
                value = value.get(key) if isinstance(value, dict) else None
            if isinstance(value, str):
                dates.append(dt.date.fromisoformat(value[:10]))
    assert stats.temporal_start == min(dates).replace(day=1)
    assert stats.temporal_end is not None and stats.temporal_end >= max(dates)


def test_fewer_than_k_individuals_publish_no_count_and_no_ages(tmp_path: Path) -> None:
    stats = _statistics(TEN, tmp_path / "out", min_cell=14)
    assert stats.number_of_unique_individuals is None
    assert stats.min_typical_age is None and stats.max_typical_age is None


def test_sample_data(tmp_path: Path) -> None:
    counts = generate(tmp_path / "data", patients=120, seed=3, profile="general")
    stats = _statistics(tmp_path / "data", tmp_path / "out")
    assert stats.number_of_unique_individuals == 120
    clinical = sum(counts.get(t, 0) for t in CLINICAL)
    assert stats.number_of_records == int(clinical / 10 + 0.5) * 10
    assert stats.min_typical_age is not None and stats.max_typical_age is not None
    assert 0 <= stats.min_typical_age < stats.max_typical_age <= 17
    assert {CodingSystem.SNOMED_CT, CodingSystem.LOINC, CodingSystem.ICD_10} <= set(
        stats.coding_systems
    )
