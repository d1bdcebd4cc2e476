"""The consumer counter-signs only the terms it negotiated."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from connector.errors import InvalidMessageError
from connector.exchange.negotiations import NegotiationService

OFFER: dict[str, Any] = {
    "@id": "offer-1",
    "@type": "Offer",
    "target": "ds",
    "permission": [
        {
            "action": "use",
            "constraint": [
                {"leftOperand": "purpose", "operator": "eq", "rightOperand": "research"},
                {
                    "leftOperand": "https://w3id.org/phems/ns/minCellSize",
                    "operator": "gteq",
                    "rightOperand": 10,
                },
            ],
        }
    ],
}


def agreement(**changes: Any) -> dict[str, Any]:
    a = copy.deepcopy(OFFER) | {
        "@id": "urn:uuid:a",
        "@type": "Agreement",
        "assigner": "did:web:p",
        "assignee": "did:web:c",
        "timestamp": "2026-11-28T12:00:00Z",
        "https://w3id.org/phems/ns/signature": "x.y.z",
    }
    return a | changes


def test_same_terms_pass() -> None:
    NegotiationService._check_terms(agreement(), OFFER)


@pytest.mark.parametrize(
    "changed",
    [
        {"target": "another-dataset"},
        {
            "permission": [
                {
                    "action": "use",
                    "constraint": [
                        {"leftOperand": "purpose", "operator": "eq", "rightOperand": "research"}
                    ],
                }
            ]
        },
        {"prohibition": [{"action": "use"}]},
    ],
    ids=["other-target", "dropped-constraint", "added-prohibition"],
)
def test_changed_terms_refused(changed: dict[str, Any]) -> None:
    with pytest.raises(InvalidMessageError, match="differ|target"):
        NegotiationService._check_terms(agreement(**changed), OFFER)
