"""DSP 2025-1 compact JSON of datasets."""

from __future__ import annotations

import copy
import json
from typing import Any

from catalog.cache import RenderCache
from catalog.dsp import (
    DSP_CONTEXT,
    dsp_catalog,
    dsp_catalog_bytes,
    dsp_dataset,
    with_typed_operands,
)
from catalog.model import Catalog, Dataset
from tests.catalog.dsp_schema import RIGHT_OPERAND, wire_problems


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


XSD = "http://www.w3.org/2001/XMLSchema#"
PHEMS = "https://w3id.org/phems/ns/"
NUMBERS_OFFER: dict[str, Any] = {
    "@id": "urn:offer:dp",
    "@type": "Offer",
    "permission": [
        {
            "action": "use",
            "constraint": [
                {"leftOperand": PHEMS + "epsilon", "operator": "lteq", "rightOperand": 1.0},
                {"leftOperand": PHEMS + "epsilon", "operator": "gt", "rightOperand": 1e-07},
                {"leftOperand": "odrl:count", "operator": "lteq", "odrl:rightOperand": 3},
                {"leftOperand": "x", "operator": "isAnyOf", "rightOperand": [2, False, "a"]},
                {"leftOperand": "y", "operator": "eq", "rightOperand": {"@value": 5}},
                {"leftOperand": "z", "operator": "eq", "rightOperand": {"@value": "research"}},
            ],
        }
    ],
}


def _operands(body: Any) -> dict[str, Any]:
    """Each constraint's right operand by leftOperand and operator (``eq`` keys keep the last)."""
    found: dict[str, Any] = {}
    if isinstance(body, list):
        for item in body:
            found |= _operands(item)
    elif isinstance(body, dict):
        for key in RIGHT_OPERAND:
            if key in body:
                found[f"{body['leftOperand']} {body['operator']}"] = body[key]
        for value in body.values():
            found |= _operands(value)
    return found


def test_offers_on_the_wire_fit_the_dsp_schema(catalog: Catalog, dataset: Dataset) -> None:
    ds = dataset.model_copy(update={"policies": (*dataset.policies, NUMBERS_OFFER)})
    stored = copy.deepcopy(ds.policies)
    assert wire_problems(list(stored))  # as the hospital wrote them: plain numbers, booleans
    one = dsp_dataset(ds, with_context=True)
    body = dsp_catalog(catalog, [ds], participant_id="did:web:x")
    raw = dsp_catalog_bytes(catalog, [ds], participant_id="did:web:x", cache=RenderCache())
    for sent in (one, body, json.loads(raw)):
        assert wire_problems(sent) == []
    assert ds.policies == stored  # what is stored (and the management API shows) is untouched
    operands = _operands(one["hasPolicy"])
    assert operands[PHEMS + "membership eq"] == {"@value": "true", "@type": XSD + "boolean"}
    assert operands[PHEMS + "minCellSize gteq"] == {"@value": "10", "@type": XSD + "integer"}
    assert operands[PHEMS + "epsilon lteq"] == {"@value": "1.0", "@type": XSD + "decimal"}
    assert operands[PHEMS + "epsilon gt"] == {"@value": "0.0000001", "@type": XSD + "decimal"}
    assert operands["odrl:count lteq"] == {"@value": "3", "@type": XSD + "integer"}
    assert operands["x isAnyOf"] == [
        {"@value": "2", "@type": XSD + "integer"},
        {"@value": "false", "@type": XSD + "boolean"},
        "a",
    ]
    assert operands["y eq"] == {"@value": "5", "@type": XSD + "integer"}
    assert operands["z eq"] == {"@value": "research"}  # strings and typed literals as written
    assert operands["dateTime lteq"] == {"@value": "2027-12-31T23:59:59Z", "@type": "xsd:dateTime"}
    assert operands["purpose eq"] == "research"


def test_with_typed_operands_keeps_the_rest_of_a_message_offer() -> None:
    inline = {"@context": {"p": PHEMS}, "target": "ds", **NUMBERS_OFFER}
    sent = with_typed_operands(inline)
    assert wire_problems(sent) == [] and wire_problems(inline)
    assert {k: v for k, v in sent.items() if k != "permission"} == {
        k: v for k, v in inline.items() if k != "permission"
    }


def test_empty_catalog_has_no_dataset_key(catalog: Catalog) -> None:
    body = dsp_catalog(catalog, [], participant_id="did:web:x")
    raw = dsp_catalog_bytes(catalog, [], participant_id="did:web:x", cache=RenderCache())
    assert "dataset" not in body and json.loads(raw) == body
    assert body["@type"] == "Catalog" and body["service"][0]["@type"] == "DataService"
    assert wire_problems(body) == []
