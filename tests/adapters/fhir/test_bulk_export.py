"""Bulk Data ``$export`` against sekmet: system, Patient and Group level, ``_type``, ``_since``,
streamed resources and files on disk, compared with the NDJSON file source."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from adapters.fhir_rest import FhirRestSource
from adapters.ndjson_source import NdjsonFileSource
from tests.adapters.fhir.conftest import TOKEN
from tests.adapters.fhir.data import by_key, collect, expected, keys, patient_refs
from tests.adapters.fhir.sekmet import SekmetServer

AUTH = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/fhir+json"}


def everything() -> list[dict[str, Any]]:
    return [r for resources in expected().values() for r in resources]


async def test_system_export_round_trip_equals_the_file_source(
    rest_source: FhirRestSource, file_source: NdjsonFileSource
) -> None:
    exported = await collect(rest_source.export())
    from_files = [
        r for t in await file_source.resource_types() async for r in file_source.search(t)
    ]
    assert keys(exported) == keys(from_files)
    assert by_key(exported) == by_key(from_files)


async def test_export_to_directory_is_readable_by_the_file_source(
    rest_source: FhirRestSource, file_source: NdjsonFileSource, tmp_path: Path
) -> None:
    result = await rest_source.export_to_directory(
        tmp_path / "export", types=["Patient", "Encounter"]
    )
    assert sorted(p.name for p in result.files) == ["Encounter.000.ndjson", "Patient.000.ndjson"]
    assert result.counts == {t: len(expected()[t]) for t in ("Encounter", "Patient")}
    exported = NdjsonFileSource(tmp_path / "export")
    assert await exported.resource_types() == ["Encounter", "Patient"]
    for rtype in ("Patient", "Encounter"):
        got = await collect(exported.search(rtype))
        want = await collect(file_source.search(rtype))
        assert by_key(got) == by_key(want)
    assert not list((tmp_path / "export").glob("*.part"))


async def test_type_filter(rest_source: FhirRestSource) -> None:
    exported = await collect(rest_source.export(types=["Patient", "Device"]))
    assert {r["resourceType"] for r in exported} == {"Patient", "Device"}
    assert keys(exported) == keys(expected()["Patient"] + expected()["Device"])


async def test_since_in_the_future_exports_nothing(rest_source: FhirRestSource) -> None:
    since = datetime.now(UTC) + timedelta(days=1)
    assert await collect(rest_source.export(since=since)) == []


async def test_since_before_loading_exports_everything(rest_source: FhirRestSource) -> None:
    since = datetime.now(UTC) - timedelta(days=1)
    exported = await collect(rest_source.export(since=since, types=["Condition"]))
    assert keys(exported) == keys(expected()["Condition"])


async def test_patient_level_export(rest_source: FhirRestSource) -> None:
    exported = await collect(rest_source.export(level="patient"))
    got = by_key(exported)
    patients = {f"Patient/{p['id']}" for p in expected()["Patient"]}
    assert patients <= set(got)
    # every resource of a patient (by subject/patient) is in the patient-level export ...
    for resource in everything():
        if patient_refs(resource):
            assert f"{resource['resourceType']}/{resource['id']}" in got
    # ... and nothing outside the patients' compartments (no Organization, Practitioner ...)
    assert {r["resourceType"] for r in exported} <= {
        "Patient",
        "Encounter",
        "Condition",
        "Immunization",
        "AllergyIntolerance",
        "Device",
    }


@pytest.fixture
def cohort_group(sekmet: SekmetServer) -> Iterator[list[str]]:
    members = [p["id"] for p in expected()["Patient"][:2]]
    group = {
        "resourceType": "Group",
        "id": "phems-cohort",
        "type": "person",
        "actual": True,
        "member": [{"entity": {"reference": f"Patient/{m}"}} for m in members],
    }
    url = f"{sekmet.base_url}/Group/phems-cohort"
    assert httpx.put(url, json=group, headers=AUTH).status_code in (200, 201)
    try:
        yield members
    finally:
        httpx.delete(url, headers=AUTH)


async def test_group_level_export(rest_source: FhirRestSource, cohort_group: list[str]) -> None:
    exported = await collect(rest_source.export(level="group", group_id="phems-cohort"))
    members = {f"Patient/{m}" for m in cohort_group}
    got = set(keys(exported))
    # The Group itself belongs to its members' Patient compartment (Group.member).
    want = (
        members
        | {"Group/phems-cohort"}
        | {f"{r['resourceType']}/{r['id']}" for r in everything() if patient_refs(r) & members}
    )
    assert got == want


async def test_version_changes_when_the_server_data_changes(
    sekmet: SekmetServer, rest_source: FhirRestSource
) -> None:
    before = await rest_source.version()
    url = f"{sekmet.base_url}/Group/version-probe"
    group = {"resourceType": "Group", "id": "version-probe", "type": "person", "actual": False}
    assert httpx.put(url, json=group, headers=AUTH).status_code in (200, 201)
    created = await rest_source.version()
    assert created != before
    assert httpx.delete(url, headers=AUTH).status_code in (200, 204)
    # Back to the same data: equal to ``before`` is right, equal to ``created`` would be stale.
    assert await rest_source.version() != created
