from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from catalog.examples import example_policies
from connector.dsp.messages import dump, parse_message
from connector.dsp.negotiation_messages import ContractAgreementMessage
from connector.errors import PolicyDefinitionError
from connector.identity.agreements import agreement_payload, sign_agreement, with_signature
from connector.identity.signing import decode_jws_unverified, generate_key, verify_jws
from connector.policy import make_agreement, to_jsonld, validate_policy
from tests.catalog.dsp_schema import wire_problems
from tests.policy.helpers import PHEMS, c, offer

XSD = "http://www.w3.org/2001/XMLSchema#"


def test_to_jsonld_uses_dsp_terms_and_round_trips() -> None:
    body = offer(
        c("odrl:purpose", "odrl:isAnyOf", ["care", "research"]),
        c("dateTime", "lteq", "2027-12-31"),
        c("dateTime", "gt", "2026-01-01T10:00:00+02:00"),
        c(PHEMS + "epsilon", "lteq", "0.123456789012345678901"),
        c("phems:epsilon", "lt", 2),
        {"xone": [c("spatial", "isPartOf", "EU"), c("recipient", "eq", "did:web:a")]},
        prohibition=[{"action": "distribute"}],
        obligation=[{"action": "delete", "constraint": [c("dateTime", "gteq", "2028-01-01")]}],
    )
    policy = validate_policy(body)
    out = to_jsonld(policy)
    json.dumps(out)  # plain JSON, no enums or Decimals
    constraints = out["permission"][0]["constraint"]
    lefts = {item.get("leftOperand") for item in constraints}
    assert {"purpose", "dateTime", PHEMS + "epsilon"} <= lefts
    assert {"leftOperand": "dateTime", "operator": "gt", "rightOperand": {
        "@value": "2026-01-01T08:00:00Z", "@type": XSD + "dateTime"}} in constraints  # fmt: skip
    assert {"leftOperand": PHEMS + "epsilon", "operator": "lteq", "rightOperand": {
        "@value": "0.123456789012345678901", "@type": XSD + "decimal"}} in constraints  # fmt: skip
    assert out["prohibition"] == [{"action": "distribute"}]
    assert validate_policy(out) == policy
    flagged = validate_policy({**body, PHEMS + "approvalRequired": True})
    assert to_jsonld(flagged)[PHEMS + "approvalRequired"] is True
    assert validate_policy(to_jsonld(flagged)) == flagged
    agreement = make_agreement(
        flagged, agreement_id="a", target="t", assigner="p", assignee="c",
        timestamp=datetime(2026, 1, 1, tzinfo=UTC),
    )  # fmt: skip
    assert PHEMS + "approvalRequired" not in agreement


def test_make_agreement() -> None:
    body = offer(c("purpose", "eq", "research"), uid="urn:offer:1",
                 prohibition=[{"action": "distribute"}])  # fmt: skip
    agreement = make_agreement(
        body,
        agreement_id="urn:uuid:agreement-1",
        target="urn:dataset:asthma",
        assigner="did:web:hospital.example",
        assignee="did:web:researcher.example",
        timestamp=datetime(2026, 6, 15, 14, 0, 0, 123, tzinfo=timezone(timedelta(hours=2))),
    )
    assert agreement == {
        "@id": "urn:uuid:agreement-1",
        "@type": "Agreement",
        "target": "urn:dataset:asthma",
        "assigner": "did:web:hospital.example",
        "assignee": "did:web:researcher.example",
        "timestamp": "2026-06-15T12:00:00Z",
        "permission": [
            {
                "action": "use",
                "constraint": [
                    {"leftOperand": "purpose", "operator": "eq", "rightOperand": "research"}
                ],
            }
        ],
        "prohibition": [{"action": "distribute"}],
    }
    rfc8785.dumps(agreement)  # canonicalisable for signing
    parsed = validate_policy(agreement)
    assert parsed.rules == validate_policy(body).rules
    assert (parsed.uid, parsed.assignee) == ("urn:uuid:agreement-1", "did:web:researcher.example")


def test_non_string_right_operands_are_typed_literals() -> None:
    body = offer(
        c("phems:membership", "eq", True),
        c("phems:minCellSize", "gteq", 10),
        c("count", "lteq", 0),
        c("phems:epsilon", "lteq", 1.0),
        c("phems:epsilon", "lt", 100),
        c("phems:epsilon", "eq", "0.0000001"),
        c("phems:outputType", "isAnyOf", ["aggregate", "synthetic"]),
    )
    assert wire_problems(body)  # the plain JSON numbers and booleans a hospital writes
    out = to_jsonld(validate_policy(body))
    assert wire_problems(out) == []
    constraints = out["permission"][0]["constraint"]
    right = {(n["leftOperand"], n["operator"]): n["rightOperand"] for n in constraints}
    assert right[PHEMS + "membership", "eq"] == {"@value": "true", "@type": XSD + "boolean"}
    assert right[PHEMS + "minCellSize", "gteq"] == {"@value": "10", "@type": XSD + "integer"}
    assert right["count", "lteq"] == {"@value": "0", "@type": XSD + "integer"}
    # Exact fixed-point text: never a float, never 1E+2 or 1E-7.
    assert right[PHEMS + "epsilon", "lteq"] == {"@value": "1", "@type": XSD + "decimal"}
    assert right[PHEMS + "epsilon", "lt"] == {"@value": "100", "@type": XSD + "decimal"}
    assert right[PHEMS + "epsilon", "eq"] == {"@value": "0.0000001", "@type": XSD + "decimal"}
    assert right[PHEMS + "outputType", "isAnyOf"] == ["aggregate", "synthetic"]
    assert validate_policy(out) == validate_policy(body)


def test_agreement_message_fits_the_dsp_schema_and_is_signed_as_sent() -> None:
    """The ContractAgreementMessage for a stored offer with plain numbers and booleans."""
    stored = example_policies("ds", base_url="https://hospital.example")[0]
    agreement = make_agreement(
        stored, agreement_id="urn:uuid:a", target="ds", assigner="did:web:p",
        assignee="did:web:c", timestamp=datetime(2026, 1, 1, tzinfo=UTC),
    )  # fmt: skip
    key = generate_key("Ed25519")
    signature = sign_agreement(agreement, "did:web:p", key)
    message = ContractAgreementMessage.model_validate(
        {"providerPid": "p", "consumerPid": "c", "agreement": with_signature(agreement, signature)}
    )
    sent = json.loads(json.dumps(dump(message)))
    assert wire_problems(sent) == []
    received = parse_message(sent, ContractAgreementMessage).agreement
    assert decode_jws_unverified(signature)[1] == agreement_payload(received)
    assert verify_jws(signature, key.public_jwk())[1] == agreement_payload(received)
    # The terms read the same as the stored offer's, and as an agreement made before (plain
    # numbers, which still verify: the signature is over the agreement's own JSON).
    assert validate_policy(received).rules == validate_policy(stored).rules
    old = {**agreement, "permission": stored["permission"]}
    assert validate_policy(old).rules == validate_policy(received).rules


def test_make_agreement_refusals() -> None:
    args: dict[str, Any] = {
        "agreement_id": "a",
        "target": "urn:dataset:asthma",
        "assigner": "p",
        "assignee": "c",
        "timestamp": datetime(2026, 1, 1, tzinfo=UTC),
    }
    with pytest.raises(PolicyDefinitionError, match="not for urn:dataset:asthma"):
        make_agreement(offer(target="urn:dataset:other"), **args)
    with pytest.raises(PolicyDefinitionError, match="from an Offer"):
        make_agreement({"@type": "Agreement"}, **args)
    with pytest.raises(PolicyDefinitionError, match="timezone-aware"):
        make_agreement(offer(), **{**args, "timestamp": datetime(2026, 1, 1)})
    with pytest.raises(PolicyDefinitionError, match="unknown leftOperand"):
        make_agreement(offer(c("phems:foo", "eq", 1)), **args)


# --- property: any valid policy survives to_jsonld -> validate_policy ------------------

_words = st.sampled_from(["research", "care", "https://w3id.org/dpv#AcademicResearch", "ads"])
_leaves = st.one_of(
    st.builds(lambda v: c("purpose", "eq", v), _words),
    st.builds(lambda vs: c("purpose", "isNoneOf", vs), st.lists(_words, min_size=1, max_size=3)),
    st.builds(lambda n: c("count", "lteq", n), st.integers(0, 10**6)),
    st.builds(lambda n: c("phems:minCellSize", "gteq", n), st.integers(1, 1000)),
    st.builds(
        lambda d: c("phems:epsilon", "lteq", str(d)),
        st.decimals(min_value=Decimal("0.0001"), max_value=100, places=4),
    ),
    st.builds(
        lambda t: c("dateTime", "lt", t.isoformat()),
        st.datetimes(
            min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
        ),
    ),  # fmt: skip
    st.builds(lambda d: c("dateTime", "gteq", d.isoformat()), st.dates()),
    st.builds(
        lambda vs: c("phems:outputType", "isAnyOf", vs),
        st.lists(st.sampled_from(["aggregate", "synthetic", "anonymized"]), min_size=1),
    ),
    st.builds(lambda p: c("spatial", "isPartOf", p), st.sampled_from(["EU", "EEA", "DEU", "fr"])),
    st.just(c("phems:membership", "eq", True)),
    st.just(c("phems:dataPermit", "eq", True)),
)
_nodes = st.recursive(
    _leaves,
    lambda inner: st.builds(
        lambda logic, members: {logic: members},
        st.sampled_from(["and", "or", "xone", "andSequence"]),
        st.lists(inner, min_size=1, max_size=3),
    ),
    max_leaves=8,
)


@settings(max_examples=60, deadline=None)
@given(st.lists(_nodes, max_size=4))
def test_round_trip_property(constraints: list[dict[str, Any]]) -> None:
    policy = validate_policy(offer(*constraints))
    assert validate_policy(to_jsonld(policy)) == policy
    assert validate_policy(json.loads(json.dumps(to_jsonld(policy)))) == policy
