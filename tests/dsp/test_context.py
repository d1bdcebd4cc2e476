"""The bundled 2025-1 context: its content, that it is never fetched, and that our lenient
reading of prefixed / expanded forms agrees with what JSON-LD (rdflib) says they mean."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from rdflib import RDF, Graph, URIRef
from rdflib.compare import isomorphic

from connector.dsp import messages as m
from connector.dsp.context import (
    DCAT,
    DSP_CONTEXT_URL,
    DSPACE,
    ODRL_PROFILE_URL,
    bundled_document,
    compact_iri,
    dsp_context,
    expand_iri,
    normalize,
)
from tests.dsp.examples import EXAMPLE_TYPES, example


def test_bundled_context_is_the_2025_1_one() -> None:
    ctx = dsp_context()
    assert ctx["dspace"] == "https://w3id.org/dspace/2025/1/" == DSPACE
    assert ctx["@protected"] is True and ctx["@version"] == 1.1
    assert ctx["ContractRequestMessage"]["@context"]["@import"] == ODRL_PROFILE_URL
    # 2025-1 dropped callbackAddress from the agreement message.
    assert "callbackAddress" not in ctx["ContractAgreementMessage"]["@context"]
    for state in ("REQUESTED", "OFFERED", "ACCEPTED", "AGREED", "VERIFIED", "FINALIZED"):
        assert ctx[state] == f"dspace:{state}"


@pytest.mark.parametrize("type_name", sorted(m.MESSAGE_TYPES))
def test_every_message_type_is_a_context_term(type_name: str) -> None:
    cls = m.MESSAGE_TYPES[type_name]
    iri = expand_iri(dsp_context()[cls.TYPE]["@id"])
    assert iri in (DSPACE + cls.TYPE, DCAT + cls.TYPE)
    assert compact_iri(iri) == cls.TYPE


def test_only_bundled_documents_are_served() -> None:
    assert bundled_document(DSP_CONTEXT_URL)["@context"] is not None
    assert "Offer" in bundled_document(ODRL_PROFILE_URL)["@context"]
    with pytest.raises(KeyError):
        bundled_document("https://w3id.org/dspace/2024/1/context.json")


def test_compact_iri_leaves_unknown_values_alone() -> None:
    assert compact_iri("dspace:ContractOfferMessage") == "ContractOfferMessage"
    assert compact_iri("http://www.w3.org/ns/odrl/2/Agreement") == "Agreement"
    assert compact_iri("https://example.org/Other") == "https://example.org/Other"
    assert compact_iri("urn:uuid:1") == "urn:uuid:1"


def test_normalize_does_not_touch_policies() -> None:
    offer = {"odrl:target": [{"@id": "urn:d"}], "@type": ["odrl:Offer"], "@id": "urn:o"}
    out = normalize({"@type": "ContractRequestMessage", "dspace:offer": offer})
    assert out["offer"] == offer


# --- agreement with JSON-LD semantics -----------------------------------------------------


def _inlined_context() -> dict[str, Any]:
    """The bundled context with the ODRL profile import inlined (rdflib does not load
    ``@import``); nothing is fetched."""
    ctx = copy.deepcopy(dsp_context())
    odrl = bundled_document(ODRL_PROFILE_URL)["@context"]
    for definition in ctx.values():
        scoped = definition.get("@context") if isinstance(definition, dict) else None
        if isinstance(scoped, dict) and scoped.pop("@import", None):
            for term, value in odrl.items():
                scoped.setdefault(term, value)
    return ctx


def _graph(body: dict[str, Any]) -> Graph:
    doc = dict(body)
    if doc.get("@context") == [DSP_CONTEXT_URL]:
        doc["@context"] = _inlined_context()
    doc.setdefault("@id", "urn:test:message")
    return Graph().parse(data=json.dumps(doc), format="json-ld")


@pytest.mark.parametrize("name", sorted(EXAMPLE_TYPES))
def test_examples_expand_to_their_type_under_the_bundled_context(name: str) -> None:
    body = example(name)
    graph = _graph(body)
    types = set(graph.objects(URIRef(body.get("@id", "urn:test:message")), RDF.type))
    cls = EXAMPLE_TYPES[name]
    assert types & {URIRef(DSPACE + cls.TYPE), URIRef(DCAT + cls.TYPE)}


PREFIXED_CONTEXT = {
    "dspace": DSPACE,
    "dct": "http://purl.org/dc/terms/",
    "odrl": "http://www.w3.org/ns/odrl/2/",
}
PREFIXED = [
    {
        "@context": PREFIXED_CONTEXT,
        "@id": "urn:test:message",
        "@type": "dspace:TransferRequestMessage",
        "dspace:consumerPid": {"@id": "urn:uuid:c"},
        "dspace:agreementId": {"@id": "urn:agreement:1"},
        "dct:format": {"@id": "dspace:FHIR-Aggregate-PULL"},
        "dspace:callbackAddress": "https://consumer.example/cb",
    },
    {
        "@context": PREFIXED_CONTEXT,
        "@id": "urn:test:message",
        "@type": ["dspace:ContractNegotiationEventMessage"],
        "dspace:providerPid": {"@id": "urn:uuid:p"},
        "dspace:consumerPid": {"@id": "urn:uuid:c"},
        "dspace:eventType": {"@id": "dspace:FINALIZED"},
    },
    {
        "@id": "urn:test:message",
        "@type": f"{DSPACE}TransferTerminationMessage",
        f"{DSPACE}providerPid": [{"@id": "urn:uuid:p"}],
        f"{DSPACE}consumerPid": [{"@id": "urn:uuid:c"}],
        f"{DSPACE}code": [{"@value": "E1"}],
        f"{DSPACE}reason": [{"@value": "agreement expired"}, {"@value": "second"}],
    },
]


@pytest.mark.parametrize("body", PREFIXED, ids=["request", "event", "expanded-termination"])
def test_prefixed_and_expanded_forms_read_as_json_ld_means(body: dict[str, Any]) -> None:
    parsed = m.parse_any(body)
    ours = m.dump(parsed)
    assert isomorphic(_graph(ours), _graph(body))
