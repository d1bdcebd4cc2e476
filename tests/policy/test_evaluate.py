from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from connector.errors import PolicyViolationError
from connector.policy import (
    Decision,
    LeftOperand,
    Scope,
    evaluate,
    validate_policy,
)
from tests.policy.helpers import (
    AUTHORITY,
    CALLER,
    HDAB,
    NOW,
    PHEMS,
    c,
    ctx,
    membership,
    offer,
    permit,
    policy,
)

ODRL = "http://www.w3.org/ns/odrl/2/"
DP = Scope.DATAPLANE


def decide(constraint: dict[str, Any], scope: Scope = DP, **context: Any) -> Decision:
    return evaluate(policy(constraint), ctx(**context), scope)


# --- purpose -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("op", "right", "purpose", "permitted"),
    [
        ("eq", "research", "research", True),
        ("eq", "research", "marketing", False),
        ("isA", "research", "research", True),
        ("neq", "marketing", "research", True),
        ("neq", "marketing", "marketing", False),
        ("isAnyOf", ["research", "care"], "care", True),
        ("isAnyOf", ["research", "care"], "marketing", False),
        ("isNoneOf", ["marketing"], "research", True),
        ("isNoneOf", ["marketing", "ads"], "ads", False),
        ({"@id": "odrl:eq"}, {"@id": "https://w3id.org/dpv#AcademicResearch"},
         "https://w3id.org/dpv#AcademicResearch", True),
    ],
)  # fmt: skip
def test_purpose(op: Any, right: Any, purpose: str, permitted: bool) -> None:
    decision = decide(c("purpose", op, right), purpose=purpose)
    assert decision.permitted is permitted
    if not permitted:
        assert decision.failed == [
            f"{decision.failed[0].split(':')[0]}: the purpose is {purpose!r} ({ODRL}purpose)"
        ]


def test_purpose_prefixed_in_request_matches_full_iri_in_policy() -> None:
    assert decide(c("purpose", "eq", PHEMS + "research"), purpose="phems:research").permitted


def test_unknown_purpose_is_deferred_until_the_data_plane() -> None:
    constraint = c("purpose", "eq", "research")
    for scope in (Scope.CATALOG, Scope.NEGOTIATION, Scope.TRANSFER):
        assert decide(constraint, scope).permitted
        assert not decide(constraint, scope, purpose="marketing").permitted
    decision = decide(constraint, DP)
    assert decision.failed == [f"research only: the purpose is not stated ({ODRL}purpose)"]


def test_purpose_falls_back_to_the_data_permit() -> None:
    creds = (permit(["urn:dataset:asthma"], purpose="research"),)
    assert decide(c("purpose", "eq", "research"), credentials=creds).permitted
    assert not decide(c("purpose", "eq", "care"), credentials=creds).permitted


# --- dateTime ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("op", "right", "now", "permitted"),
    [
        ("lteq", "2027-12-31", datetime(2027, 12, 31, 23, 59, tzinfo=UTC), True),
        ("lteq", "2027-12-31", datetime(2028, 1, 1, 0, 0, tzinfo=UTC), False),
        ("lt", "2027-12-31", datetime(2027, 12, 31, 0, 1, tzinfo=UTC), False),
        ("lt", "2027-12-31T00:00:00Z", datetime(2027, 12, 30, 23, 59, tzinfo=UTC), True),
        ("lt", "2027-12-31T00:00:00Z", datetime(2027, 12, 31, 0, 0, tzinfo=UTC), False),
        ("gteq", "2026-07-01", NOW, False),
        ("gt", {"@value": "2026-06-15T11:00:00+00:00", "@type": "xsd:dateTime"}, NOW, True),
        ("eq", "2026-06-15", NOW, True),
        ("neq", "2026-06-15", NOW, False),
        # A naive "now" is UTC; a policy time with an offset is compared as an instant.
        ("lt", "2026-06-15T14:00:01+02:00", datetime(2026, 6, 15, 12, 0), True),
        ("lt", "2026-06-15T14:00:00+02:00", datetime(2026, 6, 15, 12, 0), False),
    ],
)
def test_date_time(op: str, right: Any, now: datetime, permitted: bool) -> None:
    assert decide(c("dateTime", op, right), now=now).permitted is permitted


def test_expired_offer_is_not_listed_in_the_catalog() -> None:
    decision = decide(c("dateTime", "lt", "2026-01-01"), Scope.CATALOG)
    assert decision.failed == [
        f"before 2026-01-01: it is now 2026-06-15 12:00:00 UTC ({ODRL}dateTime)"
    ]


# --- count ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("op", "limit", "used", "permitted"),
    [
        ("lteq", 3, 0, True),
        ("lteq", 3, 2, True),
        ("lteq", 3, 3, False),
        ("lt", 3, 1, True),
        ("lt", 3, 2, False),
        ("lteq", 0, 0, False),
    ],
)
def test_count_limits_uses(op: str, limit: int, used: int, permitted: bool) -> None:
    for scope in (Scope.TRANSFER, DP):
        decision = decide(c("count", op, limit), scope, uses_so_far=used)
        assert decision.permitted is permitted
    if not permitted:
        assert f"this would be use number {used + 1} ({ODRL}count)" in decision.failed[0]


def test_count_is_not_checked_before_there_is_an_agreement() -> None:
    for scope in (Scope.CATALOG, Scope.NEGOTIATION):
        assert decide(c("count", "lteq", 1), scope, uses_so_far=5).permitted


# --- spatial -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("op", "right", "where", "permitted"),
    [
        ("eq", "DE", "DEU", True),
        ("eq", "http://publications.europa.eu/resource/authority/country/DEU", "de", True),
        ("eq", "DE", "FR", False),
        ("isPartOf", "EU", "FR", True),
        ("isPartOf", "EU", "CH", False),
        ("isPartOf", "EU", "NO", False),
        ("isPartOf", "EEA", "NO", True),
        ("isPartOf", "http://publications.europa.eu/resource/authority/country/EUR", "AT", True),
        ("eq", "EU", "IT", True),
        ("isAnyOf", ["DE", "AT", "CH"], "CHE", True),
        ("isAnyOf", ["DE", "AT"], "US", False),
        ("isNoneOf", ["US", "CN"], "DE", True),
        ("isNoneOf", ["EU"], "DE", False),
        ("neq", "US", "US", False),
        ("eq", "http://example.org/Bavaria", "http://example.org/Bavaria", True),
    ],
)
def test_spatial(op: str, right: Any, where: str, permitted: bool) -> None:
    assert decide(c("spatial", op, right), spatial=where).permitted is permitted


def test_spatial_from_membership_claim_and_unknown_location() -> None:
    constraint = c("spatial", "isPartOf", "EU")
    member = (membership(country="NL"),)
    assert decide(constraint, Scope.NEGOTIATION, credentials=member).permitted
    untrusted = (membership(issuer="did:web:evil.example", country="NL"),)
    assert decide(constraint, Scope.CATALOG, credentials=untrusted).permitted
    decision = decide(constraint, Scope.NEGOTIATION, credentials=untrusted)
    assert decision.failed == [f"within EU: the caller's location is not known ({ODRL}spatial)"]


# --- recipient -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("op", "right", "permitted"),
    [
        ("eq", CALLER, True),
        ("eq", "did:web:other.example", False),
        ("isAnyOf", ["did:web:other.example", CALLER], True),
        ("isNoneOf", [CALLER], False),
        ("neq", "did:web:other.example", True),
    ],
)
def test_recipient_in_every_scope(op: str, right: Any, permitted: bool) -> None:
    for scope in Scope:
        assert decide(c("recipient", op, right), scope).permitted is permitted


# --- outputType ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("op", "right", "requested", "permitted"),
    [
        ("eq", "aggregate", "aggregate", True),
        ("eq", "aggregate", PHEMS + "aggregate", True),
        ("eq", "aggregate", "phems:aggregate", True),
        ("eq", "aggregate", "synthetic", False),
        ("isAnyOf", ["aggregate", "synthetic"], "synthetic", True),
        ("isAnyOf", ["aggregate", "synthetic"], "anonymized", False),
        ("neq", "anonymized", "anonymized", False),
        ("isNoneOf", ["anonymized"], "aggregate", True),
    ],
)
def test_output_type(op: str, right: Any, requested: str, permitted: bool) -> None:
    assert decide(c("phems:outputType", op, right), output_type=requested).permitted is permitted


def test_output_type_scopes() -> None:
    constraint = c("phems:outputType", "eq", "aggregate")
    assert decide(constraint, Scope.CATALOG, output_type="synthetic").permitted
    assert decide(constraint, Scope.NEGOTIATION).permitted
    assert not decide(constraint, Scope.NEGOTIATION, output_type="synthetic").permitted
    decision = decide(constraint, Scope.TRANSFER)
    assert decision.failed == [
        f"aggregate results only: the output type is not stated ({PHEMS}outputType)"
    ]


# --- minCellSize and epsilon ---------------------------------------------------------


@pytest.mark.parametrize(
    ("op", "floor", "asked", "permitted"),
    [
        ("gteq", 10, 10, True),
        ("gteq", 10, 9, False),
        ("gteq", 10, 50, True),
        ("eq", 10, 20, True),
        ("eq", 10, 5, False),
        ("gt", 10, 10, False),
        ("gt", 10, 11, True),
    ],
)
def test_min_cell_size_is_a_floor(op: str, floor: int, asked: int, permitted: bool) -> None:
    decision = decide(c("phems:minCellSize", op, floor), min_cell_size=asked)
    assert decision.permitted is permitted
    if not permitted:
        assert decision.failed[0].endswith(
            f"the query asks for a minimum cell size of {asked} ({PHEMS}minCellSize)"
        )


def test_min_cell_size_only_on_the_data_plane() -> None:
    constraint = c("phems:minCellSize", "gteq", 10)
    for scope in (Scope.CATALOG, Scope.NEGOTIATION, Scope.TRANSFER):
        assert decide(constraint, scope, min_cell_size=1).permitted
    assert "minimum cell size is not stated" in decide(constraint).reason


@pytest.mark.parametrize(
    ("op", "budget", "spent", "asked", "permitted"),
    [
        ("lteq", 1.0, 0.0, 0.5, True),
        ("lteq", 1.0, 0.7, 0.3, True),  # exactly the budget: no float rounding surprise
        ("lteq", 0.3, 0.1, 0.2, True),
        ("lteq", 1.0, 0.8, 0.3, False),
        ("eq", 1, 0.5, 0.5, True),
        ("lt", 1, 0.5, 0.5, False),
        ("lt", 1, 0.5, 0.4, True),
        ("lteq", 0.5, 0.0, 0.6, False),
    ],
)
def test_epsilon_budget(
    op: str, budget: float, spent: float, asked: float, permitted: bool
) -> None:
    decision = decide(c("phems:epsilon", op, budget), epsilon=asked, epsilon_spent=spent)
    assert decision.permitted is permitted
    if not permitted:
        assert f"epsilon {asked} with {spent} already spent exceeds the budget" in decision.reason
        assert decision.reason.endswith(f"({PHEMS}epsilon)")


def test_epsilon_unknown_on_data_plane_fails() -> None:
    assert not decide(c("phems:epsilon", "lteq", 1)).permitted
    assert decide(c("phems:epsilon", "lteq", 1), Scope.TRANSFER).permitted


# --- credentials ---------------------------------------------------------------------


MEMBER = c("phems:membership", "eq", True)
PERMIT = c("phems:dataPermit", "eq", True)


@pytest.mark.parametrize(
    ("credentials", "permitted"),
    [
        ((membership(),), True),
        ((), False),
        ((membership(issuer="did:web:evil.example"),), False),
        ((membership(holder="did:web:someone-else.example"),), False),
        ((membership(valid_until=NOW),), False),
        ((permit(["urn:dataset:asthma"]),), False),  # a permit is not a membership
        ((membership(valid_until=NOW - timedelta(days=1)), membership()), True),
    ],
)
def test_membership(credentials: tuple[Any, ...], permitted: bool) -> None:
    for scope in Scope:
        decision = decide(MEMBER, scope, credentials=credentials)
        assert decision.permitted is permitted
    if not permitted:
        assert decision.failed == [
            "members of the data space: no valid membership credential from a trusted "
            f"issuer ({PHEMS}membership)"
        ]


def test_membership_not_yet_valid() -> None:
    early = membership()
    assert early.valid_from is not None
    assert not decide(MEMBER, now=early.valid_from - timedelta(seconds=1),
                      credentials=(early,)).permitted  # fmt: skip


def test_nothing_is_trusted_without_a_trust_list() -> None:
    assert not decide(MEMBER, credentials=(membership(),), trusted_issuers=frozenset()).permitted


@pytest.mark.parametrize(
    ("credential", "purpose", "permitted"),
    [
        (permit(["urn:dataset:asthma"]), "research", True),
        (permit(["urn:dataset:asthma"]), None, True),
        (permit(["urn:dataset:asthma", "urn:dataset:other"]), "research", True),
        (permit(["urn:dataset:other"]), "research", False),
        (permit(["urn:dataset:asthma"]), "marketing", False),
        (permit(["urn:dataset:asthma"], issuer=AUTHORITY + "x"), "research", False),
        (permit(["urn:dataset:asthma"], holder="did:web:x.example"), "research", False),
        (permit(["urn:dataset:asthma"], valid_until=NOW - timedelta(1)), "research", False),
        (membership(), "research", False),
    ],
)
def test_data_permit(credential: Any, purpose: str | None, permitted: bool) -> None:
    for scope in (Scope.NEGOTIATION, Scope.TRANSFER, DP):
        decision = decide(PERMIT, scope, credentials=(credential,), purpose=purpose)
        if scope is DP and purpose is None:
            continue
        assert decision.permitted is permitted
    if not permitted:
        assert decision.reason.startswith("with a data permit for this dataset and purpose: ")
        assert decision.reason.endswith(f"({PHEMS}dataPermit)")


def test_data_permit_not_checked_for_the_catalog_but_needs_a_dataset() -> None:
    assert decide(PERMIT, Scope.CATALOG).permitted
    decision = decide(PERMIT, Scope.NEGOTIATION, dataset_id=None, credentials=(permit(["x"]),))
    assert "the dataset is not known" in decision.reason
    assert HDAB  # the permit issuer is trusted by ctx(); the dataset is what is missing


# --- logic ---------------------------------------------------------------------------

RESEARCH = c("purpose", "eq", "research")
CARE = c("purpose", "eq", "care")


def test_or() -> None:
    rule = {"or": [RESEARCH, CARE]}
    assert decide(rule, purpose="care").permitted
    decision = decide(rule, purpose="ads")
    assert decision.failed == [
        "(care only or research only): none holds: "
        f"care only: the purpose is 'ads' ({ODRL}purpose); "
        f"research only: the purpose is 'ads' ({ODRL}purpose)"
    ]


def test_xone() -> None:
    rule = {"xone": [RESEARCH, MEMBER]}
    assert decide(rule, purpose="research").permitted
    assert decide(rule, purpose="ads", credentials=(membership(),)).permitted
    both = decide(rule, purpose="research", credentials=(membership(),))
    assert both.failed == [
        "exactly one of (research only; members of the data space): more than one holds"
    ]
    assert not decide(rule, purpose="ads").permitted


def test_and_and_sequence_and_nesting() -> None:
    for logic in ("and", "andSequence"):
        rule = {logic: [RESEARCH, {"or": [MEMBER, c("recipient", "eq", CALLER)]}]}
        assert decide(rule, purpose="research").permitted
        assert not decide(rule, purpose="care").permitted
        strict = {logic: [RESEARCH, {"or": [MEMBER, c("recipient", "eq", "did:web:x")]}]}
        assert decide(strict, purpose="research", credentials=(membership(),)).permitted
        assert not decide(strict, purpose="research").permitted


def test_unknown_member_of_or_defers_at_catalog_but_fails_on_data_plane() -> None:
    rule = {"or": [RESEARCH, c("recipient", "eq", "did:web:x")]}
    assert decide(rule, Scope.CATALOG).permitted
    assert "the purpose is not stated" in decide(rule, DP).reason
    assert decide({"or": [RESEARCH, c("recipient", "eq", CALLER)]}, DP).permitted


def test_xone_with_unknowns() -> None:
    rule = {"xone": [RESEARCH, c("recipient", "eq", CALLER), MEMBER]}
    # Two members already hold: false whatever the purpose turns out to be.
    assert not decide(rule, Scope.CATALOG, credentials=(membership(),)).permitted
    assert decide(rule, Scope.CATALOG).permitted


def test_all_failures_are_named() -> None:
    parsed = policy(RESEARCH, MEMBER, c("dateTime", "lt", "2026-01-01"))
    decision = evaluate(parsed, ctx(), DP)
    assert len(decision.failed) == 3
    assert {f.rsplit("(", 1)[1] for f in decision.failed} == {
        f"{ODRL}purpose)",
        f"{PHEMS}membership)",
        f"{ODRL}dateTime)",
    }
    with pytest.raises(PolicyViolationError) as info:
        decision.raise_if_denied()
    assert info.value.detail == decision.reason
    assert not decision


# --- rules ---------------------------------------------------------------------------


def test_policy_without_rules_restricts_nothing() -> None:
    assert evaluate(validate_policy({"@type": "Offer", "@id": "x"}), ctx(), DP)
    assert evaluate(validate_policy(offer()), ctx(), DP)


def test_all_permissions_must_hold() -> None:
    body = {
        "permission": [
            {"action": "use", "constraint": [RESEARCH]},
            {"action": "read", "constraint": [MEMBER]},
        ]
    }
    assert not evaluate(validate_policy(body), ctx(purpose="research"), DP)
    member = ctx(purpose="research", credentials=(membership(),))
    assert evaluate(validate_policy(body), member, DP)


def test_prohibitions() -> None:
    anonymized = c("phems:outputType", "eq", "anonymized")
    body = offer(prohibition=[{"action": "use", "constraint": [anonymized]},
                              {"action": "distribute"}])  # fmt: skip
    parsed = validate_policy(body)
    assert evaluate(parsed, ctx(output_type="aggregate"), DP)
    decision = evaluate(parsed, ctx(output_type="anonymized"), DP)
    assert decision.failed == [f"use is prohibited: anonymized results only ({PHEMS}outputType)"]
    assert evaluate(parsed, ctx(), Scope.CATALOG)
    unknown = evaluate(parsed, ctx(), DP)
    assert unknown.failed == [
        "use may be prohibited: anonymized results only: the output type is not stated "
        f"({PHEMS}outputType)"
    ]
    always = validate_policy({"prohibition": [{"action": "use"}]})
    assert evaluate(always, ctx(), Scope.CATALOG).failed == ["use is prohibited: always (use)"]


def test_obligations_are_not_checked_here() -> None:
    body = offer(
        obligation=[{"action": "delete", "constraint": [c("dateTime", "gt", "2020-01-01")]}]
    )
    assert evaluate(validate_policy(body), ctx(), Scope.CATALOG)


# --- scope table ---------------------------------------------------------------------

# One violating and one silent context per operand; the decision per scope must follow the
# catalog / negotiation / transfer / dataplane rules of DESIGN.md §3 and the issue.
VIOLATIONS: dict[LeftOperand, tuple[dict[str, Any], dict[str, Any]]] = {
    LeftOperand.PURPOSE: (RESEARCH, {"purpose": "ads"}),
    LeftOperand.DATE_TIME: (c("dateTime", "lt", "2026-01-01"), {}),
    LeftOperand.COUNT: (c("count", "lteq", 1), {"uses_so_far": 1}),
    LeftOperand.SPATIAL: (c("spatial", "eq", "DE"), {"spatial": "US"}),
    LeftOperand.RECIPIENT: (c("recipient", "eq", "did:web:x"), {}),
    LeftOperand.OUTPUT_TYPE: (
        c("phems:outputType", "eq", "aggregate"),
        {"output_type": "synthetic"},
    ),
    LeftOperand.MIN_CELL_SIZE: (c("phems:minCellSize", "gteq", 10), {"min_cell_size": 5}),
    LeftOperand.EPSILON: (c("phems:epsilon", "lteq", 1), {"epsilon": 2.0}),
    LeftOperand.PATIENTS: (c("phems:patients", "lteq", 100), {"patients": 1000}),
    LeftOperand.DATA_PERMIT: (PERMIT, {}),
    LeftOperand.MEMBERSHIP: (MEMBER, {}),
}
CHECKED_AT = {
    Scope.CATALOG: {LeftOperand.PURPOSE, LeftOperand.DATE_TIME, LeftOperand.SPATIAL,
                    LeftOperand.RECIPIENT, LeftOperand.MEMBERSHIP},
    Scope.NEGOTIATION: {LeftOperand.PURPOSE, LeftOperand.DATE_TIME, LeftOperand.SPATIAL,
                        LeftOperand.RECIPIENT, LeftOperand.MEMBERSHIP, LeftOperand.DATA_PERMIT,
                        LeftOperand.OUTPUT_TYPE},
    Scope.TRANSFER: set(LeftOperand)
    - {LeftOperand.MIN_CELL_SIZE, LeftOperand.EPSILON, LeftOperand.PATIENTS},
    Scope.DATAPLANE: set(LeftOperand),
}  # fmt: skip


@pytest.mark.parametrize("scope", list(Scope))
@pytest.mark.parametrize("operand", list(LeftOperand))
def test_a_violation_is_caught_exactly_where_the_operand_is_checked(
    scope: Scope, operand: LeftOperand
) -> None:
    constraint, facts = VIOLATIONS[operand]
    decision = decide(constraint, scope, **facts)
    assert decision.permitted is (operand not in CHECKED_AT[scope])
    if not decision.permitted:
        assert decision.failed[0].endswith(f"({operand.value})")
