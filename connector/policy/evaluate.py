"""Evaluate a normalised policy against one request in one scope.

Each constraint is true, false or unknown (three-valued, Kleene): unknown when its operand is
not checked in the scope or the fact it needs is missing. ``CHECKS`` says, per operand, in
which scopes it is checked and whether a missing fact there is a failure (``REQUIRED``) or
defers the check to a later scope (``IF_KNOWN``). So at catalog time an unknown purpose
leaves a dataset listed, while membership, recipient and dateTime already filter it; on the
data plane every constraint is checked and nothing may be unknown.

A permission fails when its constraints are false, or unknown because of a missing required
fact. A prohibition of ``use`` / ``read`` fails the request when its constraints are true
(an unconstrained one always), or unknown because of a missing required fact. Prohibitions
of other actions and all obligations / duties bind the consumer; they are carried into the
agreement, not checked here. A policy without permissions restricts nothing (as in EDC).
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from enum import Enum
from typing import Any

from connector.policy.context import (
    DATA_PERMIT_CREDENTIAL,
    MEMBERSHIP_CREDENTIAL,
    Decision,
    EvaluationContext,
    Scope,
    VerifiedCredential,
)
from connector.policy.describe import node_phrase, phrase, show
from connector.policy.model import Constraint, ConstraintNode, Policy, Rule, Scalar
from connector.policy.spatial import is_part_of, normalise_place
from connector.policy.vocab import (
    ENFORCED_ACTIONS,
    PHEMS,
    PREFIXES,
    LeftOperand,
    Logic,
    Operator,
    expand_value,
    local_name,
)


class Need(Enum):
    REQUIRED = "required"
    IF_KNOWN = "if known"


_L, _S, _R, _K = LeftOperand, Scope, Need.REQUIRED, Need.IF_KNOWN
_ALL = {_S.CATALOG: _R, _S.NEGOTIATION: _R, _S.TRANSFER: _R, _S.DATAPLANE: _R}
CHECKS: Mapping[LeftOperand, Mapping[Scope, Need]] = {
    _L.PURPOSE: {_S.CATALOG: _K, _S.NEGOTIATION: _K, _S.TRANSFER: _K, _S.DATAPLANE: _R},
    _L.DATE_TIME: _ALL,
    _L.RECIPIENT: _ALL,
    _L.MEMBERSHIP: _ALL,
    _L.SPATIAL: {_S.CATALOG: _K, _S.NEGOTIATION: _R, _S.TRANSFER: _R, _S.DATAPLANE: _R},
    # A caller may hold no permit yet when browsing: the catalog shows what to apply for.
    _L.DATA_PERMIT: {_S.NEGOTIATION: _R, _S.TRANSFER: _R, _S.DATAPLANE: _R},
    _L.OUTPUT_TYPE: {_S.NEGOTIATION: _K, _S.TRANSFER: _R, _S.DATAPLANE: _R},
    _L.COUNT: {_S.TRANSFER: _R, _S.DATAPLANE: _R},
    _L.MIN_CELL_SIZE: {_S.DATAPLANE: _R},
    _L.EPSILON: {_S.DATAPLANE: _R},
}


@dataclass(frozen=True)
class Outcome:
    """``value`` None is unknown; ``messages`` explain a false value, or an unknown one
    caused by a missing required fact (then the unknown is a failure)."""

    value: bool | None
    messages: tuple[str, ...] = ()


class _Missing(Exception):
    def __init__(self, fact: str) -> None:
        self.fact = fact


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _valid(cred: VerifiedCredential, kind: str, ctx: EvaluationContext) -> bool:
    now = _utc(ctx.now)
    return (
        kind in cred.types
        and cred.issuer in ctx.trusted_issuers
        and cred.subject.get("id") == ctx.caller
        and (cred.valid_from is None or _utc(cred.valid_from) <= now)
        and (cred.valid_until is None or now < _utc(cred.valid_until))
    )


def _term(text: str) -> str:
    return expand_value(text.strip(), PREFIXES)


def _permits(ctx: EvaluationContext) -> list[VerifiedCredential]:
    """Valid permits for this caller and dataset (and the stated purpose, if any)."""
    if ctx.dataset_id is None:
        raise _Missing("the dataset is not known")
    found = []
    for cred in ctx.credentials:
        datasets = cred.subject.get("datasets", [])
        datasets = [datasets] if isinstance(datasets, str) else datasets
        purpose = cred.subject.get("purpose")
        if (
            _valid(cred, DATA_PERMIT_CREDENTIAL, ctx)
            and ctx.dataset_id in datasets
            and isinstance(purpose, str)
            and (ctx.purpose is None or _term(purpose) == _term(ctx.purpose))
        ):
            found.append(cred)
    return found


def _purpose(ctx: EvaluationContext) -> str:
    if ctx.purpose is not None:
        return _term(ctx.purpose)
    # With no stated purpose, the one a data access body approved in the permit is the purpose.
    if ctx.dataset_id is not None:
        for permit in _permits(ctx):
            return _term(str(permit.subject["purpose"]))
    raise _Missing("the purpose is not stated")


def _spatial(ctx: EvaluationContext) -> str:
    if ctx.spatial is not None:
        return normalise_place(ctx.spatial)
    for cred in ctx.credentials:
        country = cred.subject.get("country")
        if _valid(cred, MEMBERSHIP_CREDENTIAL, ctx) and isinstance(country, str):
            return normalise_place(country)
    raise _Missing("the caller's location is not known")


_ORDER: Mapping[Operator, Callable[[Any, Any], bool]] = {
    Operator.LT: operator.lt,
    Operator.LTEQ: operator.le,
    Operator.GT: operator.gt,
    Operator.GTEQ: operator.ge,
}


def _match(
    c: Constraint, actual: Scalar, same: Callable[[Scalar, Scalar], bool] | None = None
) -> bool:
    equal = same or (lambda a, b: a == b)
    right = c.right_operand
    if isinstance(right, tuple):
        hit = any(equal(actual, value) for value in right)
        return hit if c.operator is Operator.IS_ANY_OF else not hit
    if c.operator in (Operator.EQ, Operator.IS_A, Operator.IS_PART_OF):
        return equal(actual, right)
    if c.operator is Operator.NEQ:
        return not equal(actual, right)
    return _ORDER[c.operator](actual, right)


def _check(c: Constraint, ctx: EvaluationContext) -> tuple[bool, str]:
    """(holds, what the request had) for one constraint; raises ``_Missing``."""
    left = c.left_operand
    if left is LeftOperand.PURPOSE:
        purpose = _purpose(ctx)
        return _match(c, purpose), f"the purpose is {purpose!r}"
    if left is LeftOperand.DATE_TIME:
        now = _utc(ctx.now)
        right = c.right_operand
        moment = now if isinstance(right, datetime) else now.date()
        return _match(c, moment), f"it is now {show(now)}"
    if left is LeftOperand.COUNT:
        attempt = ctx.uses_so_far + 1
        return _match(c, attempt), f"this would be use number {attempt}"
    if left is LeftOperand.SPATIAL:
        place = _spatial(ctx)
        # A region on the right means "inside it": spatial eq EU admits a caller in DE.
        inside = _match(c, place, lambda a, b: is_part_of(str(a), str(b)))
        return inside, f"the caller is in {place}"
    if left is LeftOperand.RECIPIENT:
        return _match(c, ctx.caller), f"the caller is {ctx.caller}"
    if left is LeftOperand.OUTPUT_TYPE:
        if ctx.output_type is None:
            raise _Missing("the output type is not stated")
        wanted = _term(ctx.output_type).removeprefix(PHEMS)
        return _match(c, wanted), f"{wanted!r} output was requested"
    if left is LeftOperand.MIN_CELL_SIZE:
        if ctx.min_cell_size is None:
            raise _Missing("the query's minimum cell size is not stated")
        floor = int(str(c.right_operand))
        ok = ctx.min_cell_size > floor if c.operator is Operator.GT else ctx.min_cell_size >= floor
        return ok, f"the query asks for a minimum cell size of {ctx.min_cell_size}"
    if left is LeftOperand.EPSILON:
        if ctx.epsilon is None:
            raise _Missing("the query's epsilon is not stated")
        budget = Decimal(str(c.right_operand))
        spend = Decimal(str(ctx.epsilon)) + Decimal(str(ctx.epsilon_spent))
        ok = spend < budget if c.operator is Operator.LT else spend <= budget
        detail = f"epsilon {ctx.epsilon} with {ctx.epsilon_spent} already spent"
        return ok, f"{detail} exceeds the budget {budget}"
    if left is LeftOperand.DATA_PERMIT:
        purpose = f" and purpose {ctx.purpose!r}" if ctx.purpose else ""
        detail = f"no valid data permit from a trusted issuer for dataset {ctx.dataset_id!r}"
        return bool(_permits(ctx)), detail + purpose
    valid = any(_valid(cred, MEMBERSHIP_CREDENTIAL, ctx) for cred in ctx.credentials)
    return valid, "no valid membership credential from a trusted issuer"


def _atom(c: Constraint, ctx: EvaluationContext, scope: Scope) -> Outcome:
    need = CHECKS[c.left_operand].get(scope)
    if need is None:
        return Outcome(None)
    iri = c.left_operand.value
    try:
        holds, detail = _check(c, ctx)
    except _Missing as missing:
        if need is Need.IF_KNOWN:
            return Outcome(None)
        return Outcome(None, (f"{phrase(c)}: {missing.fact} ({iri})",))
    return Outcome(holds, () if holds else (f"{phrase(c)}: {detail} ({iri})",))


def _node(node: ConstraintNode, ctx: EvaluationContext, scope: Scope) -> Outcome:
    if isinstance(node, Constraint):
        return _atom(node, ctx, scope)
    parts = [_node(member, ctx, scope) for member in node.constraints]
    return _combine(node.logic, parts, node_phrase(node))


def _combine(logic: Logic, parts: list[Outcome], words: str) -> Outcome:
    false = [m for p in parts if p.value is False for m in p.messages]
    unknown = [m for p in parts if p.value is None for m in p.messages]
    trues = sum(1 for p in parts if p.value is True)
    unknowns = sum(1 for p in parts if p.value is None)
    if logic in (Logic.AND, Logic.AND_SEQUENCE):
        if any(p.value is False for p in parts):
            # Name every failure, including facts missing where they are required.
            return Outcome(False, tuple(false + unknown))
        return Outcome(None, tuple(unknown)) if unknowns else Outcome(True)
    if logic is Logic.OR:
        if trues:
            return Outcome(True)
        if unknowns:
            return Outcome(None, tuple(unknown))
        return Outcome(False, (f"{words}: none holds: " + "; ".join(false),))
    if trues > 1:
        return Outcome(False, (f"{words}: more than one holds",))
    if unknowns:
        return Outcome(None, tuple(unknown))
    if trues == 1:
        return Outcome(True)
    return Outcome(False, (f"{words}: none holds: " + "; ".join(false),))


def _rule(rule: Rule, ctx: EvaluationContext, scope: Scope) -> Outcome:
    parts = [_node(node, ctx, scope) for node in rule.constraints]
    return _combine(Logic.AND, parts, "") if parts else Outcome(True)


def evaluate(policy: Policy, context: EvaluationContext, scope: Scope) -> Decision:
    """Decide whether ``context`` may proceed under ``policy`` at ``scope``."""
    failed: list[str] = []
    for permission in policy.permissions:
        outcome = _rule(permission, context, scope)
        if outcome.value is False or outcome.value is None:
            failed += outcome.messages
    for prohibition in policy.prohibitions:
        if prohibition.action not in ENFORCED_ACTIONS:
            continue
        outcome = _rule(prohibition, context, scope)
        action = local_name(prohibition.action)
        if outcome.value is True:
            words = " and ".join(node_phrase(n) for n in prohibition.constraints) or "always"
            iris = sorted({n.left_operand.value for n in _atoms(prohibition.constraints)})
            failed.append(f"{action} is prohibited: {words} ({', '.join(iris) or action})")
        elif outcome.value is None and outcome.messages:
            failed += [f"{action} may be prohibited: {m}" for m in outcome.messages]
    return Decision(permitted=not failed, failed=failed)


def _atoms(nodes: tuple[ConstraintNode, ...]) -> list[Constraint]:
    out: list[Constraint] = []
    for node in nodes:
        out += [node] if isinstance(node, Constraint) else _atoms(node.constraints)
    return out
