"""Sample FHIR data for the seam's tests: generated patients as Bulk NDJSON, plus Consent and
Group resources, and a helper to read the flattened tables."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from connector.sampledata import generate


@pytest.fixture(scope="session")
def sample_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sample")
    generate(out, patients=150, seed=7, profile="picu")
    return out


def patient_ids(directory: Path) -> list[str]:
    lines = (directory / "Patient.000.ndjson").read_text().splitlines()
    return [json.loads(line)["id"] for line in lines if line.strip()]


def write_ndjson(path: Path, resources: list[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in resources))


def consent(cid: str, patient: str, **changes: Any) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Consent",
        "id": cid,
        "status": "active",
        "scope": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/consentscope",
                    "code": "research",
                }
            ]
        },
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "patient": {"reference": f"Patient/{patient}"},
        "provision": {"type": "deny"},
    }
    resource.update(changes)
    return resource


def column(path: Path, name: str) -> list[Any]:
    import duckdb

    return [r[0] for r in duckdb.sql(f"SELECT \"{name}\" FROM '{path}'").fetchall()]


def every_patient_id(tables: dict[str, Path]) -> Iterator[str]:
    for table, path in tables.items():
        if table != "patient":
            yield from (p for p in column(path, "patient_id") if p is not None)
        else:
            yield from column(path, "patient_id")
