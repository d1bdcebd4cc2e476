"""The same SQL-on-FHIR views over the REST source (sekmet) and the file source give equal frames.

Two data sets, each loaded into sekmet and read back by ``FhirRestSource`` while
``NdjsonFileSource`` reads the very files that were loaded:

- the shared Synthea fixture (``bulk-ndjson-10-patients``, the session server of conftest): it
  has no Observations, so its decimal value comes from a Patient extension;
- a small generated sample (``connector.sampledata``, profile ``picu``) in a server of its own,
  for Observation values through ``value.ofType(Quantity)``.

Rows are sorted before comparing: neither source promises an order. Views only read elements a
server keeps as sent (not ``meta``, not the fixture's conditional references, which sekmet
rewrites to literal ones on storing).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from adapters.fhir_rest import FhirRestSource
from adapters.ndjson_source import NdjsonFileSource
from adapters.sof import compile_view
from connector.sampledata import generate
from tests.adapters.fhir.data import expected
from tests.adapters.fhir.sekmet import SekmetServer
from tests.conftest import free_port

PATIENTS: dict[str, Any] = {
    "resource": "Patient",
    "select": [
        {
            "column": [
                {"name": "patient", "path": "getResourceKey()", "type": "id"},
                {"name": "birth_date", "path": "birthDate", "type": "date"},
                {"name": "sex", "path": "gender", "type": "code"},
                {"name": "deceased", "path": "deceased.ofType(dateTime)", "type": "dateTime"},
            ]
        }
    ],
}
CONDITIONS: dict[str, Any] = {
    "resource": "Condition",
    "select": [
        {
            "column": [
                {"name": "id", "path": "getResourceKey()", "type": "id"},
                {"name": "patient", "path": "subject.getReferenceKey(Patient)", "type": "id"},
                {"name": "onset", "path": "onset.ofType(dateTime)", "type": "dateTime"},
            ]
        },
        {
            "forEach": "code.coding",
            "column": [
                {"name": "system", "path": "system", "type": "uri"},
                {"name": "code", "path": "code", "type": "code"},
            ],
        },
    ],
}
QUANTITIES: dict[str, Any] = {
    "resource": "Observation",
    "where": [{"path": "value.ofType(Quantity).exists()"}],
    "select": [
        {
            "column": [
                {"name": "id", "path": "getResourceKey()", "type": "id"},
                {"name": "patient", "path": "subject.getReferenceKey(Patient)", "type": "id"},
                {"name": "loinc", "path": "code.coding.where(system = %loinc).code.first()"},
                {"name": "value", "path": "value.ofType(Quantity).value", "type": "decimal"},
                {"name": "unit", "path": "value.ofType(Quantity).code", "type": "code"},
                {"name": "time", "path": "effective.ofType(dateTime)", "type": "dateTime"},
            ]
        }
    ],
}
DALY_URL = "http://synthetichealth.github.io/synthea/disability-adjusted-life-years"
PATIENT_DALY: dict[str, Any] = {
    "resource": "Patient",
    "select": [
        {
            "column": [
                {"name": "patient", "path": "getResourceKey()", "type": "id"},
                {
                    "name": "daly",
                    "path": f"extension('{DALY_URL}').value.ofType(decimal)",
                    "type": "decimal",
                },
            ]
        },
        {
            "forEachOrNull": "name.where(use = 'official')",
            "column": [{"name": "family", "path": "family", "type": "string"}],
        },
    ],
}
ENCOUNTERS: dict[str, Any] = {
    "resource": "Encounter",
    "select": [
        {
            "column": [
                {"name": "id", "path": "getResourceKey()", "type": "id"},
                {"name": "patient", "path": "subject.getReferenceKey(Patient)", "type": "id"},
                {"name": "class", "path": "class.code", "type": "code"},
                {"name": "start", "path": "period.start", "type": "dateTime"},
                {"name": "end", "path": "period.end", "type": "dateTime"},
            ]
        }
    ],
}
FIXTURE_VIEWS = {"patients": PATIENTS, "conditions": CONDITIONS, "daly": PATIENT_DALY}
FIXTURE_VIEWS |= {"encounters": ENCOUNTERS}
SAMPLE_VIEWS = {"patients": PATIENTS, "conditions": CONDITIONS, "quantities": QUANTITIES}
SAMPLE_VIEWS |= {"encounters": ENCOUNTERS}


def sorted_rows(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values(list(frame.columns), na_position="first").reset_index(drop=True)


async def frame_from(
    source: FhirRestSource | NdjsonFileSource, view: dict[str, Any]
) -> pd.DataFrame:
    return await compile_view(view).ato_frame(source.search(view["resource"]))


def lines(directory: Path, resource_type: str) -> list[dict[str, Any]]:
    return [
        json.loads(line)
        for path in sorted(directory.glob(f"{resource_type}.*ndjson"))
        for line in path.read_text().splitlines()
        if line.strip()
    ]


async def assert_same_frames(
    rest: FhirRestSource, files: NdjsonFileSource, view: dict[str, Any]
) -> pd.DataFrame:
    over_rest = await frame_from(rest, view)
    over_files = await frame_from(files, view)
    assert len(over_files) > 0
    pd.testing.assert_frame_equal(sorted_rows(over_rest), sorted_rows(over_files))
    return over_files


# -- the shared fixture, in the session's sekmet ---------------------------------------------


@pytest.mark.parametrize("name", sorted(FIXTURE_VIEWS))
async def test_fixture_views_equal_over_rest_and_files(
    name: str, rest_source: FhirRestSource, file_source: NdjsonFileSource
) -> None:
    frame = await assert_same_frames(rest_source, file_source, FIXTURE_VIEWS[name])
    resources = expected()[FIXTURE_VIEWS[name]["resource"]]
    if name == "conditions":  # one row per coding, every Condition of the files
        assert len(frame) == sum(len(r["code"]["coding"]) for r in resources)
        assert set(frame["id"]) == {r["id"] for r in resources}
    elif name == "daly":
        assert frame["daly"].notna().all()
        assert frame["patient"].nunique() == len(resources)
    else:
        assert len(frame) == len(resources)


# -- a generated sample, in a sekmet of its own ----------------------------------------------


@pytest.fixture(scope="module")
def sample_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sample")
    generate(out, patients=12, seed=11, profile="picu")
    return out


@pytest.fixture(scope="module")
def sample_sekmet(
    sekmet_exe: Path, sample_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SekmetServer]:
    server = SekmetServer(sekmet_exe, tmp_path_factory.mktemp("sekmet-sample"), free_port())
    try:
        server.start()
        server.load_ndjson(sample_dir)
        yield server
    finally:
        server.stop()


@pytest.fixture
async def sample_sources(
    sample_sekmet: SekmetServer, sample_dir: Path
) -> AsyncIterator[tuple[FhirRestSource, NdjsonFileSource]]:
    rest = FhirRestSource(sample_sekmet.base_url, page_size=50)
    files = NdjsonFileSource(sample_dir)
    try:
        yield rest, files
    finally:
        await rest.aclose()
        await files.aclose()


@pytest.mark.parametrize("name", sorted(SAMPLE_VIEWS))
async def test_sample_views_equal_over_rest_and_files(
    name: str, sample_sources: tuple[FhirRestSource, NdjsonFileSource], sample_dir: Path
) -> None:
    rest, files = sample_sources
    frame = await assert_same_frames(rest, files, SAMPLE_VIEWS[name])
    resources = lines(sample_dir, SAMPLE_VIEWS[name]["resource"])
    if name == "quantities":
        with_quantity = [r for r in resources if "valueQuantity" in r]
        assert len(frame) == len(with_quantity) < len(resources)  # components-only BP etc.
        assert frame["value"].notna().all() and frame["unit"].notna().all()
        assert {"29463-7", "2524-7"} <= set(frame["loinc"])  # body weight, lactate
    elif name == "conditions":
        assert len(frame) == sum(len(r["code"]["coding"]) for r in resources)
    else:
        assert len(frame) == len(resources)
