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

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum

from connector.policy.checks import Missing, check
from connector.policy.context import Decision, EvaluationContext, Scope
from connector.policy.describe import node_phrase, phrase
from connector.policy.model import Constraint, ConstraintNode, Policy, Rule
from connector.policy.vocab import ENFORCED_ACTIONS, LeftOperand, Logic, local_name


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
    _L.PATIENTS: {_S.DATAPLANE: _R},
}


@dataclass(frozen=True)
class Outcome:
    """``value`` None is unknown; ``messages`` explain a false value, or an unknown one
    caused by a missing required fact (then the unknown is a failure)."""

    value: bool | None
    messages: tuple[str, ...] = ()


def _atom(c: Constraint, ctx: EvaluationContext, scope: Scope) -> Outcome:
    need = CHECKS[c.left_operand].get(scope)
    if need is None:
        return Outcome(None)
    iri = c.left_operand.value
    try:
        holds, detail = check(c, ctx)
    except Missing as missing:
        if need is Need.IF_KNOWN:
            return Outcome(None)
        return Outcome(None, (f"{phrase(c)}: {missing.fact} ({iri})",))
    return Outcome(holds, () if holds else (f"{phrase(c)}: {detail} ({iri})",))


def _node(node: ConstraintNode, ctx: EvaluationContext, scope: Scope) -> Outcome:
    if isinstance(node, Constraint):
        return _atom(node, ctx, scope)
    parts = [_node(member, ctx, scope) for member in node.constraints]
    return _combine(node.logic, parts, lambda: node_phrase(node))


def _combine(logic: Logic, parts: list[Outcome], words: Callable[[], str]) -> Outcome:
    """``words`` renders the logical constraint, only when a failure needs naming."""
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
        return Outcome(False, (f"{words()}: none holds: " + "; ".join(false),))
    if trues > 1:
        return Outcome(False, (f"{words()}: more than one holds",))
    if unknowns:
        return Outcome(None, tuple(unknown))
    if trues == 1:
        return Outcome(True)
    return Outcome(False, (f"{words()}: none holds: " + "; ".join(false),))


def _rule(rule: Rule, ctx: EvaluationContext, scope: Scope) -> Outcome:
    parts = [_node(node, ctx, scope) for node in rule.constraints]
    return _combine(Logic.AND, parts, lambda: "") if parts else Outcome(True)


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
