"""ODRL offers: JSON-LD dict -> RDF -> dict, offline contexts only."""

from __future__ import annotations

from typing import Any

import pytest
from rdflib import URIRef
from rdflib.compare import isomorphic

from catalog.odrl import PolicyError, policy_dict, policy_graph
from catalog.vocab import ODRL, PHEMS

OFFER: dict[str, Any] = {
    "@context": "https://w3id.org/dspace/2025/1/context.jsonld",
    "@id": "urn:uuid:offer-1",
    "@type": "Offer",
    "assigner": "did:web:hospital.example",
    "permission": [
        {
            "action": "use",
            "constraint": [
                {
                    "or": [
                        {"leftOperand": "purpose", "operator": "eq", "rightOperand": "research"},
                        {"leftOperand": "purpose", "operator": "eq", "rightOperand": "education"},
                    ]
                },
                {
                    "leftOperand": "https://w3id.org/phems/ns/minCellSize",
                    "operator": "gteq",
                    "rightOperand": 10,
                },
            ],
        }
    ],
}


def test_offer_round_trips_through_rdf() -> None:
    g, root = policy_graph(OFFER)
    assert root == URIRef("urn:uuid:offer-1")
    back = policy_dict(g, root)
    assert "@context" not in back
    assert back["permission"][0]["action"] == "use"
    g2, _ = policy_graph(back)
    assert isomorphic(g, g2)


def test_terms_become_odrl_and_profile_iris() -> None:
    g, _ = policy_graph(OFFER)
    assert (None, ODRL.leftOperand, PHEMS.minCellSize) in g
    assert (None, ODRL.operator, ODRL.gteq) in g
    assert (None, ODRL.action, ODRL.use) in g


def test_or_list_keeps_its_members_nested() -> None:
    g, root = policy_graph(OFFER)
    constraints = policy_dict(g, root)["permission"][0]["constraint"]
    alternatives = next(c["or"] for c in constraints if "or" in c)
    assert {a["rightOperand"] for a in alternatives} == {"research", "education"}


def test_unknown_remote_context_is_refused_not_fetched() -> None:
    with pytest.raises(PolicyError, match="not bundled"):
        policy_graph({**OFFER, "@context": "https://example.org/ctx.jsonld"})


def test_policy_needs_one_policy_type() -> None:
    with pytest.raises(PolicyError):
        policy_graph({"@id": "urn:x", "permission": []})
