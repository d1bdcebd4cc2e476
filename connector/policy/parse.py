"""Parse and validate an ODRL policy (compact JSON-LD, DSP 2025-1 profile) into a ``Policy``.

``validate_policy`` is the only way a policy enters the connector: a management-API offer, a
consumer's ``ContractRequestMessage`` offer and a received Agreement all pass through it.
Every term is expanded against the DSP context (bare terms are ODRL terms), the known
prefixes (``odrl``, ``phems``, ``dspace``, ``xsd``, ``dct``, ``dcat``) and any prefix or term
defined inline in the policy's own ``@context``. An unknown left operand, operator, action,
policy type or property is refused with ``PolicyDefinitionError`` naming it, never ignored.

The profile's policy-level ``https://w3id.org/phems/ns/approvalRequired`` (boolean) says a
person at the provider approves each negotiation before AGREED (``Policy.approval_required``).

Accepted but not part of the normalised policy: ``@context``, the Agreement ``timestamp``,
the ``https://w3id.org/phems/ns/signature`` property, and a rule-level ``target`` /
``assigner`` / ``assignee`` / ``@id`` / ``@type`` (ODRL allows them; the policy-level ones count).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from connector.errors import PolicyDefinitionError
from connector.json_depth import deeper_than
from connector.policy.model import (
    Constraint,
    ConstraintNode,
    LogicalConstraint,
    Policy,
    RightOperand,
    Rule,
    sort_key,
)
from connector.policy.operands import OPERANDS, unwrap
from connector.policy.vocab import (
    ACTIONS,
    APPROVAL_REQUIRED,
    DSPACE,
    ODRL,
    PHEMS,
    PREFIXES,
    SET_OPERATORS,
    SIGNATURE,
    LeftOperand,
    Logic,
    Operator,
    PolicyType,
    RuleKind,
)

_TOP_LEVEL = {
    "@context",
    "@id",
    "@type",
    ODRL + "uid",
    ODRL + "target",
    ODRL + "assigner",
    ODRL + "assignee",
    ODRL + "timestamp",
    DSPACE + "timestamp",
    SIGNATURE,
    APPROVAL_REQUIRED,
    *(kind.value for kind in RuleKind),
}
_RULE_IGNORED = {
    "@id",
    "@type",
    ODRL + "uid",
    ODRL + "target",
    ODRL + "assigner",
    ODRL + "assignee",
}
_LEFT_OPERANDS = frozenset(item.value for item in LeftOperand)
_LOGIC = frozenset(item.value for item in Logic)
_OPERATORS = frozenset(item.value for item in Operator)
_POLICY_TYPES = frozenset(item.value for item in PolicyType)
_CONSTRAINT_KEYS = {"@id", "@type", ODRL + "leftOperand", ODRL + "operator", ODRL + "rightOperand"}


class _Names:
    """Expansion of terms and compact IRIs under the DSP context plus inline definitions."""

    def __init__(self, context: object) -> None:
        self.prefixes: dict[str, str] = dict(PREFIXES)
        self.terms: dict[str, str] = {}
        for item in context if isinstance(context, list) else [context]:
            # A context given by URL (the DSP or ODRL context) is known, never fetched.
            if not isinstance(item, dict):
                continue
            for key, value in item.items():
                iri = value.get("@id") if isinstance(value, dict) else value
                if key.startswith("@") or not isinstance(iri, str):
                    continue
                if iri.endswith(("/", "#", ":")):
                    self.prefixes[key] = iri
                else:
                    self.terms[key] = iri

    def term(self, name: str) -> str:
        if name in self.terms:
            return self.value(self.terms[name])
        if ":" in name:
            return self.value(name)
        return ODRL + name

    def value(self, text: str) -> str:
        prefix, sep, rest = text.partition(":")
        if sep and prefix in self.prefixes and not rest.startswith("//"):
            return self.prefixes[prefix] + rest
        return text


def _fail(message: str) -> PolicyDefinitionError:
    return PolicyDefinitionError(message)


def _keys(node: Mapping[str, Any], names: _Names, where: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in node.items():
        full = key if key.startswith("@") else names.term(key)
        if full in out:
            raise _fail(f"{where}: property {full} is given twice")
        out[full] = value
    return out


def _iri(value: object, names: _Names, what: str) -> str:
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if isinstance(value, dict) and isinstance(value.get("@id"), str):
        value = value["@id"]
    if not isinstance(value, str) or not value:
        raise _fail(f"{what} must be a string or {{'@id': ...}}, got {value!r}")
    return value


def _items(value: object) -> list[Any]:
    if isinstance(value, dict) and "@list" in value:
        value = value["@list"]
    return value if isinstance(value, list) else [value]


def _hint(full: str) -> str:
    name = full[len(ODRL) :] if full.startswith(ODRL) else ""
    if name and PHEMS + name in _LEFT_OPERANDS:
        return f" (profile terms need the full IRI {PHEMS}{name} or the phems: prefix)"
    return ""


def _constraint(node: object, names: _Names) -> ConstraintNode:
    if not isinstance(node, dict):
        raise _fail(f"a constraint must be an object, got {node!r}")
    props = _keys(node, names, "constraint")
    logic = [key for key in props if key in _LOGIC]
    if logic:
        extra = set(props) - {"@id", "@type", *logic}
        if len(logic) > 1 or extra:
            raise _fail(
                f"a logical constraint takes exactly one of and/or/xone/andSequence: {node}"
            )
        kind = Logic(logic[0])
        members = tuple(_constraint(item, names) for item in _items(props[kind]))
        if not members:
            raise _fail(f"logical constraint {kind} has no constraints")
        if kind is not Logic.AND_SEQUENCE:
            members = tuple(sorted(members, key=sort_key))
        return LogicalConstraint(kind, members)
    unknown = set(props) - _CONSTRAINT_KEYS
    if unknown:
        raise _fail(f"unsupported constraint properties: {', '.join(sorted(unknown))}")
    for part in ("leftOperand", "operator", "rightOperand"):
        if ODRL + part not in props:
            raise _fail(f"constraint lacks {part}: {node}")
    written = _iri(props[ODRL + "leftOperand"], names, "leftOperand")
    left_iri = names.term(written)
    if left_iri not in _LEFT_OPERANDS:
        raise _fail(f"unknown leftOperand {written!r} ({left_iri}){_hint(left_iri)}")
    left = LeftOperand(left_iri)
    written_op = _iri(props[ODRL + "operator"], names, "operator")
    op_iri = names.term(written_op)
    if op_iri not in _OPERATORS:
        raise _fail(f"unknown operator {written_op!r} ({op_iri})")
    operator = Operator(op_iri)
    spec = OPERANDS[left]
    if operator not in spec.operators:
        allowed = ", ".join(sorted(op.value[len(ODRL) :] for op in spec.operators))
        raise _fail(f"operator {operator} is not supported for {left} (supported: {allowed})")
    raw_items = _items(props[ODRL + "rightOperand"])
    try:
        values = [spec.parse(unwrap(item, names.prefixes), names.prefixes) for item in raw_items]
    except PolicyDefinitionError as exc:
        raise _fail(f"bad rightOperand for {left}: {exc.detail}") from exc
    right: RightOperand
    if operator in SET_OPERATORS:
        if not values:
            raise _fail(f"{operator} on {left} needs at least one value")
        right = tuple(sorted(set(values), key=sort_key))
    elif len(values) != 1:
        raise _fail(f"{operator} on {left} takes a single value, got {len(values)}")
    else:
        right = values[0]
    return Constraint(left, operator, right)


def _action(value: object, names: _Names) -> str:
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if isinstance(value, dict):
        props = _keys(value, names, "action")
        if ODRL + "refinement" in props:
            raise _fail("action refinements are not supported; put constraints on the rule")
        if ODRL + "action" in props:
            value = props[ODRL + "action"]
    written = _iri(value, names, "action")
    full = names.term(written)
    if full not in ACTIONS:
        raise _fail(f"unknown action {written!r} ({full})")
    return full


def _rule(node: object, kind: RuleKind, names: _Names) -> Rule:
    word = kind.value[len(ODRL) :]
    if not isinstance(node, dict):
        raise _fail(f"a {word} must be an object, got {node!r}")
    props = _keys(node, names, word)
    allowed = {ODRL + "action", ODRL + "constraint", *_RULE_IGNORED}
    if kind is RuleKind.PERMISSION:
        allowed.add(ODRL + "duty")
    unknown = set(props) - allowed
    if unknown:
        raise _fail(f"unsupported {word} properties: {', '.join(sorted(unknown))}")
    if ODRL + "action" not in props:
        raise _fail(f"a {word} needs an action")
    constraints = tuple(
        sorted(
            (_constraint(item, names) for item in _items(props.get(ODRL + "constraint", []))),
            key=sort_key,
        )
    )
    duties = tuple(
        sorted(
            (_rule(d, RuleKind.OBLIGATION, names) for d in _items(props.get(ODRL + "duty", []))),
            key=sort_key,
        )
    )
    return Rule(kind, _action(props[ODRL + "action"], names), constraints, duties)


# Policies already normalised, by their JSON with sorted keys: a negotiation validates the same
# offer several times (request, decision, agreement terms on both sides). Policy objects are
# immutable, so sharing one is safe; refusals are not kept.
_VALIDATED: dict[bytes, Policy] = {}
_VALIDATED_MAX = 1024


# Room for about 16 logical constraints nested in one another; deeper, the walk below (and
# json.dumps) would run out of stack on a peer's offer.
MAX_DEPTH = 36


def validate_policy(policy: Mapping[str, Any]) -> Policy:
    """Normalise an ODRL Offer / Agreement / Set, refusing anything this profile cannot enforce.

    Raises ``PolicyDefinitionError`` naming the offending term.
    """
    if not isinstance(policy, Mapping):
        raise _fail(f"a policy must be a JSON object, got {type(policy).__name__}")
    try:
        key = json.dumps(policy, sort_keys=True, separators=(",", ":")).encode()
    except RecursionError:
        raise _fail(f"a policy nested more than {MAX_DEPTH} levels deep") from None
    except (TypeError, ValueError):  # not plain JSON data: validated (and refused) unmemoised
        return _validate_policy(_shallow(policy))
    found = _VALIDATED.get(key)
    if found is None:
        found = _validate_policy(_shallow(policy))
        if len(_VALIDATED) >= _VALIDATED_MAX:
            _VALIDATED.clear()
        _VALIDATED[key] = found
    return found


def _shallow(policy: Mapping[str, Any]) -> Mapping[str, Any]:
    """The policy, if no deeper than ``MAX_DEPTH`` (checked once, before it is remembered)."""
    if deeper_than(policy, MAX_DEPTH):
        raise _fail(f"a policy nested more than {MAX_DEPTH} levels deep")
    return policy


def _validate_policy(policy: Mapping[str, Any]) -> Policy:
    names = _Names(policy.get("@context"))
    props = _keys(policy, names, "policy")
    unknown = set(props) - _TOP_LEVEL
    if unknown:
        raise _fail(f"unsupported policy properties: {', '.join(sorted(unknown))}")
    type_iri = PolicyType.SET.value  # ODRL's default policy type
    if "@type" in props:
        type_iri = names.term(_iri(props["@type"], names, "@type"))
    if type_iri not in _POLICY_TYPES:
        raise _fail(f"unsupported policy @type {type_iri} (Offer, Agreement or Set)")
    uid = props.get("@id", props.get(ODRL + "uid"))

    def optional(key: str) -> str | None:
        return names.value(_iri(props[key], names, key)) if key in props else None

    rules: dict[RuleKind, tuple[Rule, ...]] = {
        kind: tuple(
            sorted((_rule(n, kind, names) for n in _items(props.get(kind, []))), key=sort_key)
        )
        for kind in RuleKind
    }
    approval = props.get(APPROVAL_REQUIRED, False)
    if isinstance(approval, dict) and "@value" in approval:
        approval = approval["@value"]
    if not isinstance(approval, bool):
        raise _fail(f"{APPROVAL_REQUIRED} must be true or false, got {approval!r}")
    return Policy(
        uid=names.value(_iri(uid, names, "@id")) if uid is not None else None,
        type=PolicyType(type_iri),
        target=optional(ODRL + "target"),
        assigner=optional(ODRL + "assigner"),
        assignee=optional(ODRL + "assignee"),
        permissions=rules[RuleKind.PERMISSION],
        prohibitions=rules[RuleKind.PROHIBITION],
        obligations=rules[RuleKind.OBLIGATION],
        approval_required=approval,
    )
