"""One atomic constraint against the facts of a request: does it hold, and what was asked?

The facts come from the ``EvaluationContext`` and the caller's credentials. A credential
counts only if it has the right type, an issuer on the trust list, the caller as holder and
is valid now. A missing fact raises ``Missing``; the scope decides what that means.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from connector.clock import as_utc
from connector.policy.context import (
    DATA_PERMIT_CREDENTIAL,
    MEMBERSHIP_CREDENTIAL,
    EvaluationContext,
    VerifiedCredential,
)
from connector.policy.describe import show
from connector.policy.model import Constraint, Scalar
from connector.policy.spatial import is_part_of, normalise_place
from connector.policy.vocab import PHEMS, PREFIXES, LeftOperand, Operator, expand_value


class Missing(Exception):
    """The fact a constraint needs is not in the context."""

    def __init__(self, fact: str) -> None:
        self.fact = fact


def _valid(cred: VerifiedCredential, kind: str, ctx: EvaluationContext) -> bool:
    now = as_utc(ctx.now)
    return (
        kind in cred.types
        and cred.issuer in ctx.trusted_issuers
        and cred.subject.get("id") == ctx.caller
        and (cred.valid_from is None or as_utc(cred.valid_from) <= now)
        and (cred.valid_until is None or now < as_utc(cred.valid_until))
    )


def _term(text: str) -> str:
    return expand_value(text.strip(), PREFIXES)


def _permits(ctx: EvaluationContext) -> list[VerifiedCredential]:
    """Valid permits for this caller and dataset (and the stated purpose, if any)."""
    if ctx.dataset_id is None:
        raise Missing("the dataset is not known")
    found = []
    for cred in ctx.credentials:
        datasets = cred.subject.get("datasets", [])
        datasets = [datasets] if isinstance(datasets, str) else datasets
        datasets = datasets if isinstance(datasets, list) else []
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
    raise Missing("the purpose is not stated")


def _spatial(ctx: EvaluationContext) -> str:
    if ctx.spatial is not None:
        return normalise_place(ctx.spatial)
    for cred in ctx.credentials:
        country = cred.subject.get("country")
        if _valid(cred, MEMBERSHIP_CREDENTIAL, ctx) and isinstance(country, str):
            return normalise_place(country)
    raise Missing("the caller's location is not known")


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


def check(c: Constraint, ctx: EvaluationContext) -> tuple[bool, str]:
    """(holds, what the request had) for one constraint; raises ``_Missing``."""
    left = c.left_operand
    if left is LeftOperand.PURPOSE:
        purpose = _purpose(ctx)
        return _match(c, purpose), f"the purpose is {purpose!r}"
    if left is LeftOperand.DATE_TIME:
        now = as_utc(ctx.now)
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
            raise Missing("the output type is not stated")
        wanted = _term(ctx.output_type).removeprefix(PHEMS)
        return _match(c, wanted), f"{wanted!r} output was requested"
    if left is LeftOperand.MIN_CELL_SIZE:
        if ctx.min_cell_size is None:
            raise Missing("the query's minimum cell size is not stated")
        floor = int(str(c.right_operand))
        ok = ctx.min_cell_size > floor if c.operator is Operator.GT else ctx.min_cell_size >= floor
        return ok, f"the query asks for a minimum cell size of {ctx.min_cell_size}"
    if left is LeftOperand.EPSILON:
        if ctx.epsilon is None:
            raise Missing("the query's epsilon is not stated")
        budget = Decimal(str(c.right_operand))
        spend = Decimal(str(ctx.epsilon)) + Decimal(str(ctx.epsilon_spent))
        ok = spend < budget if c.operator is Operator.LT else spend <= budget
        detail = f"epsilon {ctx.epsilon} with {ctx.epsilon_spent} already spent"
        return ok, f"{detail} exceeds the budget {budget}"
    if left is LeftOperand.PATIENTS:
        if ctx.patients is None:
            raise Missing("the number of patients is not stated")
        return _match(c, ctx.patients), f"the call asks for {ctx.patients} patients"
    if left is LeftOperand.DATA_PERMIT:
        purpose = f" and purpose {ctx.purpose!r}" if ctx.purpose else ""
        detail = f"no valid data permit from a trusted issuer for dataset {ctx.dataset_id!r}"
        return bool(_permits(ctx)), detail + purpose
    valid = any(_valid(cred, MEMBERSHIP_CREDENTIAL, ctx) for cred in ctx.credentials)
    return valid, "no valid membership credential from a trusted issuer"
