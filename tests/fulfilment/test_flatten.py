"""The flattened tables: scope (period, resource types, group) and opt-outs (the hospital's
list and FHIR Consents denying research) applied before any fulfilment can see the data."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path
from typing import Any

import duckdb
import pytest

from adapters.sof.port import SqlOnFhirRunner
from connector.fulfilment.flatten import build_flat_views
from connector.fulfilment.views import TABLES
from tests.fulfilment.conftest import (
    column,
    consent,
    every_patient_id,
    patient_ids,
    write_ndjson,
)

NOW = "2026-06-01T00:00:00+00:00"


def _files(directory: Path) -> dict[str, list[str]]:
    files: dict[str, list[str]] = {}
    for path in sorted(directory.glob("*.ndjson")):
        files.setdefault(path.name.split(".")[0], []).append(str(path))
    return files


def _build(
    data: Path, out: Path, scope: dict[str, Any] | None = None, optouts: list[str] | None = None
) -> tuple[dict[str, Any], dict[str, Path]]:
    stages: list[tuple[str, float]] = []
    counts = build_flat_views(
        lambda s, p: stages.append((s, p)),
        SqlOnFhirRunner(),
        _files(data),
        scope or {},
        optouts or [],
        str(out),
        NOW,
    )
    assert stages[-1] == ("done", 100.0)
    return counts, {t: out / f"{t}.parquet" for t in TABLES}


def _types(path: Path) -> dict[str, str]:
    return {r[0]: r[1] for r in duckdb.sql(f"DESCRIBE SELECT * FROM '{path}'").fetchall()}


@pytest.fixture
def data(sample_files: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "data"
    shutil.copytree(sample_files, copy)
    return copy


def test_every_table_is_written_with_its_types(data: Path, tmp_path: Path) -> None:
    counts, tables = _build(data, tmp_path / "out")
    assert set(counts) == set(TABLES)
    assert counts["patient"] == 150 and counts["observation"] > 1000
    types = _types(tables["patient"])
    assert types["birth_date"] == "DATE" and types["deceased_at"] == "TIMESTAMP"
    types = _types(tables["observation"])
    assert types["effective"] == "TIMESTAMP" and types["value_quantity"] == "DOUBLE"
    assert oct(tables["patient"].stat().st_mode & 0o777) == "0o600"
    assert not list(tmp_path.glob("out.tmp-*"))


def test_a_period_keeps_records_inside_it_and_their_patients(data: Path, tmp_path: Path) -> None:
    everything, _ = _build(data, tmp_path / "all")
    counts, tables = _build(
        data, tmp_path / "period", {"period": {"start": "2021-01-01", "end": "2022-12-31"}}
    )
    assert 0 < counts["patient"] < everything["patient"]
    assert 0 < counts["condition"] < everything["condition"]
    onsets = duckdb.sql(
        f"SELECT min(coalesce(onset, recorded)), max(coalesce(onset, recorded)) "
        f"FROM '{tables['condition']}'"
    ).fetchall()[0]
    assert onsets[0] >= dt.datetime(2021, 1, 1) and onsets[1] < dt.datetime(2023, 1, 1)
    effective = column(tables["observation"], "effective")
    assert min(effective) >= dt.datetime(2021, 1, 1) and max(effective) < dt.datetime(2023, 1, 1)
    # Every patient kept has a record in the period; codes only of kept records.
    kept = set(column(tables["patient"], "patient_id"))
    dated = set()
    for table in ("encounter", "condition", "observation", "procedure", "medication_request"):
        dated |= set(column(tables[table], "patient_id"))
    assert kept == dated
    coded = set(column(tables["coding"], "resource_id"))
    assert coded <= set(column(tables["condition"], "condition_id")) | set(
        column(tables["observation"], "observation_id")
    ) | set(column(tables["procedure"], "procedure_id")) | set(
        column(tables["medication_request"], "medication_request_id")
    )


def test_resource_types_leave_the_others_empty(data: Path, tmp_path: Path) -> None:
    counts, tables = _build(data, tmp_path / "out", {"resourceTypes": ["Condition"]})
    assert counts["condition"] > 0 and counts["observation"] == 0 and counts["encounter"] == 0
    assert set(column(tables["coding"], "resource_type")) == {"Condition"}
    assert _types(tables["observation"])["effective"] == "TIMESTAMP"


def test_opted_out_patients_appear_in_no_table(data: Path, tmp_path: Path) -> None:
    ids = patient_ids(data)
    listed, denied, other_scope, expired, inactive = ids[:5]
    write_ndjson(
        data / "Consent.000.ndjson",
        [
            consent("c1", denied),
            # Not an opt-out of research: a treatment consent, one that ended, a draft.
            consent(
                "c2",
                other_scope,
                scope={
                    "coding": [
                        {
                            "code": "treatment",
                            "system": "http://terminology.hl7.org/CodeSystem/consentscope",
                        }
                    ]
                },
            ),
            consent("c3", expired, provision={"type": "deny", "period": {"end": "2025-01-01"}}),
            consent("c4", inactive, status="inactive"),
        ],
    )
    counts, tables = _build(data, tmp_path / "out", optouts=[listed])
    present = set(every_patient_id(tables))
    assert listed not in present and denied not in present
    assert {other_scope, expired, inactive} <= present
    assert counts["patient"] == 148


def test_a_group_scope_keeps_its_active_members(data: Path, tmp_path: Path) -> None:
    ids = patient_ids(data)
    members = [{"entity": {"reference": f"Patient/{p}"}} for p in ids[:20]]
    members[0]["inactive"] = True
    write_ndjson(
        data / "Group.000.ndjson",
        [
            {"resourceType": "Group", "id": "registry", "type": "person", "actual": True,
             "member": members},
            {"resourceType": "Group", "id": "other", "type": "person", "actual": True,
             "member": [{"entity": {"reference": f"Patient/{ids[30]}"}}]},
        ],
    )  # fmt: skip
    counts, tables = _build(data, tmp_path / "out", {"group": "Group/registry"})
    assert set(every_patient_id(tables)) == set(ids[1:20])
    assert counts["patient"] == 19
