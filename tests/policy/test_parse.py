from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest

from connector.errors import PolicyDefinitionError
from connector.policy import (
    Constraint,
    LeftOperand,
    Logic,
    LogicalConstraint,
    Operator,
    PolicyType,
    expand,
    validate_policy,
)
from tests.policy.helpers import PHEMS, c, offer, policy

ODRL = "http://www.w3.org/ns/odrl/2/"


def only_constraint(body: dict[str, Any]) -> Constraint | LogicalConstraint:
    parsed = validate_policy(body)
    (rule,) = parsed.permissions
    (node,) = rule.constraints
    return node


@pytest.mark.parametrize(
    "left",
    ["purpose", "odrl:purpose", ODRL + "purpose", {"@id": "odrl:purpose"}, [ODRL + "purpose"]],
)
def test_odrl_operand_spellings_are_one_term(left: Any) -> None:
    node = only_constraint(offer(c(left, "eq", "research")))
    assert node == Constraint(LeftOperand.PURPOSE, Operator.EQ, "research")


@pytest.mark.parametrize("left", ["phems:outputType", PHEMS + "outputType"])
@pytest.mark.parametrize("op", ["eq", "odrl:eq", ODRL + "eq", {"@id": ODRL + "eq"}])
@pytest.mark.parametrize(
    "right",
    ["aggregate", "phems:aggregate", {"@id": PHEMS + "aggregate"}, {"@value": "aggregate"}],
)
def test_profile_operand_spellings_are_one_term(left: str, op: Any, right: Any) -> None:
    node = only_constraint(offer(c(left, op, right)))
    assert node == Constraint(LeftOperand.OUTPUT_TYPE, Operator.EQ, "aggregate")


def test_prefixed_and_full_iri_policies_are_equal() -> None:
    compact_form = {
        "@id": "urn:offer:1",
        "@type": "Offer",
        "permission": [
            {
                "action": "use",
                "constraint": [
                    c("purpose", "eq", "research"),
                    c("phems:minCellSize", "gteq", {"@value": "10", "@type": "xsd:integer"}),
                ],
            }
        ],
    }
    expanded = {
        "@id": "urn:offer:1",
        "@type": ODRL + "Offer",
        ODRL + "permission": {
            ODRL + "action": {"@id": ODRL + "use"},
            # Order differs too: a rule's constraints are a conjunction.
            ODRL + "constraint": [
                {
                    ODRL + "leftOperand": {"@id": PHEMS + "minCellSize"},
                    ODRL + "operator": {"@id": ODRL + "gteq"},
                    ODRL + "rightOperand": 10,
                },
                {
                    "odrl:leftOperand": "odrl:purpose",
                    "odrl:operator": "odrl:eq",
                    "odrl:rightOperand": "research",
                },
            ],
        },
    }
    assert validate_policy(compact_form) == validate_policy(expanded)


def test_inline_context_prefix_and_term_are_honoured() -> None:
    body = offer(c("p:outputType", "eq", "synthetic"), c("cells", "gteq", 5))
    body["@context"] = [
        "https://w3id.org/dspace/2025/1/context.jsonld",
        {"p": PHEMS, "cells": {"@id": PHEMS + "minCellSize"}},
    ]
    assert validate_policy(body) == policy(
        c(PHEMS + "outputType", "eq", "synthetic"), c(PHEMS + "minCellSize", "gteq", 5)
    )


@pytest.mark.parametrize(
    ("left", "named"),
    [
        ("odrl:elapsedTime", "elapsedTime"),
        ("phems:kAnonymity", PHEMS + "kAnonymity"),
        ("http://example.org/custom", "http://example.org/custom"),
        ("foo", ODRL + "foo"),
    ],
)
def test_unknown_left_operand_is_refused_by_name(left: str, named: str) -> None:
    with pytest.raises(PolicyDefinitionError, match="unknown leftOperand") as info:
        validate_policy(offer(c(left, "eq", "x")))
    assert named in info.value.detail


def test_bare_profile_term_is_an_odrl_term_and_refused_with_a_hint() -> None:
    with pytest.raises(PolicyDefinitionError) as info:
        validate_policy(offer(c("outputType", "eq", "aggregate")))
    assert ODRL + "outputType" in info.value.detail
    assert PHEMS + "outputType" in info.value.detail


def test_unknown_operator_is_refused_by_name() -> None:
    with pytest.raises(PolicyDefinitionError, match="unknown operator 'odrl:near'"):
        validate_policy(offer(c("purpose", "odrl:near", "research")))


@pytest.mark.parametrize(
    ("left", "op", "right"),
    [
        ("count", "gteq", 3),
        ("purpose", "lt", "research"),
        ("phems:membership", "neq", True),
        ("phems:minCellSize", "lt", 10),
        ("phems:epsilon", "gt", 1),
        ("dateTime", "isAnyOf", ["2026-01-01"]),
        ("purpose", "hasPart", "research"),
        ("spatial", "isAllOf", ["DE"]),
    ],
)
def test_known_operator_that_makes_no_sense_for_operand_is_refused(
    left: str, op: str, right: Any
) -> None:
    with pytest.raises(PolicyDefinitionError, match=f"operator .*{op} is not supported"):
        validate_policy(offer(c(left, op, right)))


@pytest.mark.parametrize(
    ("left", "right", "message"),
    [
        ("phems:outputType", "raw", "outputType must be one of"),
        ("phems:minCellSize", 0, "integer >= 1"),
        ("phems:minCellSize", True, "integer >= 1"),
        ("phems:minCellSize", 2.5, "integer >= 1"),
        ("count", -1, "integer >= 0"),
        ("phems:epsilon", 0, "positive number"),
        ("phems:epsilon", "NaN", "positive number"),
        ("phems:epsilon", "a lot", "positive number"),
        ("dateTime", "next year", "not an xsd:date"),
        ("dateTime", 2027, "ISO 8601"),
        ("phems:membership", False, "expected true"),
        ("purpose", "", "non-empty string"),
        ("purpose", {"@language": "en"}, "needs @id or @value"),
    ],
)
def test_bad_right_operand_is_refused(left: str, right: Any, message: str) -> None:
    op = {"phems:minCellSize": "gteq", "count": "lteq", "phems:epsilon": "lteq"}.get(left, "eq")
    with pytest.raises(PolicyDefinitionError, match=message):
        validate_policy(offer(c(left, op, right)))


def test_right_operand_values_are_typed() -> None:
    parsed = policy(
        c("dateTime", "lt", {"@value": "2027-12-31T23:00:00+01:00", "@type": "xsd:dateTime"}),
        c("dateTime", "gteq", "2026-01-01"),
        c("phems:epsilon", "lteq", "1.50"),
        c("count", "lteq", "7"),
        c(
            "spatial",
            "isAnyOf",
            ["deu", "http://publications.europa.eu/resource/authority/country/AUT", "FR", "FR"],
        ),
    )
    values = {
        n.operator: n.right_operand
        for n in parsed.permissions[0].constraints
        if isinstance(n, Constraint)
    }
    assert values[Operator.LT] == datetime(2027, 12, 31, 22, 0, tzinfo=UTC)
    assert values[Operator.GTEQ] == date(2026, 1, 1)
    assert values[Operator.IS_ANY_OF] == ("AT", "DE", "FR")
    epsilon = next(
        n
        for n in parsed.permissions[0].constraints
        if isinstance(n, Constraint) and n.left_operand is LeftOperand.EPSILON
    )
    assert epsilon.right_operand == Decimal("1.5")


XSD = "http://www.w3.org/2001/XMLSchema#"
_OPS = {"phems:minCellSize": "gteq", "count": "lteq", "phems:epsilon": "lteq"}


@pytest.mark.parametrize(
    ("left", "plain", "typed"),
    [
        ("phems:minCellSize", 10, {"@value": "10", "@type": XSD + "integer"}),
        ("phems:minCellSize", 10, {"@value": "10", "@type": "xsd:integer"}),
        ("phems:minCellSize", 10, {"@value": 10, "@type": XSD + "integer"}),
        ("phems:minCellSize", 10, {"@value": " +10 ", "@type": XSD + "positiveInteger"}),
        ("phems:minCellSize", 10, {"@value": "10.0", "@type": XSD + "decimal"}),
        ("phems:minCellSize", 10.0, {"@value": "1E1", "@type": XSD + "double"}),
        ("count", 0, {"@value": "0", "@type": XSD + "nonNegativeInteger"}),
        ("phems:membership", True, {"@value": "true", "@type": XSD + "boolean"}),
        ("phems:membership", True, {"@value": "1", "@type": "xsd:boolean"}),
        ("phems:membership", True, {"@value": True, "@type": XSD + "boolean"}),
        ("phems:dataPermit", True, {"@value": "true", "@type": XSD + "boolean"}),
        ("phems:epsilon", 1.0, {"@value": "1", "@type": XSD + "decimal"}),
        ("phems:epsilon", 1.0, {"@value": "1.000", "@type": XSD + "decimal"}),
        ("phems:epsilon", 0.5, {"@value": ".5", "@type": "xsd:decimal"}),
        ("phems:epsilon", 0.5, {"@value": 0.5, "@type": XSD + "decimal"}),
        ("phems:epsilon", 0.5, {"@value": "5.0E-1", "@type": XSD + "double"}),
        ("phems:epsilon", 2, {"@value": "2", "@type": XSD + "integer"}),
    ],
)
def test_typed_literals_parse_like_plain_json(left: str, plain: Any, typed: Any) -> None:
    op = _OPS.get(left, "eq")
    assert policy(c(left, op, typed)) == policy(c(left, op, plain))
    assert policy(c(left, op, [typed])) == policy(c(left, op, plain))


def test_typed_decimal_keeps_its_exact_value() -> None:
    text = "0.123456789012345678901"
    node = only_constraint(
        offer(c("phems:epsilon", "lteq", {"@value": text, "@type": "xsd:decimal"}))
    )
    assert isinstance(node, Constraint) and node.right_operand == Decimal(text)


def lit(value: Any, datatype: str) -> dict[str, Any]:
    return {"@value": value, "@type": "xsd:" + datatype}


@pytest.mark.parametrize(
    ("left", "right", "message"),
    [
        ("phems:minCellSize", lit("ten", "integer"), "'ten' is not a lexical form of xsd:integer"),
        ("phems:minCellSize", lit("10.0", "integer"), "lexical form of xsd:integer"),
        ("count", lit("0x10", "integer"), "lexical form of xsd:integer"),
        ("count", lit("", "nonNegativeInteger"), "lexical form of xsd:nonNegativeInteger"),
        ("phems:membership", lit("yes", "boolean"), "'yes' is not a lexical form of xsd:boolean"),
        ("phems:membership", lit("True", "boolean"), "lexical form of xsd:boolean"),
        ("phems:epsilon", lit("1e-3", "decimal"), "lexical form of xsd:decimal"),
        ("phems:epsilon", lit("1,5", "decimal"), "lexical form of xsd:decimal"),
        ("phems:epsilon", lit("one", "double"), "lexical form of xsd:double"),
        ("phems:membership", lit(1, "boolean"), "1 is not a value of xsd:boolean"),
        ("phems:minCellSize", lit(10.5, "integer"), "not a value of xsd:integer"),
        ("phems:minCellSize", lit(True, "integer"), "not a value of xsd:integer"),
        ("phems:epsilon", lit("0.5", "dateTime"), "not a number or boolean datatype"),
        ("phems:minCellSize", lit("1", "boolean"), "integer >= 1"),
        ("phems:membership", lit("false", "boolean"), "expected true"),
        ("phems:epsilon", lit("INF", "double"), "positive number"),
    ],
)
def test_typed_literal_that_does_not_fit_its_datatype_is_refused(
    left: str, right: Any, message: str
) -> None:
    with pytest.raises(PolicyDefinitionError, match=f"bad rightOperand .*{message}"):
        validate_policy(offer(c(left, _OPS.get(left, "eq"), right)))


@pytest.mark.parametrize(
    ("left", "right", "message"),
    [
        ("phems:minCellSize", "1" * 5000, "more than 64 characters"),
        ("count", lit("1" * 5000, "integer"), "lexical form of xsd:integer"),
        ("phems:minCellSize", lit("1E+999999999", "double"), "out of range"),
        ("phems:epsilon", lit("-1E-999999999", "decimal"), "lexical form of xsd:decimal"),
        ("phems:epsilon", lit("1E-999999999", "double"), "out of range"),
        ("phems:minCellSize", 1e300, "integer >= 1"),
        ("count", 10**19, "integer below"),
        ("phems:epsilon", "1E+999999999", "between 1e-40 and 1e40"),
        ("phems:epsilon", lit("1e-500", "double"), "out of range"),
        ("phems:epsilon", "9" * 65, "more than 64 characters"),
    ],
)
def test_numbers_out_of_all_proportion_are_refused(left: str, right: Any, message: str) -> None:
    """A peer's policy may carry any number: one that int() cannot convert (a ValueError, a
    500) or whose conversion would not end is a bad policy (400), like any other."""
    with pytest.raises(PolicyDefinitionError, match=message):
        validate_policy(offer(c(left, _OPS.get(left, "eq"), right)))


def test_logical_constraints_nested_too_deeply_are_refused() -> None:
    """300 levels of ``and`` ran out of stack (RecursionError, a 500 on a contract request)."""
    node: Any = c("purpose", "eq", "research")
    for _ in range(300):
        node = {"and": [node]}
    with pytest.raises(PolicyDefinitionError, match="nested more than 36 levels"):
        validate_policy(offer(node))
    node = c("purpose", "eq", "research")
    for _ in range(14):
        node = {"and": [node]}
    validate_policy(offer(node))  # 14 levels of logic still fit


def test_scalar_operator_refuses_several_values() -> None:
    with pytest.raises(PolicyDefinitionError, match="takes a single value"):
        validate_policy(offer(c("purpose", "eq", ["research", "care"])))


def test_set_operator_refuses_empty_list() -> None:
    with pytest.raises(PolicyDefinitionError, match="at least one value"):
        validate_policy(offer(c("purpose", "isAnyOf", [])))


def test_logical_constraints_nest_and_keep_sequence_order() -> None:
    a, b = c("purpose", "eq", "research"), c("purpose", "eq", "care")
    body = offer(
        {"or": [a, {"and": [b, c("phems:membership", "eq", True)]}]},
        {"xone": {"@list": [a, b]}},
        {"andSequence": [b, a]},
    )
    nodes = validate_policy(body).permissions[0].constraints
    logics = {n.logic: n for n in nodes if isinstance(n, LogicalConstraint)}
    assert set(logics) == {Logic.OR, Logic.XONE, Logic.AND_SEQUENCE}
    sequence = logics[Logic.AND_SEQUENCE].constraints
    assert [n.right_operand for n in sequence if isinstance(n, Constraint)] == ["care", "research"]
    inner = [n for n in logics[Logic.OR].constraints if isinstance(n, LogicalConstraint)]
    assert inner[0].logic is Logic.AND and len(inner[0].constraints) == 2
    # or / xone are commutative: swapping members gives an equal policy; andSequence is not.
    swapped = offer(
        {"or": [{"and": [b, c("phems:membership", "eq", True)]}, a]},
        {"xone": [b, a]},
        {"andSequence": [b, a]},
    )
    assert validate_policy(swapped) == validate_policy(body)
    reordered = offer(
        {"or": [a, {"and": [b, c("phems:membership", "eq", True)]}]},
        {"xone": [a, b]},
        {"andSequence": [a, b]},
    )
    assert validate_policy(reordered) != validate_policy(body)


@pytest.mark.parametrize(
    ("node", "message"),
    [
        ({"and": [], "or": []}, "one of and/or/xone/andSequence"),
        ({"or": []}, "has no constraints"),
        ({"leftOperand": "purpose", "operator": "eq"}, "lacks rightOperand"),
        (
            {"leftOperand": "purpose", "operator": "eq", "rightOperand": "x", "unit": "m"},
            "unsupported constraint properties",
        ),
        ("purpose eq research", "must be an object"),
    ],
)
def test_malformed_constraints_are_refused(node: Any, message: str) -> None:
    with pytest.raises(PolicyDefinitionError, match=message):
        validate_policy(offer(node))


def test_policy_structure_errors() -> None:
    with pytest.raises(PolicyDefinitionError, match="unknown action 'sell'"):
        validate_policy({"@type": "Offer", "permission": [{"action": "sell"}]})
    with pytest.raises(PolicyDefinitionError, match="refinements are not supported"):
        validate_policy({"permission": [{"action": {"action": "use", "refinement": []}}]})
    with pytest.raises(PolicyDefinitionError, match="needs an action"):
        validate_policy({"permission": [{"constraint": []}]})
    with pytest.raises(PolicyDefinitionError, match="unsupported policy @type"):
        validate_policy({"@type": "Ticket", "permission": []})
    with pytest.raises(PolicyDefinitionError, match="unsupported policy properties: .*conflict"):
        validate_policy({"@type": "Set", "conflict": "perm"})
    with pytest.raises(PolicyDefinitionError, match="given twice"):
        validate_policy({"permission": [], "odrl:permission": []})
    with pytest.raises(PolicyDefinitionError, match="unsupported prohibition properties"):
        validate_policy({"prohibition": [{"action": "use", "duty": []}]})
    with pytest.raises(PolicyDefinitionError, match="JSON object"):
        validate_policy(["not", "a", "policy"])  # type: ignore[arg-type]


def test_policy_header_fields() -> None:
    parsed = validate_policy(
        {
            "@id": "urn:agreement:9",
            "@type": "odrl:Agreement",
            "target": {"@id": "urn:dataset:asthma"},
            "assigner": "did:web:hospital.example",
            "assignee": "did:web:researcher.example",
            "timestamp": "2026-06-15T12:00:00Z",
            PHEMS + "signature": "eyJ...",
            "permission": [{"action": "odrl:use", "target": "urn:dataset:asthma"}],
            "obligation": [
                {"action": "delete", "constraint": [c("dateTime", "gteq", "2028-01-01")]}
            ],
        }
    )
    assert parsed.type is PolicyType.AGREEMENT
    assert (parsed.uid, parsed.target) == ("urn:agreement:9", "urn:dataset:asthma")
    assert parsed.assigner == "did:web:hospital.example"
    assert parsed.obligations[0].action == ODRL + "delete"
    assert validate_policy({}).type is PolicyType.SET


def test_approval_required_flag() -> None:
    key = PHEMS + "approvalRequired"
    assert validate_policy({**offer(), key: True}).approval_required
    assert validate_policy(
        {**offer(), "phems:approvalRequired": {"@value": True}}
    ).approval_required
    assert not validate_policy(offer()).approval_required
    with pytest.raises(PolicyDefinitionError, match="must be true or false"):
        validate_policy({**offer(), key: "yes"})


@pytest.mark.parametrize(
    ("term", "iri"),
    [
        ("use", ODRL + "use"),
        ("odrl:use", ODRL + "use"),
        (ODRL + "use", ODRL + "use"),
        ("phems:epsilon", PHEMS + "epsilon"),
        ("did:web:x", "did:web:x"),
        ("odrl://host/x", "odrl://host/x"),
    ],
)
def test_expand(term: str, iri: str) -> None:
    assert expand(term) == iri


def test_validation_is_remembered_by_content_not_by_object() -> None:
    """The memo returns the same normalised policy for equal JSON (key order aside), sees a
    changed policy as new, and never remembers a refusal."""
    offer = {
        "@type": "Offer",
        "permission": [
            {
                "action": "use",
                "constraint": [{"leftOperand": "purpose", "operator": "eq", "rightOperand": "x"}],
            }
        ],
    }
    first = validate_policy(offer)
    assert validate_policy(dict(reversed(list(offer.items())))) is first
    offer["permission"][0]["constraint"][0]["rightOperand"] = "y"  # type: ignore[index]
    changed = validate_policy(offer)
    assert changed != first
    bad = {
        "@type": "Offer",
        "permission": [
            {
                "action": "use",
                "constraint": [{"leftOperand": "nope", "operator": "eq", "rightOperand": 1}],
            }
        ],
    }
    for _ in range(2):
        with pytest.raises(PolicyDefinitionError):
            validate_policy(bad)
