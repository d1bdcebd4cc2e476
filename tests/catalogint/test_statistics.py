"""Statistics from a FHIR source through the port: the shared 10-patient Bulk NDJSON files
(read by a tiny in-test implementation of the port) and the sample generator's output (read by
the real NDJSON file source)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

from adapters.ndjson_source import NdjsonFileSource
from catalog.codes import CodingSystem
from connector.ports import FhirResource
from connector.publishing.statistics import CLINICAL_TYPES, clinical_date, compute_statistics
from connector.sampledata import generate

TEN = Path(__file__).resolve().parents[3] / "shared/conformance/fhir/bulk-ndjson-10-patients"
TODAY = dt.date(2026, 11, 28)


class FilesByType:
    """Test fake of the FhirSource port: every `<Type>.*.ndjson` line, no parameters."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    async def search(
        self, resource_type: str, params: Mapping[str, str] | None = None
    ) -> AsyncIterator[FhirResource]:
        assert not params
        for path in sorted(self.directory.glob(f"{resource_type}.*.ndjson")):
            for line in path.read_text().splitlines():
                if line.strip():
                    yield json.loads(line)


def _lines(directory: Path, rtype: str) -> list[FhirResource]:
    return [
        json.loads(line)
        for path in sorted(directory.glob(f"{rtype}.*.ndjson"))
        for line in path.read_text().splitlines()
        if line.strip()
    ]


async def test_thirteen_patients_round_to_ten() -> None:
    stats = await compute_statistics(FilesByType(TEN), today=TODAY)
    records = sum(len(_lines(TEN, t)) for t in CLINICAL_TYPES)
    assert len(_lines(TEN, "Patient")) == 13
    assert stats.number_of_unique_individuals == 10  # 13 rounded to the nearest 10
    assert stats.number_of_records == int(records / 10 + 0.5) * 10
    # Encounters and Conditions only (no Observations in these files): SNOMED CT alone.
    assert stats.coding_systems == (CodingSystem.SNOMED_CT,)
    dates = [d for t in CLINICAL_TYPES for r in _lines(TEN, t) if (d := clinical_date(r))]
    assert stats.temporal_start == min(dates).replace(day=1)
    assert stats.temporal_end is not None and stats.temporal_end >= max(dates)


async def test_fewer_than_k_individuals_publish_no_count_and_no_ages() -> None:
    stats = await compute_statistics(FilesByType(TEN), today=TODAY, min_cell=14)
    assert stats.number_of_unique_individuals is None
    assert stats.min_typical_age is None and stats.max_typical_age is None


async def test_sample_data_through_the_file_source(tmp_path: Path) -> None:
    counts = generate(tmp_path, patients=120, seed=3, profile="general")
    source = NdjsonFileSource(tmp_path)
    try:
        stats = await compute_statistics(source, today=TODAY)
    finally:
        await source.aclose()
    assert stats.number_of_unique_individuals == 120
    clinical = sum(counts.get(t, 0) for t in CLINICAL_TYPES)
    assert stats.number_of_records == int(clinical / 10 + 0.5) * 10
    assert stats.min_typical_age is not None and stats.max_typical_age is not None
    assert 0 <= stats.min_typical_age < stats.max_typical_age <= 17
    assert {CodingSystem.SNOMED_CT, CodingSystem.LOINC, CodingSystem.ICD_10} <= set(
        stats.coding_systems
    )
