from __future__ import annotations

import copy
from typing import Any

import pytest

from catalog.dsp import dsp_dataset
from catalog.examples import example_dataset
from connector.errors import PolicyDefinitionError
from connector.policy import offers_match, to_jsonld, validate_policy
from tests.catalog.dsp_schema import wire_problems
from tests.policy.helpers import PHEMS, c, offer

ODRL = "http://www.w3.org/ns/odrl/2/"
DATASET = "urn:dataset:asthma"


def stored() -> dict[str, Any]:
    """As listed in the catalog: an Offer without target."""
    return offer(
        c("purpose", "eq", "research"),
        c("phems:minCellSize", "gteq", 10),
        {"or": [c("phems:membership", "eq", True), c("phems:dataPermit", "eq", True)]},
        uid="urn:offer:asthma-1",
        assigner="did:web:hospital.example",
    )


def requested() -> dict[str, Any]:
    """As a consumer sends it in a ContractRequestMessage: with target."""
    body = stored()
    body["target"] = DATASET
    return body


def test_echoed_offer_matches() -> None:
    match = offers_match(requested(), stored(), dataset_id=DATASET)
    assert match and match.reason == ""


def test_typed_literal_and_plain_json_offers_match_both_ways() -> None:
    typed_request = to_jsonld(validate_policy(requested()))
    typed_stored = to_jsonld(validate_policy(stored()))
    assert wire_problems(requested()) and wire_problems(typed_request) == []
    # A consumer echoing our catalog (typed literals) against what the hospital wrote ...
    assert offers_match(typed_request, stored(), dataset_id=DATASET)
    # ... and an older peer echoing plain numbers against a typed stored offer.
    assert offers_match(requested(), typed_stored, dataset_id=DATASET)
    loosened = copy.deepcopy(typed_request)
    for node in loosened["permission"][0]["constraint"]:
        if node.get("leftOperand") == PHEMS + "minCellSize":
            node["rightOperand"] = {"@value": "5", "@type": node["rightOperand"]["@type"]}
    assert not offers_match(loosened, stored(), dataset_id=DATASET)


def test_offers_as_our_catalog_serves_them_match_the_stored_ones() -> None:
    ds = example_dataset()
    for served, kept in zip(dsp_dataset(ds)["hasPolicy"], ds.policies, strict=True):
        assert wire_problems(served) == [] and wire_problems(kept)
        echoed = served | {"target": ds.identifier}
        assert offers_match(echoed, kept, dataset_id=ds.identifier)


def test_different_spelling_and_order_still_matches() -> None:
    body = {
        "@id": "urn:offer:asthma-1",
        "@type": ODRL + "Offer",
        "odrl:target": {"@id": DATASET},
        ODRL + "permission": [
            {
                "odrl:action": {"@id": "odrl:use"},
                "odrl:constraint": [
                    {"odrl:or": [
                        c(PHEMS + "dataPermit", ODRL + "eq", {"@value": "true"}),
                        c(PHEMS + "membership", "odrl:eq", True),
                    ]},
                    c(PHEMS + "minCellSize", "gteq", {"@value": "10", "@type": "xsd:integer"}),
                    c(ODRL + "purpose", "eq", {"@value": "research"}),
                ],
            }
        ],
    }  # fmt: skip
    assert offers_match(body, stored(), dataset_id=DATASET)
    assert offers_match(validate_policy(body), validate_policy(stored()))


def _edit(path: list[Any], value: Any) -> dict[str, Any]:
    body = requested()
    node: Any = body
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return body


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        # Same id, loosened constraint: the attack this check exists for.
        (_edit(["permission", 0, "constraint", 1, "rightOperand"], 5), "was changed"),
        (_edit(["permission", 0, "constraint", 0, "rightOperand"], "marketing"), "was changed"),
        (_edit(["permission", 0, "constraint", 1, "operator"], "gt"), "was changed"),
        (_edit(["permission", 0, "constraint"], []), "was changed"),
        (_edit(["permission", 0, "action"], "read"), "was changed"),
        (_edit(["permission", 0, "constraint", 2, "or"], [c("phems:membership", "eq", True)]),
         "was changed"),
        (_edit(["prohibition"], []), None),  # an empty list adds nothing: still a match
        (_edit(["obligation"], [{"action": "delete"}]), "was changed"),
        (_edit(["@id"], "urn:offer:other"), "is not the offered"),
        (_edit(["target"], "urn:dataset:other"), "not dataset"),
        (_edit(["assigner"], "did:web:impostor.example"), "assigner"),
        (_edit(["@type"], "Agreement"), "not an Offer"),
        (_edit(["permission", 0, "constraint", 1, "leftOperand"], "phems:kAnon"),
         "not a valid policy: unknown leftOperand"),
    ],
)  # fmt: skip
def test_mismatch_is_detected_with_reason(body: dict[str, Any], reason: str | None) -> None:
    match = offers_match(body, stored(), dataset_id=DATASET)
    if reason is None:
        assert match
    else:
        assert not match
        assert reason in match.reason


def test_changed_constraint_reason_says_what_differs() -> None:
    body = _edit(["permission", 0, "constraint", 1, "rightOperand"], 5)
    reason = offers_match(body, stored()).reason
    assert "results of 5 persons or more" in reason
    assert "results of 10 persons or more" in reason


def test_missing_id_and_missing_target() -> None:
    body = requested()
    del body["@id"]
    assert "offer id None" in offers_match(body, stored()).reason
    untargeted = stored()
    assert offers_match(untargeted, stored())  # no dataset given: target not required
    assert "targets None" in offers_match(untargeted, stored(), dataset_id=DATASET).reason


def test_stored_offer_with_target_requires_the_same_target() -> None:
    mine = requested()
    other = copy.deepcopy(mine)
    other["target"] = "urn:dataset:other"
    assert not offers_match(other, mine)


def test_invalid_stored_offer_is_our_error() -> None:
    with pytest.raises(PolicyDefinitionError):
        offers_match(requested(), offer(c("foo", "eq", 1)))


def test_approval_flag_is_the_providers_business() -> None:
    mine = stored()
    mine[PHEMS + "approvalRequired"] = True
    assert offers_match(requested(), mine, dataset_id=DATASET)
