"""The normalised policy: frozen dataclasses holding only expanded IRIs and typed values.

Two policies that mean the same thing normalise to equal objects: IRIs are expanded, right
operands are parsed to Python values (``datetime`` in UTC, ``int``, ``Decimal``, ``str``),
set-valued right operands are sorted tuples, and the members of commutative containers (a
rule's constraints, ``and`` / ``or`` / ``xone``, the rules of a policy) are sorted. Only
``andSequence`` keeps its order.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from connector.policy.vocab import LeftOperand, Logic, Operator, PolicyType, RuleKind

Scalar = str | int | Decimal | bool | date | datetime
RightOperand = Scalar | tuple[Scalar, ...]


@dataclass(frozen=True)
class Constraint:
    """``leftOperand operator rightOperand``."""

    left_operand: LeftOperand
    operator: Operator
    right_operand: RightOperand


@dataclass(frozen=True)
class LogicalConstraint:
    """``and`` / ``or`` / ``xone`` / ``andSequence`` over nested constraints."""

    logic: Logic
    constraints: tuple[ConstraintNode, ...]


ConstraintNode = Constraint | LogicalConstraint


@dataclass(frozen=True)
class Rule:
    """A permission, prohibition or obligation; ``duties`` are a permission's duties."""

    kind: RuleKind
    action: str
    constraints: tuple[ConstraintNode, ...] = ()
    duties: tuple[Rule, ...] = ()


@dataclass(frozen=True)
class Policy:
    uid: str | None
    type: PolicyType
    target: str | None = None
    assigner: str | None = None
    assignee: str | None = None
    permissions: tuple[Rule, ...] = ()
    prohibitions: tuple[Rule, ...] = ()
    obligations: tuple[Rule, ...] = ()
    approval_required: bool = False

    @property
    def rules(self) -> tuple[Rule, ...]:
        return self.permissions + self.prohibitions + self.obligations


def sort_key(node: object) -> str:
    """A total order on normalised nodes (values of mixed types have no natural one)."""
    return repr(node)
