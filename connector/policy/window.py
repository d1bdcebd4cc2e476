"""How long a permitted decision stays permitted as time passes.

A decision depends on time only through ``dateTime`` constraints and the validity windows
of the caller's credentials, so it can change only at the instants those name. Evaluating
just at and just after each of them, in order, finds the first moment the same request
would be refused. The data plane caps its access tokens there, so a token never outlives
the agreement's time window or the credentials it was checked against.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta

from connector.clock import as_utc
from connector.policy.context import EvaluationContext, Scope
from connector.policy.evaluate import evaluate
from connector.policy.model import Constraint, ConstraintNode, LogicalConstraint, Policy
from connector.policy.vocab import LeftOperand, Logic

_JUST_AFTER = timedelta(microseconds=1)


def permitted_until(
    policy: Policy, context: EvaluationContext, scope: Scope, *, until: datetime
) -> datetime:
    """The first instant after ``context.now``, and no later than ``until``, at which
    ``evaluate(policy, context, scope)`` with that instant as ``now`` is denied; ``until``
    if there is none. Meant for a context that is permitted now."""
    now = as_utc(context.now)
    end = as_utc(until)
    for moment in sorted({m for m in _instants(policy, context) if now < m <= end}):
        if not evaluate(policy, replace(context, now=moment), scope):
            return moment
    return end


def time_bounds(policy: Policy) -> Policy:
    """The policy with only its time constraints: every other constraint is taken to hold
    where it permits and not to hold where it prohibits (an empty ``and`` / ``or``). For
    deciding, without the caller's credentials at hand, whether the agreement's time window
    still admits a use and when it closes."""
    return replace(
        policy,
        permissions=tuple(
            replace(r, constraints=tuple(_neutralised(n, Logic.AND) for n in r.constraints))
            for r in policy.permissions
        ),
        prohibitions=tuple(
            replace(r, constraints=tuple(_neutralised(n, Logic.OR) for n in r.constraints))
            for r in policy.prohibitions
        ),
    )


def _neutralised(node: ConstraintNode, neutral: Logic) -> ConstraintNode:
    """``node`` with every constraint but ``dateTime`` replaced by an empty ``neutral``."""
    if isinstance(node, LogicalConstraint):
        return LogicalConstraint(
            node.logic, tuple(_neutralised(n, neutral) for n in node.constraints)
        )
    return node if node.left_operand is LeftOperand.DATE_TIME else LogicalConstraint(neutral, ())


def _instants(policy: Policy, context: EvaluationContext) -> Iterator[datetime]:
    for rule in policy.permissions + policy.prohibitions:
        for c in _atoms(rule.constraints):
            if c.left_operand is not LeftOperand.DATE_TIME:
                continue
            values = c.right_operand if isinstance(c.right_operand, tuple) else (c.right_operand,)
            for value in values:
                if isinstance(value, datetime):
                    yield from (as_utc(value), as_utc(value) + _JUST_AFTER)
                elif isinstance(value, date):  # compared with today's date (UTC)
                    start = datetime.combine(value, time(), UTC)
                    yield from (start, start + timedelta(days=1))
    for cred in context.credentials:
        for edge in (cred.valid_from, cred.valid_until):
            if edge is not None:
                yield from (as_utc(edge), as_utc(edge) + _JUST_AFTER)


def _atoms(nodes: tuple[ConstraintNode, ...]) -> Iterator[Constraint]:
    for node in nodes:
        if isinstance(node, Constraint):
            yield node
        else:
            yield from _atoms(node.constraints)
