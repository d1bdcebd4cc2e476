"""The bounds a policy puts on the numbers a data plane call states, for a fulfilment's
defaults: ``{"minCellSize": 10, "epsilon": 1.0, "patients": 100}``. Informative only; the
policy engine enforces them (``evaluate`` at data plane scope)."""

from __future__ import annotations

from collections.abc import Iterable

from connector.policy.model import Constraint, ConstraintNode, Policy
from connector.policy.vocab import LeftOperand, Operator, local_name

_NUMERIC = (LeftOperand.MIN_CELL_SIZE, LeftOperand.EPSILON, LeftOperand.PATIENTS, LeftOperand.COUNT)


def _atoms(nodes: Iterable[ConstraintNode]) -> Iterable[Constraint]:
    for node in nodes:
        if isinstance(node, Constraint):
            yield node
        else:
            yield from _atoms(node.constraints)


def policy_limits(policy: Policy) -> dict[str, float]:
    """The tightest bound per numeric operand over the permissions' constraints (floors for
    ``minCellSize``, ceilings for the others; a strict bound moves by one for integers)."""
    out: dict[str, float] = {}
    for permission in policy.permissions:
        for c in _atoms(permission.constraints):
            if c.left_operand not in _NUMERIC or isinstance(c.right_operand, tuple):
                continue
            value = float(str(c.right_operand))
            name = local_name(c.left_operand)
            if c.left_operand is LeftOperand.MIN_CELL_SIZE:
                value += 1 if c.operator is Operator.GT else 0
                out[name] = max(out.get(name, value), value)
            else:
                if c.operator is Operator.LT and c.left_operand is not LeftOperand.EPSILON:
                    value -= 1
                out[name] = min(out.get(name, value), value)
    return out
