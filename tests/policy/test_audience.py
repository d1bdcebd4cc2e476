"""``names_recipients``: which offers are between the provider and named recipients only."""

from __future__ import annotations

from typing import Any

import pytest

from connector.policy import names_recipients, validate_policy
from tests.policy.helpers import c, offer, policy

A, B = "did:web:a.example", "did:web:b.example"


@pytest.mark.parametrize(
    ("constraints", "named"),
    [
        ((), False),
        ((c("purpose", "eq", "research"),), False),
        ((c("recipient", "eq", A),), True),
        ((c("recipient", "isAnyOf", [A, B]),), True),
        ((c("recipient", "neq", A),), False),
        ((c("recipient", "isNoneOf", [A]),), False),
        ((c("purpose", "eq", "research"), c("recipient", "eq", A)), True),
        (({"and": [c("purpose", "eq", "research"), c("recipient", "eq", A)]},), True),
        (({"or": [c("recipient", "eq", A), c("recipient", "eq", B)]},), True),
        (({"or": [c("recipient", "eq", A), c("purpose", "eq", "research")]},), False),
        (({"xone": [c("recipient", "eq", A), c("recipient", "eq", B)]},), True),
    ],
)
def test_one_permission(constraints: tuple[dict[str, Any], ...], named: bool) -> None:
    assert names_recipients(policy(*constraints)) is named


def test_every_permission_must_name_recipients() -> None:
    body = offer(c("recipient", "eq", A))
    body["permission"].append({"action": "use", "constraint": [c("purpose", "eq", "research")]})
    assert not names_recipients(validate_policy(body))


def test_a_policy_without_permissions_restricts_nobody() -> None:
    body = {"@id": "urn:o", "@type": "Offer", "prohibition": [{"action": "distribute"}]}
    assert not names_recipients(validate_policy(body))
