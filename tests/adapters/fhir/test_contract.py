"""The ``FhirSource`` contract, run against every implementation over the same data.

The expected answers come from reading the shared NDJSON files directly (``data.py``), never
from either source.
"""

from __future__ import annotations

import pytest

from connector.errors import FhirSourceError
from connector.ports import FhirSource
from tests.adapters.fhir.data import by_key, collect, expected, ids, keys, patient_refs

TYPES = sorted(expected())


async def test_resource_types_cover_the_data(source: FhirSource) -> None:
    types = await source.resource_types()
    assert set(TYPES) <= set(types)
    assert types == sorted(types)


@pytest.mark.parametrize("rtype", TYPES)
async def test_search_yields_every_resource_exactly_once(source: FhirSource, rtype: str) -> None:
    got = await collect(source.search(rtype))
    assert keys(got) == ids(expected()[rtype])  # a list: a duplicate would show
    assert by_key(got) == by_key(expected()[rtype])


@pytest.mark.parametrize("rtype", TYPES)
async def test_count_matches_the_data(source: FhirSource, rtype: str) -> None:
    assert await source.count(rtype) == len(expected()[rtype])


async def test_search_by_id(source: FhirSource) -> None:
    patients = expected()["Patient"]
    wanted = [patients[0]["id"], patients[-1]["id"]]
    got = await collect(source.search("Patient", {"_id": ",".join(wanted)}))
    assert sorted(r["id"] for r in got) == sorted(wanted)
    assert await source.count("Patient", {"_id": wanted[0]}) == 1


@pytest.mark.parametrize("rtype", ["Encounter", "Condition", "Immunization", "AllergyIntolerance"])
async def test_search_by_patient_reference(source: FhirSource, rtype: str) -> None:
    for patient in expected()["Patient"][:4]:
        ref = f"Patient/{patient['id']}"
        want = [r for r in expected()[rtype] if ref in patient_refs(r)]
        got = await collect(source.search(rtype, {"patient": ref}))
        assert keys(got) == ids(want)
        assert await source.count(rtype, {"patient": ref}) == len(want)


async def test_search_by_subject_reference(source: FhirSource) -> None:
    patient = expected()["Patient"][1]
    ref = f"Patient/{patient['id']}"
    want = [r for r in expected()["Condition"] if r.get("subject", {}).get("reference") == ref]
    assert want, "fixture patient without conditions"
    got = await collect(source.search("Condition", {"subject": ref}))
    assert keys(got) == ids(want)


async def test_count_param_does_not_limit_the_result(source: FhirSource) -> None:
    got = await collect(source.search("Patient", {"_count": "5"}))
    assert keys(got) == ids(expected()["Patient"])


@pytest.mark.parametrize("value", ["0", "-5", "ten", ""])
async def test_count_param_must_be_a_page_size(source: FhirSource, value: str) -> None:
    # FHIR's _count=0 means "the total only"; search promises every match, so both sources
    # refuse it alike instead of returning nothing (REST) or ignoring it (files).
    problem = f"search Patient: _count={value!r} is not a page size"
    with pytest.raises(FhirSourceError, match=problem):
        await collect(source.search("Patient", {"_count": value}))
    with pytest.raises(FhirSourceError, match=problem):
        await source.count("Patient", {"_count": value})


async def test_summary_count_is_not_a_search(source: FhirSource) -> None:
    with pytest.raises(FhirSourceError, match="_summary"):
        await collect(source.search("Patient", {"_summary": "count"}))


async def test_type_without_data_is_empty(source: FhirSource) -> None:
    assert await collect(source.search("Observation")) == []
    assert await source.count("Observation") == 0


async def test_unsupported_parameter_raises_instead_of_being_ignored(source: FhirSource) -> None:
    with pytest.raises(FhirSourceError):
        await collect(source.search("Patient", {"no-such-parameter": "x"}))


async def test_version_is_stable_while_data_is_unchanged(source: FhirSource) -> None:
    first = await source.version()
    assert isinstance(first, str) and first
    assert await source.version() == first
