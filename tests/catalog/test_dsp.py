"""DSP 2025-1 compact JSON of datasets."""

from __future__ import annotations

import json

from catalog.cache import RenderCache
from catalog.dsp import DSP_CONTEXT, dsp_catalog, dsp_catalog_bytes, dsp_dataset
from catalog.model import Catalog, Dataset


def test_dsp_dataset(dataset: Dataset) -> None:
    body = dsp_dataset(dataset, with_context=True)
    assert body["@context"] == [DSP_CONTEXT]
    assert body["@id"] == dataset.identifier and body["@type"] == "Dataset"
    assert {d["format"] for d in body["distribution"]} == {
        "FHIR-Aggregate-PULL",
        "FHIR-Synthetic-PULL",
    }
    assert body["distribution"][0]["accessService"]["endpointURL"].endswith("/dsp/2025-1")
    assert [o["@type"] for o in body["hasPolicy"]] == ["Offer", "Offer"]
    assert all("@context" not in o for o in body["hasPolicy"])


def test_dsp_catalog(catalog: Catalog, several: list[Dataset]) -> None:
    body = dsp_catalog(catalog, several[:2], participant_id="did:web:127.0.0.1%3A8080")
    assert body["@type"] == "Catalog" and body["participantId"] == "did:web:127.0.0.1%3A8080"
    assert [d["@id"] for d in body["dataset"]] == [several[0].identifier, several[1].identifier]
    assert body["service"][0]["@type"] == "DataService"
    assert "@context" not in body["dataset"][0]


def test_dsp_catalog_bytes_equal_the_dict_and_reuse_fragments(
    catalog: Catalog, several: list[Dataset]
) -> None:
    cache = RenderCache()
    raw = dsp_catalog_bytes(catalog, several, participant_id="did:web:x", cache=cache)
    assert json.loads(raw) == dsp_catalog(catalog, several, participant_id="did:web:x")
    assert (cache.misses, cache.hits) == (5, 0)
    assert dsp_catalog_bytes(catalog, several[:2], participant_id="did:web:x", cache=cache)
    assert (cache.misses, cache.hits) == (5, 2)
