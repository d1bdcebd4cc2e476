"""Compact JSON-LD for a normalised policy, and the Agreement built from an Offer.

Output uses the DSP 2025-1 context's terms: ODRL terms bare (``use``, ``purpose``, ``eq``),
profile terms and datatypes as full IRIs (``{"@value": ..., "@type": xsd IRI}``). The
output of ``to_jsonld`` validates back to an equal ``Policy``.

Every right operand that is not a string is a typed literal with its lexical form as a string
(``{"@value": "10", "@type": xsd:integer}``; booleans ``"true"``, decimals exact): the DSP
2025-1 schema (``negotiation/contract-schema.json``, ``RightOperand``) allows only a string,
an object or an array there, and the Agreement is signed as built.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from connector.errors import PolicyDefinitionError
from connector.policy.model import Constraint, ConstraintNode, Policy, Rule, Scalar
from connector.policy.parse import validate_policy
from connector.policy.vocab import APPROVAL_REQUIRED, XSD, PolicyType, compact

JsonDict = dict[str, Any]


def _scalar(value: Scalar) -> str | JsonDict:
    if isinstance(value, bool):
        return {"@value": "true" if value else "false", "@type": XSD + "boolean"}
    if isinstance(value, int):
        return {"@value": str(value), "@type": XSD + "integer"}
    if isinstance(value, datetime):
        text = value.astimezone(UTC).isoformat().replace("+00:00", "Z")
        return {"@value": text, "@type": XSD + "dateTime"}
    if isinstance(value, date):
        return {"@value": value.isoformat(), "@type": XSD + "date"}
    if isinstance(value, Decimal):
        # Fixed-point text: str() would write 1E+2 for a normalised 100, not an xsd:decimal.
        return {"@value": format(value, "f"), "@type": XSD + "decimal"}
    return value


def _node(node: ConstraintNode) -> JsonDict:
    if isinstance(node, Constraint):
        right = node.right_operand
        return {
            "leftOperand": compact(node.left_operand),
            "operator": compact(node.operator),
            "rightOperand": [_scalar(v) for v in right]
            if isinstance(right, tuple)
            else _scalar(right),
        }
    return {compact(node.logic): [_node(member) for member in node.constraints]}


def _rule(rule: Rule) -> JsonDict:
    out: JsonDict = {"action": compact(rule.action)}
    if rule.constraints:
        out["constraint"] = [_node(node) for node in rule.constraints]
    if rule.duties:
        out["duty"] = [_rule(duty) for duty in rule.duties]
    return out


def to_jsonld(policy: Policy) -> JsonDict:
    """The policy as compact JSON (no ``@context``: it travels inside a DSP message)."""
    out: JsonDict = {}
    if policy.uid is not None:
        out["@id"] = policy.uid
    out["@type"] = compact(policy.type)
    for key, value in (
        ("target", policy.target),
        ("assigner", policy.assigner),
        ("assignee", policy.assignee),
    ):
        if value is not None:
            out[key] = value
    out["permission"] = [_rule(rule) for rule in policy.permissions]
    if policy.prohibitions:
        out["prohibition"] = [_rule(rule) for rule in policy.prohibitions]
    if policy.obligations:
        out["obligation"] = [_rule(rule) for rule in policy.obligations]
    if policy.approval_required:
        out[APPROVAL_REQUIRED] = True
    return out


def make_agreement(
    offer: Mapping[str, Any] | Policy,
    *,
    agreement_id: str,
    target: str,
    assigner: str,
    assignee: str,
    timestamp: datetime,
) -> JsonDict:
    """The ODRL Agreement for an accepted Offer: its rules, with the parties and the time.

    The rules are copied (the approval flag is not: by now the approval has happened).
    The offer is validated first; an offer naming a different target is refused
    (``PolicyDefinitionError``). ``timestamp`` is written in UTC to the second.
    """
    policy = offer if isinstance(offer, Policy) else validate_policy(offer)
    if policy.type is PolicyType.AGREEMENT:
        raise PolicyDefinitionError("an Agreement is made from an Offer, not from an Agreement")
    if policy.target is not None and policy.target != target:
        raise PolicyDefinitionError(f"the offer is for {policy.target}, not for {target}")
    if timestamp.tzinfo is None:
        raise PolicyDefinitionError("the agreement timestamp must be timezone-aware")
    rules = to_jsonld(policy)
    agreement: JsonDict = {
        "@id": agreement_id,
        "@type": "Agreement",
        "target": target,
        "assigner": assigner,
        "assignee": assignee,
        "timestamp": timestamp.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    for key in ("permission", "prohibition", "obligation"):
        if key in rules:
            agreement[key] = rules[key]
    return agreement
