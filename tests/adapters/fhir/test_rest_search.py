"""REST-only behaviour against sekmet: ``_count`` paging, ``_summary=count``, POST ``_search``,
``_elements``."""

from __future__ import annotations

import httpx
import pytest

from adapters.fhir_rest import FhirRestSource
from tests.adapters.fhir.conftest import TOKEN
from tests.adapters.fhir.data import by_key, collect, expected, ids, keys
from tests.adapters.fhir.sekmet import SekmetServer


@pytest.mark.parametrize("rtype", ["Encounter", "Condition", "Organization", "Patient"])
async def test_paging_with_count_7_returns_every_resource_once(
    sekmet: SekmetServer, rest_source: FhirRestSource, rtype: str
) -> None:
    # The server really pages: 7 per page and a next link.
    first = httpx.get(
        f"{sekmet.base_url}/{rtype}",
        params={"_count": "7"},
        headers={"Authorization": f"Bearer {TOKEN}"},
    ).json()
    assert len(first["entry"]) == 7
    assert any(link["relation"] == "next" for link in first["link"])

    got = await collect(rest_source.search(rtype, {"_count": "7"}))
    assert keys(got) == ids(expected()[rtype])
    assert by_key(got) == by_key(expected()[rtype])


async def test_summary_count_matches_paging(rest_source: FhirRestSource) -> None:
    for rtype, resources in expected().items():
        counted = await rest_source.count(rtype)
        paged = await collect(rest_source.search(rtype, {"_count": "50"}))
        assert counted == len(resources) == len(paged)


async def test_post_search_gives_the_same_result_as_get(rest_source: FhirRestSource) -> None:
    patient = expected()["Patient"][2]["id"]
    params = {"patient": f"Patient/{patient}", "_count": "7"}
    by_get = await collect(rest_source.search("Encounter", params, post=False))
    by_post = await collect(rest_source.search("Encounter", params, post=True))
    assert by_get and keys(by_get) == keys(by_post)


async def test_long_query_switches_to_post(rest_source: FhirRestSource) -> None:
    every_id = [r["id"] for r in expected()["Encounter"]]
    params = {"_id": ",".join(every_id), "_count": "100"}
    assert len(",".join(every_id)) > 40_000  # far beyond what servers accept in a URL
    got = await collect(rest_source.search("Encounter", params))
    assert keys(got) == ids(expected()["Encounter"])


async def test_elements_returns_subsetted_resources(rest_source: FhirRestSource) -> None:
    got = await collect(rest_source.search("Patient", {"_elements": "gender,birthDate"}))
    assert keys(got) == ids(expected()["Patient"])
    for resource in got:
        assert set(resource) <= {"resourceType", "id", "meta", "gender", "birthDate"}
        assert "gender" in resource
        tags = resource["meta"].get("tag", [])
        assert any(t.get("code") == "SUBSETTED" for t in tags)


async def test_page_size_setting_adds_count(sekmet: SekmetServer) -> None:
    from adapters.fhir.auth import BearerAuth

    source = FhirRestSource(sekmet.base_url, auth=BearerAuth(TOKEN), page_size=9)
    try:
        got = await collect(source.search("Condition"))
    finally:
        await source.aclose()
    assert keys(got) == ids(expected()["Condition"])
