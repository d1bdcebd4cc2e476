"""Plain words for policies, for people: the catalog UI and DSP termination reasons.

``describe_policy`` renders e.g. "research only, until 2027-12-31, results of 10 persons or
more, aggregate results only, members of the data space". Phrases follow a fixed operand
order, so the same policy reads the same however its JSON is ordered.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime
from typing import Any

from connector.policy.model import Constraint, ConstraintNode, Policy, Scalar
from connector.policy.parse import validate_policy
from connector.policy.vocab import LeftOperand, Logic, Operator, local_name

_L = LeftOperand
_O = Operator
ORDER = (
    _L.PURPOSE,
    _L.DATE_TIME,
    _L.MIN_CELL_SIZE,
    _L.OUTPUT_TYPE,
    _L.EPSILON,
    _L.COUNT,
    _L.PATIENTS,
    _L.SPATIAL,
    _L.RECIPIENT,
    _L.MEMBERSHIP,
    _L.DATA_PERMIT,
)


def show(value: Scalar) -> str:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S UTC")
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def _label(value: Scalar) -> str:
    """``https://w3id.org/dpv#ResearchAndDevelopment`` -> ``research and development``."""
    text = str(value)
    if "://" in text or text.startswith("urn:"):
        text = local_name(text)
        text = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", text).lower()
    return text


def _alternatives(values: Iterable[str]) -> str:
    items = list(values)
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " or " + items[-1]


def _values(constraint: Constraint, label: bool = False) -> str:
    right = constraint.right_operand
    items: Sequence[Scalar] = right if isinstance(right, tuple) else (right,)
    return _alternatives(_label(item) if label else show(item) for item in items)


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def phrase(constraint: Constraint) -> str:
    """One constraint in plain words."""
    left, op = constraint.left_operand, constraint.operator
    negated = op in (_O.NEQ, _O.IS_NONE_OF)
    if left is _L.PURPOSE:
        values = _values(constraint, label=True)
        return f"not for {values}" if negated else f"{values} only"
    if left is _L.DATE_TIME:
        words = {_O.LT: "before", _O.LTEQ: "until", _O.GT: "after", _O.GTEQ: "from"}
        words |= {_O.EQ: "on", _O.NEQ: "not on"}
        return f"{words[op]} {_values(constraint)}"
    if left is _L.COUNT:
        limit = int(str(constraint.right_operand)) - (1 if op is _O.LT else 0)
        return "no uses" if limit <= 0 else f"at most {_plural(limit, 'use')}"
    if left is _L.SPATIAL:
        if op is _O.IS_PART_OF:
            return f"within {_values(constraint)}"
        return f"not in {_values(constraint)}" if negated else f"in {_values(constraint)} only"
    if left is _L.RECIPIENT:
        return f"not for {_values(constraint)}" if negated else f"only for {_values(constraint)}"
    if left is _L.OUTPUT_TYPE:
        values = _values(constraint)
        return f"no {values} results" if negated else f"{values} results only"
    if left is _L.MIN_CELL_SIZE:
        if op is _O.GT:
            return f"results of more than {_values(constraint)} persons"
        return f"results of {_values(constraint)} persons or more"
    if left is _L.EPSILON:
        qualifier = "below " if op is _O.LT else ""
        return f"privacy budget epsilon {qualifier}{_values(constraint)}"
    if left is _L.PATIENTS:
        limit = int(str(constraint.right_operand)) - (1 if op is _O.LT else 0)
        return f"at most {_plural(max(limit, 0), 'patient')} a call"
    if left is _L.DATA_PERMIT:
        return "with a data permit for this dataset and purpose"
    return "members of the data space"


def node_phrase(node: ConstraintNode) -> str:
    if isinstance(node, Constraint):
        return phrase(node)
    if node.logic is Logic.AND_SEQUENCE:
        return "(" + ", then ".join(node_phrase(m) for m in node.constraints) + ")"
    parts = _ordered(node.constraints)
    if node.logic is Logic.OR:
        return "(" + " or ".join(parts) + ")"
    if node.logic is Logic.XONE:
        return "exactly one of (" + "; ".join(parts) + ")"
    return "(" + " and ".join(parts) + ")"


def _ordered(nodes: Iterable[ConstraintNode]) -> list[str]:
    def rank(node: ConstraintNode) -> int:
        return ORDER.index(node.left_operand) if isinstance(node, Constraint) else len(ORDER)

    return [node_phrase(node) for node in sorted(nodes, key=rank)]


def _duty(kind: str, action: str, nodes: Sequence[ConstraintNode]) -> str:
    words = f"{kind} {local_name(action)}"
    return f"{words} when {' and '.join(_ordered(nodes))}" if nodes else words


def describe_policy(policy: Mapping[str, Any] | Policy) -> str:
    """The policy in plain words (validating it first if given as JSON)."""
    if not isinstance(policy, Policy):
        policy = validate_policy(policy)
    phrases: list[str] = []
    for permission in policy.permissions:
        phrases += _ordered(permission.constraints)
        phrases += [_duty("must", d.action, d.constraints) for d in permission.duties]
    for prohibition in policy.prohibitions:
        phrases.append(_duty("must not", prohibition.action, prohibition.constraints))
    for obligation in policy.obligations:
        phrases.append(_duty("must", obligation.action, obligation.constraints))
    if policy.approval_required:
        phrases.append("each request approved by the data protection officer")
    unique = list(dict.fromkeys(phrases))
    return ", ".join(unique) if unique else "no restrictions"
