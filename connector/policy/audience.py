"""Who an offer is for: anyone who qualifies, or only the recipients it names.

An offer names its recipients when each of its permissions can hold only for callers it lists:
an ``odrl:recipient`` constraint with ``eq`` or ``isAnyOf`` that must hold (on its own, inside
an ``and`` / ``andSequence``, or in every branch of an ``or`` / ``xone``). Such an offer is
between the provider and those recipients: it, its recipients' DIDs, and a dataset whose every
offer is such, are not public metadata (the public ``/catalog`` pages leave them out; the DSP
catalog shows each caller the offers it may use).
"""

from __future__ import annotations

from connector.policy.model import Constraint, ConstraintNode, Policy
from connector.policy.vocab import LeftOperand, Logic, Operator

_NAMING = frozenset({Operator.EQ, Operator.IS_ANY_OF})


def names_recipients(policy: Policy) -> bool:
    """Whether ``policy`` permits nobody but the recipients it names."""
    return bool(policy.permissions) and all(
        any(_binds(node) for node in rule.constraints) for rule in policy.permissions
    )


def _binds(node: ConstraintNode) -> bool:
    if isinstance(node, Constraint):
        return node.left_operand is LeftOperand.RECIPIENT and node.operator in _NAMING
    if node.logic in (Logic.AND, Logic.AND_SEQUENCE):
        return any(_binds(member) for member in node.constraints)
    return bool(node.constraints) and all(_binds(member) for member in node.constraints)
