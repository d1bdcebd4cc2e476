from __future__ import annotations

from typing import Any

import pytest

from connector.errors import PolicyDefinitionError
from connector.policy import describe_policy, validate_policy
from tests.policy.helpers import CALLER, PHEMS, c, offer


def test_catalog_example_in_operand_order() -> None:
    # Written in a different order than it reads.
    body = offer(
        c("phems:membership", "eq", True),
        c(PHEMS + "outputType", "eq", "aggregate"),
        c("phems:minCellSize", "gteq", 10),
        c("odrl:dateTime", "lteq", "2027-12-31"),
        c("purpose", "eq", "research"),
    )
    expected = (
        "research only, until 2027-12-31, results of 10 persons or more, "
        "aggregate results only, members of the data space"
    )
    assert describe_policy(body) == expected
    assert describe_policy(validate_policy(body)) == expected


@pytest.mark.parametrize(
    ("constraint", "words"),
    [
        (c("purpose", "isAnyOf", ["research", "care", "education"]),
         "care, education or research only"),
        (c("purpose", "eq", {"@id": "https://w3id.org/dpv#AcademicResearch"}),
         "academic research only"),
        (c("purpose", "isNoneOf", ["marketing"]), "not for marketing"),
        (c("dateTime", "gteq", "2026-01-01"), "from 2026-01-01"),
        (c("dateTime", "lt", "2027-01-01T12:30:00Z"), "before 2027-01-01 12:30:00 UTC"),
        (c("count", "lteq", 1), "at most 1 use"),
        (c("count", "lt", 5), "at most 4 uses"),
        (c("count", "lt", 1), "no uses"),
        (c("spatial", "isPartOf", "EU"), "within EU"),
        (c("spatial", "isAnyOf", ["DE", "AT"]), "in AT or DE only"),
        (c("spatial", "neq", "US"), "not in US"),
        (c("recipient", "eq", CALLER), f"only for {CALLER}"),
        (c("phems:outputType", "isAnyOf", ["synthetic", "aggregate"]),
         "aggregate or synthetic results only"),
        (c("phems:outputType", "neq", "anonymized"), "no anonymized results"),
        (c("phems:minCellSize", "gt", 4), "results of more than 4 persons"),
        (c("phems:epsilon", "lteq", 1.0), "privacy budget epsilon 1"),
        (c("phems:epsilon", "lt", 0.5), "privacy budget epsilon below 0.5"),
        (c("phems:dataPermit", "eq", True), "with a data permit for this dataset and purpose"),
        ({"or": [c("phems:membership", "eq", True), c("phems:dataPermit", "eq", True)]},
         "(members of the data space or with a data permit for this dataset and purpose)"),
        ({"xone": [c("purpose", "eq", "a"), c("purpose", "eq", "b")]},
         "exactly one of (a only; b only)"),
        ({"andSequence": [c("purpose", "eq", "b"), c("purpose", "eq", "a")]},
         "(b only, then a only)"),
    ],
)  # fmt: skip
def test_phrases(constraint: dict[str, Any], words: str) -> None:
    assert describe_policy(offer(constraint)) == words


def test_rules_other_than_constraints() -> None:
    body = offer(
        c("purpose", "eq", "research"),
        prohibition=[
            {"action": "distribute"},
            {"action": "use", "constraint": [c("phems:outputType", "eq", "anonymized")]},
        ],
        obligation=[{"action": "delete", "constraint": [c("dateTime", "gteq", "2028-01-01")]}],
    )
    body["permission"][0]["duty"] = [{"action": "attribute"}]
    assert describe_policy(body) == (
        "research only, must attribute, must not distribute, "
        "must not use when anonymized results only, must delete when from 2028-01-01"
    )


def test_no_restrictions_and_invalid_policy() -> None:
    assert describe_policy(offer()) == "no restrictions"
    with pytest.raises(PolicyDefinitionError):
        describe_policy(offer(c("colour", "eq", "blue")))


def test_approval_is_described() -> None:
    body = {**offer(c("purpose", "eq", "research")), PHEMS + "approvalRequired": True}
    assert describe_policy(body) == (
        "research only, each request approved by the data protection officer"
    )
